// Gradient clipping by value, g = min(max(g, -v), v), in place. Twin of the by-value part
// of cpu::optim::clip (norm clipping is folded into the optimiser kernels).
struct P {
    n: u32, off: u32,
    limit: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.n) {
        return;
    }
    g[p.off + i] = min(max(g[p.off + i], -p.limit), p.limit);
}
