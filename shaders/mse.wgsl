// Linear or sigmoid head + MSE and its gradient, one invocation per row. Twin of
// cpu::loss::mse_forward / mse_backward. loss_rows gets scale · Σ_k (y_hat - y)², with the
// batch's loss scale (common/batch_info.wgsl's slot, set per call: the mean divides by the
// batch's valid targets); the division by O happens once, in the final reduction's factor.
// A padding row (a step past its sequence's length) gets no loss and no gradient.
struct P {
    rows: u32, outputs: u32,
    bias_off: u32,
    // 1 = sigmoid head
    sigmoid_head: u32,
    // dL/dy_hat per residual before the loss scale: 2 / O
    gfactor: f32,
    // 0 = no head bias: bias_off is unread
    has_bias: u32,
    // row r is step r / batch + 1 of sequence b0 + r % batch (b0: the chunk's first in the
    // whole batch); masked = 0 when every row carries a target (many-to-one)
    batch: u32, b0: u32, masked: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> y_hat: array<f32>;
@group(0) @binding(5) var<storage, read_write> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> loss_rows: array<f32>;
@group(0) @binding(7) var<storage, read> info: array<u32>;

fn sigmoid(z: f32) -> f32 {
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
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
    let gscale = scale * p.gfactor;
    var acc = 0.0;
    for (var k = 0u; k < p.outputs; k++) {
        let i = r * p.outputs + k;
        var yh = logits[i];
        if (p.has_bias != 0u) {
            yh += w[p.bias_off + k];
        }
        if (p.sigmoid_head != 0u) {
            yh = sigmoid(yh);
        }
        y_hat[i] = yh;
        let d = yh - y[i];
        acc = fma(d, d, acc);
        var gi = gscale * d;
        if (p.sigmoid_head != 0u) {
            gi = gi * yh * (1.0 - yh);
        }
        g[i] = gi;
    }
    loss_rows[r] = scale * acc;
}
