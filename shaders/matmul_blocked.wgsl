// Register-blocked matrix product: each invocation computes a 4×4 block of C, so every
// loaded value of A and B feeds four multiply-adds. On lavapipe storage loads dominate and
// workgroup-memory tiling only adds copies; registers are what helps.
// Same contract and same summation order (q = 0..k) as matmul.wgsl, so both kernels give
// bitwise-identical results.
struct P {
    m: u32, n: u32, k: u32,
    a_off: u32, b_off: u32, c_off: u32,
    ta: u32, tb: u32,
    beta: u32,
    // row sums of op(A) as in matmul.wgsl
    rowsum: u32, rs_off: u32, rs2_off: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j0 = gid.x * 4u;
    let i0 = (gid.y + gid.z * nwg.y * 8u) * 4u;
    if (i0 >= p.m || j0 >= p.n) {
        return;
    }
    // Out-of-range rows/columns are clamped to the last valid one: their loads stay in
    // bounds and their results are never written. The transposes become strides, so the
    // inner loop has no branches.
    let a_step = select(1u, p.m, p.ta != 0u);
    let b_step = select(p.n, 1u, p.tb != 0u);
    var ai: vec4<u32>;
    var bj: vec4<u32>;
    for (var r = 0u; r < 4u; r++) {
        let i = min(i0 + r, p.m - 1u);
        let j = min(j0 + r, p.n - 1u);
        ai[r] = p.a_off + select(i * p.k, i, p.ta != 0u);
        bj[r] = p.b_off + select(j, j * p.k, p.tb != 0u);
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    // the invocations of columns 0..4 sum their 4 rows of A
    let sum_rows = p.rowsum != 0u && j0 == 0u;
    var rs = vec4<f32>(0.0);
    if (sum_rows && p.beta != 0u) {
        for (var r = 0u; r < 4u; r++) {
            rs[r] = c[p.rs_off + min(i0 + r, p.m - 1u)];
        }
    }
    for (var q = 0u; q < p.k; q++) {
        let bv = vec4<f32>(b[bj.x], b[bj.y], b[bj.z], b[bj.w]);
        acc0 = fma(vec4<f32>(a[ai.x]), bv, acc0);
        acc1 = fma(vec4<f32>(a[ai.y]), bv, acc1);
        acc2 = fma(vec4<f32>(a[ai.z]), bv, acc2);
        acc3 = fma(vec4<f32>(a[ai.w]), bv, acc3);
        if (sum_rows) {
            rs += vec4<f32>(a[ai.x], a[ai.y], a[ai.z], a[ai.w]);
        }
        ai += vec4<u32>(a_step);
        bj += vec4<u32>(b_step);
    }
    if (sum_rows) {
        for (var r = 0u; r < 4u; r++) {
            if (i0 + r < p.m) {
                c[p.rs_off + i0 + r] = rs[r];
                c[p.rs2_off + i0 + r] = rs[r];
            }
        }
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        let i = i0 + r;
        if (i >= p.m) {
            break;
        }
        for (var s = 0u; s < 4u; s++) {
            let j = j0 + s;
            if (j < p.n) {
                let ci = p.c_off + i * p.n + j;
                var v = acc[r][s];
                if (p.beta != 0u) {
                    v += c[ci];
                }
                c[ci] = v;
            }
        }
    }
}
