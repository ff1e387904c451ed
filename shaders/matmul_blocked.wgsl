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
    // bounds and their results are never written.
    var ai: array<u32, 4>;
    var bj: array<u32, 4>;
    for (var r = 0u; r < 4u; r++) {
        ai[r] = min(i0 + r, p.m - 1u);
        bj[r] = min(j0 + r, p.n - 1u);
    }
    var acc: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        acc[r] = vec4<f32>(0.0);
    }
    for (var q = 0u; q < p.k; q++) {
        var av: vec4<f32>;
        var bv: vec4<f32>;
        for (var r = 0u; r < 4u; r++) {
            if (p.ta == 0u) { av[r] = a[p.a_off + ai[r] * p.k + q]; } else { av[r] = a[p.a_off + q * p.m + ai[r]]; }
            if (p.tb == 0u) { bv[r] = b[p.b_off + q * p.n + bj[r]]; } else { bv[r] = b[p.b_off + bj[r] * p.k + q]; }
        }
        acc[0] = fma(vec4<f32>(av[0]), bv, acc[0]);
        acc[1] = fma(vec4<f32>(av[1]), bv, acc[1]);
        acc[2] = fma(vec4<f32>(av[2]), bv, acc[2]);
        acc[3] = fma(vec4<f32>(av[3]), bv, acc[3]);
    }
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
