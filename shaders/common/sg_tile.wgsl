// The subgroup-broadcast tile loop shared by matmul_sg.wgsl, rnn_step_forward_sg.wgsl and
// rnn_step_backward_sg.wgsl, prepended to each by kernels::Kernel::source() (WGSL has no
// #include). Not a module on its own: it calls three functions every including kernel
// defines, because they read that kernel's storage buffers, whose names and bindings differ
// (and naga does not accept storage pointers as function arguments):
//   fn load_a(r: array<vec4<u32>, 4>, qa: u32) -> array<vec4<f32>, 4>
//       A[i0 + r, q] for the tile's 16 rows; `r` from sg_tile_rows, `qa` = q · (q stride)
//   fn load_b(bc: vec2<u32>, qb: u32) -> vec2<f32>
//       B[q, j0..j0+2]; `bc` from sg_tile_cols, `qb` = q · (q stride)
//   fn store_row(i: u32, j0: u32, v: vec2<f32>)
//       the epilogue for row i, columns j0..j0+2 (masked at the edges by the kernel)
// tests/shaders_validate.rs validates the assembled modules, which checks the contract.
//
// Why this shape: on lavapipe every storage load (and every shuffle with a per-lane index) is
// a loop over the lanes, while a broadcast from a constant lane is one register extract. A
// subgroup of S lanes owns a 16 (rows) × 2S (columns) tile of C, each lane 16 × 2 of it. Per
// 8 steps of q, lane u < 8 loads A[i0 + r, q + u] for the 16 rows and the subgroup shares it
// with broadcasts; each lane loads its own 2 columns of B: 32 loads per 256 multiply-adds
// (a lone 4×4 block needs 128). The sum over q runs in order (one fma per step) for every
// element, so the results are bitwise those of the plain kernels.
// The kernels use subgroup built-ins without `enable subgroups;`, which naga 30 rejects.

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

// This subgroup's tile. Tiles are assigned per subgroup, not by local_invocation_index,
// whose mapping to subgroups is implementation-defined; workgroups are 64 invocations.
fn sg_tile_index(wg: vec3<u32>, nwg: vec3<u32>, sg: u32, sg_size: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * (64u / sg_size) + sg;
}

// tiles per row of tiles: n columns in tiles of 2S
fn sg_tiles_n(n: u32, sg_size: u32) -> u32 {
    return (n + 2u * sg_size - 1u) / (2u * sg_size);
}

// Element addresses base + row · stride of the tile's 16 rows i0.. (for load_a). Every lane
// runs the whole loop, even past the edge of C: rows past the last (m - 1) are clamped, so
// the loads stay in bounds, and only the writes are masked.
fn sg_tile_rows(base: u32, i0: u32, m: u32, stride: u32) -> array<vec4<u32>, 4> {
    let last_i = vec4<u32>(m - 1u);
    let r0 = vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u);
    return array<vec4<u32>, 4>(
        base + min(r0, last_i) * stride,
        base + min(r0 + 4u, last_i) * stride,
        base + min(r0 + 8u, last_i) * stride,
        base + min(r0 + 12u, last_i) * stride,
    );
}

// Element addresses base + column · stride of the lane's 2 columns j0, j0 + 1 (for load_b),
// clamped to the last column n - 1 like the rows
fn sg_tile_cols(base: u32, j0: u32, n: u32, stride: u32) -> vec2<u32> {
    return base + min(vec2<u32>(j0) + vec2<u32>(0u, 1u), vec2<u32>(n - 1u)) * stride;
}

// One step of q: the accumulators take A's column `a` times B's row at `qb`; with sum_rows
// (uniform per subgroup) `a` is also added to the row sums `rs`, which are returned.
fn sg_step(
    a: array<vec4<f32>, 4>,
    bc: vec2<u32>,
    qb: u32,
    sum_rows: bool,
    rs: array<vec4<f32>, 4>,
) -> array<vec4<f32>, 4> {
    fma_rows(a, load_b(bc, qb));
    if (sum_rows) {
        return array<vec4<f32>, 4>(rs[0] + a[0], rs[1] + a[1], rs[2] + a[2], rs[3] + a[3]);
    }
    return rs;
}

