// Register-blocked matrix product with subgroup broadcasts (needs the SUBGROUP feature; the
// engine selects it only when the adapter has it with subgroups of 8 to 64 lanes).
// Same contract and same summation order (q = 0..k, one fma per step) as matmul.wgsl, so the
// results are bitwise identical to the naive kernel.
//
// Why this shape: on lavapipe every storage load (and every shuffle with a per-lane index) is
// a loop over the lanes, while a broadcast from a constant lane is one register extract. A
// subgroup of S lanes owns a 16 (rows) × 2S (columns) tile of C, each lane 16 × 2 of it. Per
// 8 steps of q, lane u < 8 loads A[i0 + r, q + u] for the 16 rows and the subgroup shares it
// with broadcasts; each lane loads its own 2 columns of B: 32 loads per 256 multiply-adds
// (a lone 4×4 block needs 128).
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

const TILE_M: u32 = 8u;

// The accumulators are 16 named vec2s (16 rows × 2 columns per lane), not an array:
// lavapipe keeps a dynamically indexed private array in per-lane scratch memory, which costs
// as much as a storage load. 16 × 2 rather than 8 × 4: per 8 steps of q a lane then makes
// 16 loads of A (shared) and 16 of its own B instead of 8 + 32 (measured 4.0 vs 3.3 GFLOP/s
// at 1024³ on lavapipe); 16 × 4 spills and is slower.
var<private> acc0: vec2<f32>;
var<private> acc1: vec2<f32>;
var<private> acc2: vec2<f32>;
var<private> acc3: vec2<f32>;
var<private> acc4: vec2<f32>;
var<private> acc5: vec2<f32>;
var<private> acc6: vec2<f32>;
var<private> acc7: vec2<f32>;
var<private> acc8: vec2<f32>;
var<private> acc9: vec2<f32>;
var<private> acc10: vec2<f32>;
var<private> acc11: vec2<f32>;
var<private> acc12: vec2<f32>;
var<private> acc13: vec2<f32>;
var<private> acc14: vec2<f32>;
var<private> acc15: vec2<f32>;

