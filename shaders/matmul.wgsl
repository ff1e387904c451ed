// Naive matrix product, the GPU-side reference: one invocation per element of C.
// C (m, n) = beta·C + op(A) (m, k) · op(B) (k, n); twin of cpu::gemm (beta 0 or 1).
// Operands are addressed by element offsets into whole buffers, because per-step slices of
// the hidden states (B·H floats) are not 256-byte aligned.
struct P {
    m: u32, n: u32, k: u32,
    a_off: u32, b_off: u32, c_off: u32,
    // 1 = the operand is stored transposed: A as (k, m), B as (n, k)
    ta: u32, tb: u32,
    // 1 = accumulate into C, 0 = overwrite (C is never read)
    beta: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.x;
    // rows beyond 65535 workgroups spill into z
    let i = gid.y + gid.z * nwg.y * 16u;
    if (i >= p.m || j >= p.n) {
        return;
    }
    var acc = 0.0;
    for (var q = 0u; q < p.k; q++) {
        var av: f32;
        var bv: f32;
        if (p.ta == 0u) { av = a[p.a_off + i * p.k + q]; } else { av = a[p.a_off + q * p.m + i]; }
        if (p.tb == 0u) { bv = b[p.b_off + q * p.n + j]; } else { bv = b[p.b_off + j * p.k + q]; }
        acc = fma(av, bv, acc);
    }
    let ci = p.c_off + i * p.n + j;
    if (p.beta != 0u) {
        acc += c[ci];
    }
    c[ci] = acc;
}