// acc += A · B over q = 0..k in order, A's q stride a_sq and B's b_sq (element addresses
// past `rows` and `bc`). Must be called by whole subgroups in uniform control flow (the
// broadcasts). With sum_rows, also Σ_q A[i0 + r, q] for the 16 rows, added to `rs` in q
// order (matmul_sg's fused bias gradient); the step kernels pass false and ignore it.
fn sg_tile_mac(
    rows: array<vec4<u32>, 4>,
    bc: vec2<u32>,
    k: u32,
    a_sq: u32,
    b_sq: u32,
    lane: u32,
    sum_rows: bool,
    rs_in: array<vec4<f32>, 4>,
) -> array<vec4<f32>, 4> {
    var rs = rs_in;
    let k8 = k - k % 8u;
    for (var q0 = 0u; q0 < k8; q0 += 8u) {
        // lane u holds column q0 + u of the subgroup's 16 × 8 block of A (lanes past 8 load
        // a clamped duplicate that nobody reads); the broadcast lanes must be constants
        let av = load_a(rows, min(q0 + lane, k - 1u) * a_sq);
        rs = sg_step(array<vec4<f32>, 4>(subgroupBroadcast(av[0], 0u), subgroupBroadcast(av[1], 0u), subgroupBroadcast(av[2], 0u), subgroupBroadcast(av[3], 0u)), bc, q0 * b_sq, sum_rows, rs);
        rs = sg_step(array<vec4<f32>, 4>(subgroupBroadcast(av[0], 1u), subgroupBroadcast(av[1], 1u), subgroupBroadcast(av[2], 1u), subgroupBroadcast(av[3], 1u)), bc, (q0 + 1u) * b_sq, sum_rows, rs);
        rs = sg_step(array<vec4<f32>, 4>(subgroupBroadcast(av[0], 2u), subgroupBroadcast(av[1], 2u), subgroupBroadcast(av[2], 2u), subgroupBroadcast(av[3], 2u)), bc, (q0 + 2u) * b_sq, sum_rows, rs);
        rs = sg_step(array<vec4<f32>, 4>(subgroupBroadcast(av[0], 3u), subgroupBroadcast(av[1], 3u), subgroupBroadcast(av[2], 3u), subgroupBroadcast(av[3], 3u)), bc, (q0 + 3u) * b_sq, sum_rows, rs);
        rs = sg_step(array<vec4<f32>, 4>(subgroupBroadcast(av[0], 4u), subgroupBroadcast(av[1], 4u), subgroupBroadcast(av[2], 4u), subgroupBroadcast(av[3], 4u)), bc, (q0 + 4u) * b_sq, sum_rows, rs);
        rs = sg_step(array<vec4<f32>, 4>(subgroupBroadcast(av[0], 5u), subgroupBroadcast(av[1], 5u), subgroupBroadcast(av[2], 5u), subgroupBroadcast(av[3], 5u)), bc, (q0 + 5u) * b_sq, sum_rows, rs);
        rs = sg_step(array<vec4<f32>, 4>(subgroupBroadcast(av[0], 6u), subgroupBroadcast(av[1], 6u), subgroupBroadcast(av[2], 6u), subgroupBroadcast(av[3], 6u)), bc, (q0 + 6u) * b_sq, sum_rows, rs);
        rs = sg_step(array<vec4<f32>, 4>(subgroupBroadcast(av[0], 7u), subgroupBroadcast(av[1], 7u), subgroupBroadcast(av[2], 7u), subgroupBroadcast(av[3], 7u)), bc, (q0 + 7u) * b_sq, sum_rows, rs);
    }
    // the last k % 8 steps: every lane loads its A values itself
    for (var q = k8; q < k; q++) {
        rs = sg_step(load_a(rows, q * a_sq), bc, q * b_sq, sum_rows, rs);
    }
    return rs;
}

// The epilogue: the kernel's store_row for each of the tile's 16 rows
fn sg_tile_store(i0: u32, j0: u32) {
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