// acc_r += A[i0 + r, q] · B[q, j0..j0+2] for the 16 rows, A's column given as four vec4s
fn fma_rows(av: array<vec4<f32>, 4>, bv: vec2<f32>) {
    acc0 = fma(vec2<f32>(av[0].x), bv, acc0);
    acc1 = fma(vec2<f32>(av[0].y), bv, acc1);
    acc2 = fma(vec2<f32>(av[0].z), bv, acc2);
    acc3 = fma(vec2<f32>(av[0].w), bv, acc3);
    acc4 = fma(vec2<f32>(av[1].x), bv, acc4);
    acc5 = fma(vec2<f32>(av[1].y), bv, acc5);
    acc6 = fma(vec2<f32>(av[1].z), bv, acc6);
    acc7 = fma(vec2<f32>(av[1].w), bv, acc7);
    acc8 = fma(vec2<f32>(av[2].x), bv, acc8);
    acc9 = fma(vec2<f32>(av[2].y), bv, acc9);
    acc10 = fma(vec2<f32>(av[2].z), bv, acc10);
    acc11 = fma(vec2<f32>(av[2].w), bv, acc11);
    acc12 = fma(vec2<f32>(av[3].x), bv, acc12);
    acc13 = fma(vec2<f32>(av[3].y), bv, acc13);
    acc14 = fma(vec2<f32>(av[3].z), bv, acc14);
    acc15 = fma(vec2<f32>(av[3].w), bv, acc15);
}

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
    // Tiles (16 rows × 2S columns per subgroup of S lanes) are assigned per subgroup, not by
    // local_invocation_index, whose mapping to subgroups is implementation-defined.
    let tile = (wg.x + wg.y * nwg.x) * (64u / sg_size) + sg;
    let tiles_n = (p.n + 2u * sg_size - 1u) / (2u * sg_size);
    // enough workgroups were launched for the largest subgroup size; surplus subgroups leave
    // (the whole subgroup at once, so the broadcasts below stay in uniform control flow)
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

    // Every lane runs the whole loop, even past the edge of C: rows and columns past the
    // edge are clamped (loads stay in bounds) and only the writes are masked.
    let last_i = vec4<u32>(p.m - 1u);
    let r0 = vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u);
    let rows = array<vec4<u32>, 4>(
        p.a_off + min(r0, last_i) * a_si,
        p.a_off + min(r0 + 4u, last_i) * a_si,
        p.a_off + min(r0 + 8u, last_i) * a_si,
        p.a_off + min(r0 + 12u, last_i) * a_si,
    );
    let bc = p.b_off + min(vec2<u32>(j0) + vec2<u32>(0u, 1u), vec2<u32>(p.n - 1u)) * b_sj;
    // the subgroups of tile column 0 sum their 16 rows of A from the broadcast values (the
    // condition is uniform per subgroup), in q order as col_sum.wgsl does
    let sum_rows = p.rowsum != 0u && tile % tiles_n == 0u;
    var rs = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    if (sum_rows && p.beta != 0u) {
        for (var g = 0u; g < 4u; g++) {
            let i = min(r0 + 4u * g, last_i);
            rs[g] = vec4<f32>(c[p.rs_off + i.x], c[p.rs_off + i.y], c[p.rs_off + i.z], c[p.rs_off + i.w]);
        }
    }
    let k8 = p.k - p.k % 8u;
    for (var q0 = 0u; q0 < k8; q0 += 8u) {
        // lane u holds column q0 + u of the subgroup's 16 × 8 block of A (lanes past 8 load
        // a clamped duplicate that nobody reads)
        let av = load_a(rows, min(q0 + lane, p.k - 1u) * a_sq);
        let a0 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 0u), subgroupBroadcast(av[1], 0u), subgroupBroadcast(av[2], 0u), subgroupBroadcast(av[3], 0u));
        fma_rows(a0, load_b(bc, q0 * b_sq));
        if (sum_rows) {
            rs = array<vec4<f32>, 4>(rs[0] + a0[0], rs[1] + a0[1], rs[2] + a0[2], rs[3] + a0[3]);
        }
        let a1 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 1u), subgroupBroadcast(av[1], 1u), subgroupBroadcast(av[2], 1u), subgroupBroadcast(av[3], 1u));
        fma_rows(a1, load_b(bc, (q0 + 1u) * b_sq));
        if (sum_rows) {
            rs = array<vec4<f32>, 4>(rs[0] + a1[0], rs[1] + a1[1], rs[2] + a1[2], rs[3] + a1[3]);
        }
        let a2 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 2u), subgroupBroadcast(av[1], 2u), subgroupBroadcast(av[2], 2u), subgroupBroadcast(av[3], 2u));
        fma_rows(a2, load_b(bc, (q0 + 2u) * b_sq));
        if (sum_rows) {
            rs = array<vec4<f32>, 4>(rs[0] + a2[0], rs[1] + a2[1], rs[2] + a2[2], rs[3] + a2[3]);
        }
        let a3 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 3u), subgroupBroadcast(av[1], 3u), subgroupBroadcast(av[2], 3u), subgroupBroadcast(av[3], 3u));
        fma_rows(a3, load_b(bc, (q0 + 3u) * b_sq));
        if (sum_rows) {
            rs = array<vec4<f32>, 4>(rs[0] + a3[0], rs[1] + a3[1], rs[2] + a3[2], rs[3] + a3[3]);
        }
        let a4 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 4u), subgroupBroadcast(av[1], 4u), subgroupBroadcast(av[2], 4u), subgroupBroadcast(av[3], 4u));
        fma_rows(a4, load_b(bc, (q0 + 4u) * b_sq));
        if (sum_rows) {
            rs = array<vec4<f32>, 4>(rs[0] + a4[0], rs[1] + a4[1], rs[2] + a4[2], rs[3] + a4[3]);
        }
        let a5 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 5u), subgroupBroadcast(av[1], 5u), subgroupBroadcast(av[2], 5u), subgroupBroadcast(av[3], 5u));
        fma_rows(a5, load_b(bc, (q0 + 5u) * b_sq));
        if (sum_rows) {
            rs = array<vec4<f32>, 4>(rs[0] + a5[0], rs[1] + a5[1], rs[2] + a5[2], rs[3] + a5[3]);
        }
        let a6 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 6u), subgroupBroadcast(av[1], 6u), subgroupBroadcast(av[2], 6u), subgroupBroadcast(av[3], 6u));
        fma_rows(a6, load_b(bc, (q0 + 6u) * b_sq));
        if (sum_rows) {
            rs = array<vec4<f32>, 4>(rs[0] + a6[0], rs[1] + a6[1], rs[2] + a6[2], rs[3] + a6[3]);
        }
        let a7 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 7u), subgroupBroadcast(av[1], 7u), subgroupBroadcast(av[2], 7u), subgroupBroadcast(av[3], 7u));
        fma_rows(a7, load_b(bc, (q0 + 7u) * b_sq));
        if (sum_rows) {
            rs = array<vec4<f32>, 4>(rs[0] + a7[0], rs[1] + a7[1], rs[2] + a7[2], rs[3] + a7[3]);
        }
    }
    // the last K % 8 steps: every lane loads its A values itself
    for (var q = k8; q < p.k; q++) {
        let av = load_a(rows, q * a_sq);
        fma_rows(av, load_b(bc, q * b_sq));
        if (sum_rows) {
            rs = array<vec4<f32>, 4>(rs[0] + av[0], rs[1] + av[1], rs[2] + av[2], rs[3] + av[3]);
        }
    }

    if (sum_rows && lane == 0u) {
        for (var r = 0u; r < 16u; r++) {
            if (i0 + r < p.m) {
                c[p.rs_off + i0 + r] = rs[r / 4u][r % 4u];
                c[p.rs2_off + i0 + r] = rs[r / 4u][r % 4u];
            }
        }
    }
    store_row(i0, j0, acc0);
    store_row(i0 + 1u, j0, acc1);
    store_row(i0 + 2u, j0, acc2);
    store_row(i0 + 3u, j0, acc3);
    store_row(i0 + 4u, j0, acc4);
    store_row(i0 + 5u, j0, acc5);
    store_row(i0 + 6u, j0, acc6);
    store_row(i0 + 7u, j0, acc7);
    store_row(i0 + 8u, j0, acc8);
    store_row(i0 + 9u, j0, acc9);
    store_row(i0 + 10u, j0, acc10);
    store_row(i0 + 11u, j0, acc11);
    store_row(i0 + 12u, j0, acc12);
    store_row(i0 + 13u, j0, acc13);
    store_row(i0 + 14u, j0, acc14);
    store_row(i0 + 15u, j0, acc15);
}
