// One recurrent step of one layer, fused, with subgroup broadcasts (needs SUBGROUP; the
// plain twin is rnn_step_forward.wgsl): h_t = f(pre_t + (b_ih + b_hh) + W_hh · h_{t-1}).
// The product is the (B, H) × W_hh^T tile loop of common/sg_tile.wgsl (prepended, with
// common/rnn_act.wgsl, by kernels::Kernel::source()): a subgroup of S lanes owns
// 16 sequences × 2S hidden units, each lane 16 × 2; per 8 steps of q, lanes 0..7 load
// h_{t-1}[b, q + u] and share it by broadcast, each lane loads its own 2 rows of W_hh.
// The sum over q runs in order for every element, as in the plain kernel. A sequence
// shorter than `step` keeps its state (SPEC §1), as in the plain kernel.
struct P {
    batch: u32, hidden: u32,
    cur_off: u32, prev_off: u32,
    w_off: u32, bih_off: u32, bhh_off: u32,
    // 0 = no input at this step (one-to-many after step 1): pre_t is zero; 1 = pre_t is in
    // row t of h; 2 = token inputs: pre_t[b, j] = w[tab_off + j·tab_sj + tok[tok_off + b]·tab_st]
    // is gathered here (one-hot: W_ih (H, V), strides (V, 1); an embedding: the (V, H) table
    // of its rows times W_ih, strides (1, H)), which saves a gather dispatch per step
    use_pre: u32,
    // 0 tanh, 1 sigmoid, 2 relu
    act: u32,
    tok_off: u32, vocab: u32, tab_off: u32, tab_sj: u32, tab_st: u32,
    // 0 = a bias-free layer: bih_off and bhh_off are unread
    has_bias: u32,
    // t (1-based) and the index of sequence 0 in the whole batch, for the lengths in `info`
    step: u32, b0: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
// the (T_in, B) token ids; bound but unread unless use_pre = 2
@group(0) @binding(3) var<storage, read> tok: array<u32>;
@group(0) @binding(4) var<storage, read> info: array<u32>;

// B[q, j0..j0+2] at element `qb` = q·(q stride) past the clamped column addresses `bc`
fn load_b(bc: vec2<u32>, qb: u32) -> vec2<f32> {
    return vec2<f32>(w[bc.x + qb], w[bc.y + qb]);
}

// A[i0 + r, q] for the 16 rows at element `qa` = q·(q stride) past the row addresses
fn load_a(r: array<vec4<u32>, 4>, qa: u32) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        vec4<f32>(h[r[0].x + qa], h[r[0].y + qa], h[r[0].z + qa], h[r[0].w + qa]),
        vec4<f32>(h[r[1].x + qa], h[r[1].y + qa], h[r[1].z + qa], h[r[1].w + qa]),
        vec4<f32>(h[r[2].x + qa], h[r[2].y + qa], h[r[2].z + qa], h[r[2].w + qa]),
        vec4<f32>(h[r[3].x + qa], h[r[3].y + qa], h[r[3].z + qa], h[r[3].w + qa]),
    );
}

// h_t for sequence `bi`, hidden units j0..j0+2 (masked at the edges); pre_t is read from
// and h_t written to the same element, which no other invocation touches (a carried state
// is read from the previous row, which no invocation writes).
fn store_row(bi: u32, j0: u32, v: vec2<f32>) {
    if (bi >= p.batch) {
        return;
    }
    let carry = p.step > info[INFO_LENGTHS + p.b0 + bi];
    for (var s = 0u; s < 2u; s++) {
        let j = j0 + s;
        if (j < p.hidden) {
            let idx = p.cur_off + bi * p.hidden + j;
            if (carry) {
                h[idx] = h[p.prev_off + bi * p.hidden + j];
                continue;
            }
            var pre = 0.0;
            if (p.use_pre == 1u) {
                pre = h[idx];
            } else if (p.use_pre == 2u) {
                pre = w[p.tab_off + j * p.tab_sj + p.tab_st * min(tok[p.tok_off + bi], p.vocab - 1u)];
            }
            if (p.has_bias != 0u) {
                pre += w[p.bih_off + j] + w[p.bhh_off + j];
            }
            h[idx] = activate(pre + v[s], p.act);
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
    let tiles_n = sg_tiles_n(p.hidden, sg_size);
    // enough workgroups were launched for the largest subgroup size; surplus subgroups leave
    // (the whole subgroup at once, so the broadcasts in sg_tile_mac stay in uniform control
    // flow)
    if (tile >= ((p.batch + 15u) / 16u) * tiles_n) {
        return;
    }
    let i0 = (tile / tiles_n) * 16u;
    let j0 = (tile % tiles_n) * 2u * sg_size + lane * 2u;
    let rows = sg_tile_rows(p.prev_off, i0, p.batch, p.hidden);
    let bc = sg_tile_cols(p.w_off, j0, p.hidden, p.hidden);
    let zero = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    _ = sg_tile_mac(rows, bc, p.hidden, 1u, 1u, lane, false, zero);
    sg_tile_store(i0, j0);
}
