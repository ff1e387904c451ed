// Register-blocked matrix product with subgroup broadcasts (needs the SUBGROUP feature; the
// engine selects it only when the adapter has it with subgroups of 8 to 64 lanes).
// Same contract and same summation order (q = 0..k, one fma per step) as matmul.wgsl, so the
// results are bitwise identical to the naive kernel. The tile loop (and why it is shaped so)
// is common/sg_tile.wgsl, prepended by kernels::Kernel::source(); this file supplies its
// load_a / load_b / store_row over a, b and c.
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

// B[q, j0..j0+2] at element `qb` = q·(q stride) past the clamped column addresses `bc`
fn load_b(bc: vec2<u32>, qb: u32) -> vec2<f32> {
    return vec2<f32>(b[bc.x + qb], b[bc.y + qb]);
}

// A[i0 + r, q] for the 16 rows at element `qa` = q·(q stride) past the row addresses
fn load_a(r: array<vec4<u32>, 4>, qa: u32) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        vec4<f32>(a[r[0].x + qa], a[r[0].y + qa], a[r[0].z + qa], a[r[0].w + qa]),
        vec4<f32>(a[r[1].x + qa], a[r[1].y + qa], a[r[1].z + qa], a[r[1].w + qa]),
        vec4<f32>(a[r[2].x + qa], a[r[2].y + qa], a[r[2].z + qa], a[r[2].w + qa]),
        vec4<f32>(a[r[3].x + qa], a[r[3].y + qa], a[r[3].z + qa], a[r[3].w + qa]),
    );
}

// Row i of C from the accumulator row `v` (columns j0..j0+2, masked at the edges).
fn store_row(i: u32, j0: u32, v: vec2<f32>) {
    if (i >= p.m) {
        return;
    }
    for (var s = 0u; s < 2u; s++) {
        let j = j0 + s;
        if (j < p.n) {
            let ci = p.c_off + i * p.n + j;
            var x = v[s];
            if (p.beta != 0u) {
                x += c[ci];
            }
            c[ci] = x;
        }
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let tile = sg_tile_index(wg, nwg, sg, sg_size);
    let tiles_n = sg_tiles_n(p.n, sg_size);
    // enough workgroups were launched for the largest subgroup size; surplus subgroups leave
    // (the whole subgroup at once, so the broadcasts in sg_tile_mac stay in uniform control
    // flow)
    if (tile >= ((p.m + 15u) / 16u) * tiles_n) {
        return;
    }
    let i0 = (tile / tiles_n) * 16u;
    let j0 = (tile % tiles_n) * 2u * sg_size + lane * 2u;
    // The transposes become strides, so the inner loops have no branches.
    let a_si = select(p.k, 1u, p.ta != 0u);
    let a_sq = select(1u, p.m, p.ta != 0u);
    let b_sq = select(p.n, 1u, p.tb != 0u);
    let b_sj = select(1u, p.k, p.tb != 0u);
    let rows = sg_tile_rows(p.a_off, i0, p.m, a_si);
    let bc = sg_tile_cols(p.b_off, j0, p.n, b_sj);
    // the subgroups of tile column 0 sum their 16 rows of A from the broadcast values (the
    // condition is uniform per subgroup), in q order as col_sum.wgsl does
    let sum_rows = p.rowsum != 0u && tile % tiles_n == 0u;
    var rs = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    if (sum_rows && p.beta != 0u) {
        let last_i = vec4<u32>(p.m - 1u);
        let r0 = vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u);
        for (var g = 0u; g < 4u; g++) {
            let i = min(r0 + 4u * g, last_i);
            rs[g] = vec4<f32>(c[p.rs_off + i.x], c[p.rs_off + i.y], c[p.rs_off + i.z], c[p.rs_off + i.w]);
        }
    }
    rs = sg_tile_mac(rows, bc, p.k, a_sq, b_sq, lane, sum_rows, rs);

    if (sum_rows && lane == 0u) {
        for (var r = 0u; r < 16u; r++) {
            if (i0 + r < p.m) {
                c[p.rs_off + i0 + r] = rs[r / 4u][r % 4u];
                c[p.rs2_off + i0 + r] = rs[r / 4u][r % 4u];
            }
        }
    }
    sg_tile_store(i0, j0);
}
