// Softmax (max-subtracted) + cross-entropy + its gradient in one pass, one invocation per
// row (step, sequence). Twin of cpu::loss::softmax_ce_forward / softmax_ce_backward.
// The head bias is added here, so the logits matmul needs no bias pass. The gradient and
// the row's loss are scaled by the batch's loss scale (common/batch_info.wgsl's slot, set
// per call: the mean divides by the batch's valid targets); a padding row (a step past its
// sequence's length) gets neither.
struct P {
    rows: u32, classes: u32,
    bias_off: u32,
    // 0 = no head bias: bias_off is unread
    has_bias: u32,
    // row r is step r / batch + 1 of sequence b0 + r % batch (b0: the chunk's first in the
    // whole batch); masked = 0 when every row carries a target (many-to-one)
    batch: u32, b0: u32, masked: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<u32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;
@group(0) @binding(5) var<storage, read_write> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> loss_rows: array<f32>;
@group(0) @binding(7) var<storage, read> info: array<u32>;

// logit k of the row at `base`, with the bias
fn logit(base: u32, k: u32) -> f32 {
    if (p.has_bias != 0u) {
        return logits[base + k] + w[p.bias_off + k];
    }
    return logits[base + k];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 64u;
    if (r >= p.rows) {
        return;
    }
    var scale = bitcast<f32>(info[INFO_LOSS_SCALE]);
    if (p.masked != 0u && r / p.batch + 1u > info[INFO_LENGTHS + p.b0 + r % p.batch]) {
        scale = 0.0;
    }
    let o = p.classes;
    let base = r * o;
    var mx = logit(base, 0u);
    for (var k = 1u; k < o; k++) {
        mx = max(mx, logit(base, k));
    }
    var sum = 0.0;
    for (var k = 0u; k < o; k++) {
        let e = exp(logit(base, k) - mx);
        probs[base + k] = e;
        sum += e;
    }
    let cls = min(y[r], o - 1u);
    for (var k = 0u; k < o; k++) {
        let pk = probs[base + k] / sum;
        probs[base + k] = pk;
        g[base + k] = scale * (pk - select(0.0, 1.0, k == cls));
    }
    // -log p[y] = log(sum) - (l[y] - max): exact even when p[y] underflows to 0
    loss_rows[r] = scale * (log(sum) - (logit(base, cls) - mx));
}
