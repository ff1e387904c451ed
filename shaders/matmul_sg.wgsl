// Register-blocked matrix product with subgroup broadcasts (needs the SUBGROUP feature; the
// engine selects it only when the adapter has it with subgroups of 8 to 64 lanes).
// Same contract and same summation order (q = 0..k, one fma per step) as matmul.wgsl, so the
// results are bitwise identical to the naive kernel.
//
// Why this shape: on lavapipe every storage load (and every shuffle with a per-lane index) is
// a loop over the lanes, while a broadcast from a constant lane is one register extract. A
// subgroup of S lanes owns an 8 (rows) × 4S (columns) tile of C, each lane 8 × 4 of it. Per 8
// steps of q, lane u < 8 loads A[i0 + r, q + u] for the 8 rows and the subgroup shares it
// with 8 broadcasts; each lane loads its own 4 columns of B: 40 loads per 256 multiply-adds
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

// The accumulators are 8 named vec4s, not an array: lavapipe keeps a dynamically indexed
// private array in per-lane scratch memory, which costs as much as a storage load.
var<private> acc0: vec4<f32>;
var<private> acc1: vec4<f32>;
var<private> acc2: vec4<f32>;
var<private> acc3: vec4<f32>;
var<private> acc4: vec4<f32>;
var<private> acc5: vec4<f32>;
var<private> acc6: vec4<f32>;
var<private> acc7: vec4<f32>;

// acc_r += A[i0 + r, q] · B[q, j0..j0+4] for the 8 rows, A's column given as two vec4s
fn fma_rows(lo: vec4<f32>, hi: vec4<f32>, bv: vec4<f32>) {
    acc0 = fma(vec4<f32>(lo.x), bv, acc0);
    acc1 = fma(vec4<f32>(lo.y), bv, acc1);
    acc2 = fma(vec4<f32>(lo.z), bv, acc2);
    acc3 = fma(vec4<f32>(lo.w), bv, acc3);
    acc4 = fma(vec4<f32>(hi.x), bv, acc4);
    acc5 = fma(vec4<f32>(hi.y), bv, acc5);
    acc6 = fma(vec4<f32>(hi.z), bv, acc6);
    acc7 = fma(vec4<f32>(hi.w), bv, acc7);
}

// B[q, j0..j0+4] at element `qb` = q·(q stride) past the clamped column addresses `bc`
fn load_b(bc: vec4<u32>, qb: u32) -> vec4<f32> {
    return vec4<f32>(b[bc.x + qb], b[bc.y + qb], b[bc.z + qb], b[bc.w + qb]);
}

// A[i0 + r, q] for the 8 rows at element `qa` = q·(q stride) past the row addresses
fn load_a(lo_r: vec4<u32>, hi_r: vec4<u32>, qa: u32) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(
        vec4<f32>(a[lo_r.x + qa], a[lo_r.y + qa], a[lo_r.z + qa], a[lo_r.w + qa]),
        vec4<f32>(a[hi_r.x + qa], a[hi_r.y + qa], a[hi_r.z + qa], a[hi_r.w + qa]),
    );
}

