// One reverse step of one layer, fused, with subgroup broadcasts (needs SUBGROUP; the plain
// twin is rnn_step_backward.wgsl): dz_t = (dh_t + W_hh^T · dz_{t+1}) ⊙ f'(h_t).
// The product dz_{t+1} (B, H) · W_hh (H, H) is matmul_sg.wgsl's tile loop: a subgroup of S
// lanes owns 8 sequences × 4S hidden units, each lane 8 × 4; per 8 steps of q, lanes 0..7 load
// dz_{t+1}[b, q + u] and share it by broadcast, each lane loads its own 4 columns of W_hh.
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

// W_hh[q, j] for the lane's 4 hidden units j at row offset `qb` = q·H
fn load_b(bc: vec4<u32>, qb: u32) -> vec4<f32> {
    return vec4<f32>(w[bc.x + qb], w[bc.y + qb], w[bc.z + qb], w[bc.w + qb]);
}

// dz_{t+1}[b0 + r, q] for the 8 sequences
fn load_a(lo_r: vec4<u32>, hi_r: vec4<u32>, q: u32) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(
        vec4<f32>(dz[lo_r.x + q], dz[lo_r.y + q], dz[lo_r.z + q], dz[lo_r.w + q]),
        vec4<f32>(dz[hi_r.x + q], dz[hi_r.y + q], dz[hi_r.z + q], dz[hi_r.w + q]),
    );
}

// dz_t for sequence `bi`, hidden units j0..j0+4 (masked at the edges)
fn store_row(bi: u32, j0: u32, v: vec4<f32>) {
    if (bi >= p.batch) {
        return;
    }
    for (var s = 0u; s < 4u; s++) {
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
    // Tiles are assigned per subgroup; every lane runs the whole loop (clamped loads) so the
    // broadcasts happen in uniform control flow; only the writes are masked.
    let tile = (wg.x + wg.y * nwg.x) * (64u / sg_size) + sg;
    let tiles_n = (p.hidden + 4u * sg_size - 1u) / (4u * sg_size);
    // enough workgroups were launched for the largest subgroup size; surplus subgroups leave
    // (the whole subgroup at once, so the broadcasts below stay in uniform control flow)
    if (tile >= ((p.batch + 7u) / 8u) * tiles_n) {
        return;
    }
    let i0 = (tile / tiles_n) * 8u;
    let j0 = (tile % tiles_n) * 4u * sg_size + lane * 4u;
    let last_i = vec4<u32>(p.batch - 1u);
    let lo_r = p.next_off + min(vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u), last_i) * p.hidden;
    let hi_r = p.next_off + min(vec4<u32>(i0) + vec4<u32>(4u, 5u, 6u, 7u), last_i) * p.hidden;
    let bc = p.w_off + min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.hidden - 1u)) * 1u;
    // at t = T there is no dz_{t+1}: no product (uniform for the whole dispatch)
    let k = select(0u, p.hidden, p.has_next != 0u);
    let k8 = k - k % 8u;
    for (var q0 = 0u; q0 < k8; q0 += 8u) {
        // lane u holds column q0 + u of the subgroup's 8 × 8 block of A
        let av = load_a(lo_r, hi_r, min(q0 + lane, k - 1u));
        let lo = av[0];
        let hi = av[1];
        fma_rows(subgroupBroadcast(lo, 0u), subgroupBroadcast(hi, 0u), load_b(bc, q0 * p.hidden));
        fma_rows(subgroupBroadcast(lo, 1u), subgroupBroadcast(hi, 1u), load_b(bc, (q0 + 1u) * p.hidden));
        fma_rows(subgroupBroadcast(lo, 2u), subgroupBroadcast(hi, 2u), load_b(bc, (q0 + 2u) * p.hidden));
        fma_rows(subgroupBroadcast(lo, 3u), subgroupBroadcast(hi, 3u), load_b(bc, (q0 + 3u) * p.hidden));
        fma_rows(subgroupBroadcast(lo, 4u), subgroupBroadcast(hi, 4u), load_b(bc, (q0 + 4u) * p.hidden));
        fma_rows(subgroupBroadcast(lo, 5u), subgroupBroadcast(hi, 5u), load_b(bc, (q0 + 5u) * p.hidden));
        fma_rows(subgroupBroadcast(lo, 6u), subgroupBroadcast(hi, 6u), load_b(bc, (q0 + 6u) * p.hidden));
        fma_rows(subgroupBroadcast(lo, 7u), subgroupBroadcast(hi, 7u), load_b(bc, (q0 + 7u) * p.hidden));
    }
    // the last H % 8 steps: every lane loads its A values itself
    for (var q = k8; q < k; q++) {
        let av = load_a(lo_r, hi_r, q);
        fma_rows(av[0], av[1], load_b(bc, q * p.hidden));
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
