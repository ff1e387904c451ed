// The contract shared by the forward step kernels (rnn_step_forward.wgsl and its subgroup
// and tiled twins, which differ only in how they compute W_hh · h_{t-1}): the parameters,
// the bindings and the epilogue, prepended to each by kernels::Kernel::source(). activate()
// is common/rnn_act.wgsl's and the info slots common/batch_info.wgsl's.
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
// one direction's (T+1, B, H) states: h_{t-1} is read from row prev_off, h_t written to row
// cur_off (pre_t, when in place, is read from the element it replaces)
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
// the (T_in, B) token ids; bound but unread unless use_pre = 2
@group(0) @binding(3) var<storage, read> tok: array<u32>;
@group(0) @binding(4) var<storage, read> info: array<u32>;

// h_t[bi, j] from acc = (W_hh h_{t-1})_j: pre_t, + (b_ih + b_hh), + acc, then f. A sequence
// shorter than `step` keeps its state (SPEC §1): h_t = h_{t-1}. Each element of row t is read
// and written only by the invocation that owns it; the previous row is never written.
fn step_h(bi: u32, j: u32, acc: f32) {
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
