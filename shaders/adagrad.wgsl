// Adagrad as in the classic char-rnn: s += g²; w -= lr · g / (sqrt(s) + eps). Twin of
// cpu::optim::update; global-norm clipping and the probe as in sgd.wgsl.
struct P {
    n: u32,
    lr: f32, wd: f32, eps: f32,
    clip: u32, max_norm: f32, norm_idx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> s: array<f32>;
@group(0) @binding(4) var<storage, read> scalars: array<f32>;
@group(0) @binding(5) var<storage, read_write> probe: array<atomic<u32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.n) {
        return;
    }
    var gi = g[i];
    if (p.clip != 0u) {
        let coef = p.max_norm / (sqrt(scalars[p.norm_idx]) + 1e-6);
        if (coef < 1.0) {
            gi = gi * coef;
        }
    }
    gi = gi + p.wd * w[i];
    let si = s[i] + gi * gi;
    s[i] = si;
    let wi = w[i] - p.lr * gi / (sqrt(si) + p.eps);
    w[i] = wi;
    probe_check(1u, si);
    probe_check(0u, wi);
}
