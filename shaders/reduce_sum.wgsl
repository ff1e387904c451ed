// Deterministic sum of n values (or of their squares) into one float, times a factor.
// Twin of the loss sum in cpu::loss and of cpu::optim::grad_norm (squared). One workgroup:
// stage 1, each of 256 invocations sums a fixed strided subset with Kahan compensation;
// stage 2, a fixed-shape tree in workgroup memory. No atomics, same bits every run.
struct P {
    n: u32, src_off: u32, dst_off: u32,
    // 1 = sum of squares
    square: u32,
    factor: f32,
    // 1 = add to dst (the loss of a batch split into chunks), 0 = overwrite
    accumulate: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    var comp = 0.0;
    for (var i = lid; i < p.n; i += 256u) {
        var v = src[p.src_off + i];
        if (p.square != 0u) {
            v = v * v;
        }
        let yv = v - comp;
        let t = s + yv;
        comp = (t - s) - yv;
        s = t;
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var v = partial[0] * p.factor;
        if (p.accumulate != 0u) {
            v += dst[p.dst_off];
        }
        dst[p.dst_off] = v;
    }
}
