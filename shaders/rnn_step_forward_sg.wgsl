// One recurrent step of one layer, fused, with subgroup broadcasts (needs SUBGROUP; the
// plain twin is rnn_step_forward.wgsl): h_t = f(pre_t + (b_ih + b_hh) + W_hh · h_{t-1}).
// The product is matmul_sg.wgsl's (B, H) × W_hh^T tile loop: a subgroup of S lanes owns
// 8 sequences × 4S hidden units, each lane 8 × 4; per 8 steps of q, lanes 0..7 load
// h_{t-1}[b, q + u] and share it by broadcast, each lane loads its own 4 rows of W_hh.
// The sum over q runs in order for every element, as in the plain kernel.
struct P {
    batch: u32, hidden: u32,
    cur_off: u32, prev_off: u32,
    w_off: u32, bih_off: u32, bhh_off: u32,
    // 0 = no input at this step (one-to-many after step 1): pre_t is zero; 1 = pre_t is in
    // row t of h; 2 = one-hot token inputs: pre_t[b, j] = W_ih[j, tok[tok_off + b]] is
    // gathered here (W_ih (H, V) at wih_off), which saves a gather dispatch per step
    use_pre: u32,
    // 0 tanh, 1 sigmoid, 2 relu
    act: u32,
    tok_off: u32, vocab: u32, wih_off: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
// the (T_in, B) token ids; bound but unread unless use_pre = 2
@group(0) @binding(3) var<storage, read> tok: array<u32>;

fn sigmoid(z: f32) -> f32 {
    // never evaluates exp of a large positive number
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

fn activate(z: f32) -> f32 {
    switch p.act {
        // some backends return NaN for tanh of large |z|; tanh(±15) is ±1 in f32 already
        case 0u: { return tanh(clamp(z, -15.0, 15.0)); }
        case 1u: { return sigmoid(z); }
        default: { return max(z, 0.0); }
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

// W_hh[j, q] for the lane's 4 hidden units j at q (rows of W_hh are contiguous in q)
fn load_b(bc: vec4<u32>, q: u32) -> vec4<f32> {
    return vec4<f32>(w[bc.x + q], w[bc.y + q], w[bc.z + q], w[bc.w + q]);
}

// h_{t-1}[b0 + r, q] for the 8 sequences
fn load_a(lo_r: vec4<u32>, hi_r: vec4<u32>, q: u32) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(
        vec4<f32>(h[lo_r.x + q], h[lo_r.y + q], h[lo_r.z + q], h[lo_r.w + q]),
        vec4<f32>(h[hi_r.x + q], h[hi_r.y + q], h[hi_r.z + q], h[hi_r.w + q]),
    );
}

// h_t for sequence `bi`, hidden units j0..j0+4 (masked at the edges); pre_t is read from
// and h_t written to the same element, which no other invocation touches.
fn store_row(bi: u32, j0: u32, v: vec4<f32>) {
    if (bi >= p.batch) {
        return;
    }
    for (var s = 0u; s < 4u; s++) {
        let j = j0 + s;
        if (j < p.hidden) {
            let idx = p.cur_off + bi * p.hidden + j;
            var pre = 0.0;
            if (p.use_pre == 1u) {
                pre = h[idx];
            } else if (p.use_pre == 2u) {
                pre = w[p.wih_off + j * p.vocab + min(tok[p.tok_off + bi], p.vocab - 1u)];
            }
            pre += w[p.bih_off + j] + w[p.bhh_off + j];
            h[idx] = activate(pre + v[s]);
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
    let lo_r = p.prev_off + min(vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u), last_i) * p.hidden;
    let hi_r = p.prev_off + min(vec4<u32>(i0) + vec4<u32>(4u, 5u, 6u, 7u), last_i) * p.hidden;
    let bc = p.w_off + min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.hidden - 1u)) * p.hidden;
    let k = p.hidden;
    let k8 = k - k % 8u;
    for (var q0 = 0u; q0 < k8; q0 += 8u) {
        // lane u holds column q0 + u of the subgroup's 8 × 8 block of A
        let av = load_a(lo_r, hi_r, min(q0 + lane, k - 1u));
        let lo = av[0];
        let hi = av[1];
        fma_rows(subgroupBroadcast(lo, 0u), subgroupBroadcast(hi, 0u), load_b(bc, q0));
        fma_rows(subgroupBroadcast(lo, 1u), subgroupBroadcast(hi, 1u), load_b(bc, (q0 + 1u)));
        fma_rows(subgroupBroadcast(lo, 2u), subgroupBroadcast(hi, 2u), load_b(bc, (q0 + 2u)));
        fma_rows(subgroupBroadcast(lo, 3u), subgroupBroadcast(hi, 3u), load_b(bc, (q0 + 3u)));
        fma_rows(subgroupBroadcast(lo, 4u), subgroupBroadcast(hi, 4u), load_b(bc, (q0 + 4u)));
        fma_rows(subgroupBroadcast(lo, 5u), subgroupBroadcast(hi, 5u), load_b(bc, (q0 + 5u)));
        fma_rows(subgroupBroadcast(lo, 6u), subgroupBroadcast(hi, 6u), load_b(bc, (q0 + 6u)));
        fma_rows(subgroupBroadcast(lo, 7u), subgroupBroadcast(hi, 7u), load_b(bc, (q0 + 7u)));
    }
    // the last H % 8 steps: every lane loads its A values itself
    for (var q = k8; q < k; q++) {
        let av = load_a(lo_r, hi_r, q);
        fma_rows(av[0], av[1], load_b(bc, q));
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
