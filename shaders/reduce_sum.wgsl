// Deterministic sum of n values (or of their squares) into one float, times a factor.
// Twin of the loss sum in cpu::loss and of cpu::optim::grad_norm (squared). One workgroup:
// stage 1, each of 256 invocations sums a fixed strided subset with Kahan compensation;
// stage 2, a fixed-shape tree in workgroup memory. No atomics, same bits every run.
// Up to two independent sums per dispatch, one per workgroup (the step's loss and Σ g² share
// one launch): workgroup 0 does sum 0 from `src`, workgroup 1 sum 1 from `src2`.
struct Sum {
    n: u32, src_off: u32, dst_off: u32,
    // 0 = sum of values, 1 = sum of squares
    square: u32,
    factor: f32,
    // 1 = add to dst (the loss of a batch split into chunks), 0 = overwrite
    accumulate: u32,
    // to the 32-byte stride of a uniform array
    pad0: u32, pad1: u32,
}
struct P {
    sums: array<Sum, 2>,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> src2: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let job = p.sums[min(wg.x, 1u)];
    var s = 0.0;
    var comp = 0.0;
    for (var i = lid; i < job.n; i += 256u) {
        var v: f32;
        if (wg.x == 0u) {
            v = src[job.src_off + i];
        } else {
            v = src2[job.src_off + i];
        }
        if (job.square != 0u) {
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
        var v = partial[0] * job.factor;
        if (job.accumulate != 0u) {
            v += dst[job.dst_off];
        }
        dst[job.dst_off] = v;
    }
}
