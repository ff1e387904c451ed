// SGD with optional momentum and weight decay (PyTorch semantics). Twin of
// cpu::optim::update. Clipping by global norm is applied on the fly: scalars[norm_idx]
// holds Σ g² from reduce_sum, and clip_grad_norm_'s factor max / (norm + 1e-6) scales g
// only when it is below 1. Each invocation probes the values it writes (probe_check of
// common/probe.wgsl, prepended by kernels::Kernel::source()).
struct P {
    n: u32,
    lr: f32, wd: f32, mu: f32,
    // 1 = keep a velocity buffer (momentum != 0)
    momentum: u32,
    // 1 = clip by global norm
    clip: u32, max_norm: f32, norm_idx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> vel: array<f32>;
@group(0) @binding(4) var<storage, read> scalars: array<f32>;
// (PROBE_WORDS) two sticky flags, then each one's record (gpu::scalars)
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
    var step = gi;
    if (p.momentum != 0u) {
        step = p.mu * vel[i] + gi;
        vel[i] = step;
        probe_check(1u, step);
    }
    let wi = w[i] - p.lr * step;
    w[i] = wi;
    probe_check(0u, wi);
}
