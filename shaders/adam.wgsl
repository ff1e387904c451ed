// Adam (PyTorch semantics, bias-corrected). Twin of cpu::optim::update. The bias
// corrections 1 - β^k are computed on the host in f64 each step, like the CPU, and written
// to scalars[bc_idx], scalars[bc_idx + 1] before the submission, so the parameter block
// does not change from step to step; global-norm clipping and the non-finite probe as in
// sgd.wgsl (the state probed is v: m, a convex combination of finite gradients, is finite
// whenever they are).
struct P {
    n: u32,
    lr: f32, wd: f32,
    b1: f32, b2: f32, eps: f32,
    bc_idx: u32,
    clip: u32, max_norm: f32, norm_idx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> scalars: array<f32>;
@group(0) @binding(6) var<storage, read_write> probe: array<atomic<u32>>;

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
    let mi = p.b1 * m[i] + (1.0 - p.b1) * gi;
    let vi = p.b2 * v[i] + (1.0 - p.b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    let m_hat = mi / scalars[p.bc_idx];
    let v_hat = vi / scalars[p.bc_idx + 1u];
    let wi = w[i] - p.lr * m_hat / (sqrt(v_hat) + p.eps);
    w[i] = wi;
    probe_check(1u, vi);
    probe_check(0u, wi);
}