// Row i of C from the accumulator row `v` (columns j0..j0+4, masked at the edges).
fn store_row(i: u32, j0: u32, v: vec4<f32>) {
    if (i >= p.m) {
        return;
    }
    for (var s = 0u; s < 4u; s++) {
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
    // Tiles are assigned per subgroup (not by local_invocation_index, whose mapping to
    // subgroups is implementation-defined). Every lane runs the whole loop, even past the
    // edge of C, so the broadcasts happen in uniform control flow; only the writes
    // are masked.
    let tile = (wg.x + wg.y * nwg.x) * (64u / sg_size) + sg;
    let tiles_n = (p.n + 4u * sg_size - 1u) / (4u * sg_size);
    // enough workgroups were launched for the largest subgroup size; surplus subgroups leave
    // (the whole subgroup at once, so the broadcasts below stay in uniform control flow)
    if (tile >= ((p.m + 7u) / 8u) * tiles_n) {
        return;
    }
    let i0 = (tile / tiles_n) * TILE_M;
    let j0 = (tile % tiles_n) * 4u * sg_size + lane * 4u;

    // The transposes become strides, so the inner loops have no branches.
    let a_si = select(p.k, 1u, p.ta != 0u);
    let a_sq = select(1u, p.m, p.ta != 0u);
    let b_sq = select(p.n, 1u, p.tb != 0u);
    let b_sj = select(1u, p.k, p.tb != 0u);
    // Rows and columns past the edge are clamped: loads stay in bounds, results are dropped.
    let last_i = vec4<u32>(p.m - 1u);
    let lo_r = p.a_off + min(vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u), last_i) * a_si;
    let hi_r = p.a_off + min(vec4<u32>(i0) + vec4<u32>(4u, 5u, 6u, 7u), last_i) * a_si;
    let bc = p.b_off + min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u)) * b_sj;

    // the subgroups of tile column 0 sum their 8 rows of A from the broadcast values (the
    // condition is uniform per subgroup)
    let sum_rows = p.rowsum != 0u && tile % tiles_n == 0u;
    var rs_lo = vec4<f32>(0.0);
    var rs_hi = vec4<f32>(0.0);
    if (sum_rows && p.beta != 0u) {
        let i = min(vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u), last_i);
        let k = min(vec4<u32>(i0) + vec4<u32>(4u, 5u, 6u, 7u), last_i);
        rs_lo = vec4<f32>(c[p.rs_off + i.x], c[p.rs_off + i.y], c[p.rs_off + i.z], c[p.rs_off + i.w]);
        rs_hi = vec4<f32>(c[p.rs_off + k.x], c[p.rs_off + k.y], c[p.rs_off + k.z], c[p.rs_off + k.w]);
    }
    let k8 = p.k - p.k % 8u;
    for (var q0 = 0u; q0 < k8; q0 += 8u) {
        // lane u holds column q0 + u of the subgroup's 8 × 8 block of A (lanes past 8 load
        // a clamped duplicate that nobody reads)
        let av = load_a(lo_r, hi_r, min(q0 + lane, p.k - 1u) * a_sq);
        let lo = av[0];
        let hi = av[1];
        fma_rows(subgroupBroadcast(lo, 0u), subgroupBroadcast(hi, 0u), load_b(bc, q0 * b_sq));
        fma_rows(subgroupBroadcast(lo, 1u), subgroupBroadcast(hi, 1u), load_b(bc, (q0 + 1u) * b_sq));
        fma_rows(subgroupBroadcast(lo, 2u), subgroupBroadcast(hi, 2u), load_b(bc, (q0 + 2u) * b_sq));
        fma_rows(subgroupBroadcast(lo, 3u), subgroupBroadcast(hi, 3u), load_b(bc, (q0 + 3u) * b_sq));
        fma_rows(subgroupBroadcast(lo, 4u), subgroupBroadcast(hi, 4u), load_b(bc, (q0 + 4u) * b_sq));
        fma_rows(subgroupBroadcast(lo, 5u), subgroupBroadcast(hi, 5u), load_b(bc, (q0 + 5u) * b_sq));
        fma_rows(subgroupBroadcast(lo, 6u), subgroupBroadcast(hi, 6u), load_b(bc, (q0 + 6u) * b_sq));
        fma_rows(subgroupBroadcast(lo, 7u), subgroupBroadcast(hi, 7u), load_b(bc, (q0 + 7u) * b_sq));
        if (sum_rows) {
            for (var u = 0u; u < 8u; u++) {
                // lane u's values, read back in lane order (q ascending)
                rs_lo += subgroupShuffle(lo, u);
                rs_hi += subgroupShuffle(hi, u);
            }
        }
    }
    // the last k % 8 steps: every lane loads its A values itself
    for (var q = k8; q < p.k; q++) {
        let av = load_a(lo_r, hi_r, q * a_sq);
        fma_rows(av[0], av[1], load_b(bc, q * b_sq));
        if (sum_rows) {
            rs_lo += av[0];
            rs_hi += av[1];
        }
    }
    if (sum_rows && lane == 0u) {
        for (var r = 0u; r < 4u; r++) {
            if (i0 + r < p.m) {
                c[p.rs_off + i0 + r] = rs_lo[r];
                c[p.rs2_off + i0 + r] = rs_lo[r];
            }
            if (i0 + 4u + r < p.m) {
                c[p.rs_off + i0 + 4u + r] = rs_hi[r];
                c[p.rs2_off + i0 + 4u + r] = rs_hi[r];
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
}
