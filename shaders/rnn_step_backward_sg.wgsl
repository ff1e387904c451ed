// One reverse step of one layer, fused, with subgroup broadcasts (needs SUBGROUP; the plain
// twin is rnn_step_backward.wgsl): dz_t = (dh_t + W_hh^T · dz_{t+1}) ⊙ f'(h_t).
// The product dz_{t+1} (B, H) · W_hh (H, H) is matmul_sg.wgsl's tile loop: a subgroup of S
// lanes own 16 sequences × 2S hidden units, each lane 16 × 2; per 8 steps of q, lanes 0..7
// load dz_{t+1}[b, q + u] and share it by broadcast, each lane loads its own 2 columns of W_hh.
// The sum over q runs in order for every element, as in the plain kernel.
struct P {
    batch: u32, hidden: u32,
    dh_off: u32, h_off: u32,
    dz_off: u32, next_off: u32,
    // 0 at t = T: dz_{T+1} = 0
    has_next: u32,
    w_off: u32,
    // 0 tanh, 1 sigmoid, 2 relu
    act: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> dh: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;

fn activation_grad(hv: f32) -> f32 {
    switch p.act {
        case 0u: { return 1.0 - hv * hv; }
        case 1u: { return hv * (1.0 - hv); }
        default: { return select(0.0, 1.0, hv > 0.0); }
    }
}

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
    return vec2<f32>(w[bc.x + qb], w[bc.y + qb]);
}

// A[i0 + r, q] for the 16 rows at element `qa` = q·(q stride) past the row addresses
fn load_a(r: array<vec4<u32>, 4>, qa: u32) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        vec4<f32>(dz[r[0].x + qa], dz[r[0].y + qa], dz[r[0].z + qa], dz[r[0].w + qa]),
        vec4<f32>(dz[r[1].x + qa], dz[r[1].y + qa], dz[r[1].z + qa], dz[r[1].w + qa]),
        vec4<f32>(dz[r[2].x + qa], dz[r[2].y + qa], dz[r[2].z + qa], dz[r[2].w + qa]),
        vec4<f32>(dz[r[3].x + qa], dz[r[3].y + qa], dz[r[3].z + qa], dz[r[3].w + qa]),
    );
}

// dz_t for sequence `bi`, hidden units j0..j0+2 (masked at the edges)
fn store_row(bi: u32, j0: u32, v: vec2<f32>) {
    if (bi >= p.batch) {
        return;
    }
    for (var s = 0u; s < 2u; s++) {
        let j = j0 + s;
        if (j < p.hidden) {
            let idx = bi * p.hidden + j;
            let d = dh[p.dh_off + idx] + v[s];
            dz[p.dz_off + idx] = d * activation_grad(h[p.h_off + idx]);
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
    let tiles_n = (p.hidden + 2u * sg_size - 1u) / (2u * sg_size);
    // enough workgroups were launched for the largest subgroup size; surplus subgroups leave
    // (the whole subgroup at once, so the broadcasts below stay in uniform control flow)
    if (tile >= ((p.batch + 15u) / 16u) * tiles_n) {
        return;
    }
    let i0 = (tile / tiles_n) * 16u;
    let j0 = (tile % tiles_n) * 2u * sg_size + lane * 2u;

    // Every lane runs the whole loop, even past the edge of C: rows and columns past the
    // edge are clamped (loads stay in bounds) and only the writes are masked.
    let last_i = vec4<u32>(p.batch - 1u);
    let r0 = vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u);
    let rows = array<vec4<u32>, 4>(
        p.next_off + min(r0, last_i) * p.hidden,
        p.next_off + min(r0 + 4u, last_i) * p.hidden,
        p.next_off + min(r0 + 8u, last_i) * p.hidden,
        p.next_off + min(r0 + 12u, last_i) * p.hidden,
    );
    let bc = p.w_off + min(vec2<u32>(j0) + vec2<u32>(0u, 1u), vec2<u32>(p.hidden - 1u));
    // at t = T there is no dz_{t+1}: no product (uniform for the whole dispatch)
    let k = select(0u, p.hidden, p.has_next != 0u);
    let k8 = k - k % 8u;
    for (var q0 = 0u; q0 < k8; q0 += 8u) {
        // lane u holds column q0 + u of the subgroup's 16 × 8 block of A (lanes past 8 load
        // a clamped duplicate that nobody reads)
        let av = load_a(rows, min(q0 + lane, k - 1u));
        let a0 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 0u), subgroupBroadcast(av[1], 0u), subgroupBroadcast(av[2], 0u), subgroupBroadcast(av[3], 0u));
        fma_rows(a0, load_b(bc, q0 * p.hidden));
        let a1 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 1u), subgroupBroadcast(av[1], 1u), subgroupBroadcast(av[2], 1u), subgroupBroadcast(av[3], 1u));
        fma_rows(a1, load_b(bc, (q0 + 1u) * p.hidden));
        let a2 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 2u), subgroupBroadcast(av[1], 2u), subgroupBroadcast(av[2], 2u), subgroupBroadcast(av[3], 2u));
        fma_rows(a2, load_b(bc, (q0 + 2u) * p.hidden));
        let a3 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 3u), subgroupBroadcast(av[1], 3u), subgroupBroadcast(av[2], 3u), subgroupBroadcast(av[3], 3u));
        fma_rows(a3, load_b(bc, (q0 + 3u) * p.hidden));
        let a4 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 4u), subgroupBroadcast(av[1], 4u), subgroupBroadcast(av[2], 4u), subgroupBroadcast(av[3], 4u));
        fma_rows(a4, load_b(bc, (q0 + 4u) * p.hidden));
        let a5 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 5u), subgroupBroadcast(av[1], 5u), subgroupBroadcast(av[2], 5u), subgroupBroadcast(av[3], 5u));
        fma_rows(a5, load_b(bc, (q0 + 5u) * p.hidden));
        let a6 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 6u), subgroupBroadcast(av[1], 6u), subgroupBroadcast(av[2], 6u), subgroupBroadcast(av[3], 6u));
        fma_rows(a6, load_b(bc, (q0 + 6u) * p.hidden));
        let a7 = array<vec4<f32>, 4>(subgroupBroadcast(av[0], 7u), subgroupBroadcast(av[1], 7u), subgroupBroadcast(av[2], 7u), subgroupBroadcast(av[3], 7u));
        fma_rows(a7, load_b(bc, (q0 + 7u) * p.hidden));
    }
    // the last K % 8 steps: every lane loads its A values itself
    for (var q = k8; q < k; q++) {
        let av = load_a(rows, q);
        fma_rows(av, load_b(bc, q * p.hidden));
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
