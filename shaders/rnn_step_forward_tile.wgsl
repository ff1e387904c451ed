// One recurrent step of one layer for real GPUs: rnn_step_forward.wgsl's contract (the same
// parameters and bindings) and bits, with W_hh · h_{t-1} as the workgroup-tiled product of
// common/mm_tile.wgsl: op(A) = h_{t-1} (B, H), op(B) = W_hh^T (W_hh row-major, read as
// stored), both staged through workgroup memory with coalesced loads, 32 × 32 tiles of
// (B, H) per workgroup, 8 × 8 invocations of 4 × 4. The epilogue (store_c) is the plain
// kernel's: carry past the length, pre_t, biases, activate(). activate() is
// common/rnn_act.wgsl's and the info slots common/batch_info.wgsl's, prepended with mm_tile
// by kernels::Kernel::source().
struct P {
    batch: u32, hidden: u32,
    cur_off: u32, prev_off: u32,
    w_off: u32, bih_off: u32, bhh_off: u32,
    // 0 = no input at this step (one-to-many after step 1): pre_t is zero; 1 = pre_t is in
    // row t of h; 2 = token inputs: pre_t[b, j] = w[tab_off + j·tab_sj + tok[tok_off + b]·tab_st]
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
// one direction's (T+1, B, H) states: h_{t-1} is read from row prev_off, h_t written to row
// cur_off, which no staging reads
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
// the (T_in, B) token ids; bound but unread unless use_pre = 2
@group(0) @binding(3) var<storage, read> tok: array<u32>;
@group(0) @binding(4) var<storage, read> info: array<u32>;

const TILE: u32 = 32u;
const BK: u32 = 16u;
const WG: u32 = 8u;
const SUB: u32 = 1u;

// The bindings are the plain kernel's (so the launch code is shared), without vec4 views: an
// aligned group is four scalar loads (neighbouring invocations still read neighbouring groups).
fn load_a(i: u32) -> f32 {
    return h[i];
}

fn load_a4(i: u32) -> vec4<f32> {
    return vec4<f32>(h[i], h[i + 1u], h[i + 2u], h[i + 3u]);
}

fn load_b(i: u32) -> f32 {
    return w[i];
}

fn load_b4(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}

// h_t[bi, j] from acc = (W_hh h_{t-1})_j, in the plain kernel's order: pre, + (b_ih + b_hh),
// + acc. A sequence shorter than `step` keeps its state (SPEC §1). Each element of row t is
// read and written only by the invocation that owns it.
fn store_c(bi: u32, j: u32, acc: f32) {
    let idx = p.cur_off + bi * p.hidden + j;
    if (p.step > info[INFO_LENGTHS + p.b0 + bi]) {
        h[idx] = h[p.prev_off + bi * p.hidden + j];
        return;
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
    h[idx] = activate(pre + acc, p.act);
}

@compute @workgroup_size(WG, WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let oa = operand_a(p.prev_off, p.batch, p.hidden, false);
    // op(B)[q, j] = W_hh[j, q]: W_hh as stored is op(B) transposed
    let ob = operand_b(p.w_off, p.hidden, p.hidden, true);
    _ = mm_tile(oa, ob, lid, wg, nwg, false, 0.0);
}
