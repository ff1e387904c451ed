// Softmax (max-subtracted) + cross-entropy + its gradient in one pass, one invocation per
// row (step, sequence). Twin of cpu::loss::softmax_ce_forward / softmax_ce_backward.
// The head bias is added here, so the logits matmul needs no bias pass.
struct P {
    rows: u32, classes: u32,
    bias_off: u32,
    // the reduction's factor (1/N for mean, 1 for sum), applied to the gradient
    scale: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<u32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;
@group(0) @binding(5) var<storage, read_write> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> loss_rows: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 64u;
    if (r >= p.rows) {
        return;
    }
    let o = p.classes;
    let base = r * o;
    var mx = logits[base] + w[p.bias_off];
    for (var k = 1u; k < o; k++) {
        mx = max(mx, logits[base + k] + w[p.bias_off + k]);
    }
    var sum = 0.0;
    for (var k = 0u; k < o; k++) {
        let e = exp(logits[base + k] + w[p.bias_off + k] - mx);
        probs[base + k] = e;
        sum += e;
    }
    let cls = min(y[r], o - 1u);
    for (var k = 0u; k < o; k++) {
        let pk = probs[base + k] / sum;
        probs[base + k] = pk;
        g[base + k] = p.scale * (pk - select(0.0, 1.0, k == cls));
    }
    // -log p[y] = log(sum) - (l[y] - max): exact even when p[y] underflows to 0
    loss_rows[r] = log(sum) - (logits[base + cls] + w[p.bias_off + cls] - mx);
}
