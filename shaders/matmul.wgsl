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
    // 1 = also write the row sums Σ_q op(A)[i, q] (a bias gradient) at c[rs_off + i] and
    // c[rs2_off + i], added to c[rs_off + i] when beta; the sum runs over q in order, as in
    // col_sum.wgsl, so the bias gradient costs no dispatch of its own
    rowsum: u32, rs_off: u32, rs2_off: u32,
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
    // The transposes become strides, so the inner loop has no branches.
    let a_step = select(1u, p.m, p.ta != 0u);
    let b_step = select(p.n, 1u, p.tb != 0u);
    var ai = p.a_off + select(i * p.k, i, p.ta != 0u);
    var bi = p.b_off + select(j, j * p.k, p.tb != 0u);
    var acc = 0.0;
    // the invocations of column 0 sum their row of A
    let sum_row = p.rowsum != 0u && j == 0u;
    var rs = 0.0;
    if (sum_row && p.beta != 0u) {
        rs = c[p.rs_off + i];
    }
    for (var q = 0u; q < p.k; q++) {
        acc = fma(a[ai], b[bi], acc);
        if (sum_row) {
            rs += a[ai];
        }
        ai += a_step;
        bi += b_step;
    }
    if (sum_row) {
        c[p.rs_off + i] = rs;
        c[p.rs2_off + i] = rs;
    }
    let ci = p.c_off + i * p.n + j;
    if (p.beta != 0u) {
        acc += c[ci];
    }
    c[ci] = acc;
}
