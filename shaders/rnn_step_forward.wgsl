// One recurrent step of one layer, fused: h_t = f(pre_t + (b_ih + b_hh) + W_hh · h_{t-1}).
// Twin of the recurrence loop in cpu::forward. h is one direction's (T+1, B, H) buffer;
// pre_t (the input projection, written by matmul or embed_gather) sits in the step's row and
// is replaced in place by h_t: each invocation reads and writes only its own element of it.
// A sequence shorter than `step` keeps its state (SPEC §1): h_t = h_{t-1}, the previous row.
// activate() is common/rnn_act.wgsl's and the info slots common/batch_info.wgsl's,
// prepended by kernels::Kernel::source().
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

// Each invocation computes a 4 (sequences) × 4 (hidden units) block, so every loaded
// weight and state feeds four multiply-adds (loads dominate on lavapipe). The sum over q
// runs in order for every element, as in a one-element-per-invocation kernel.
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j0 = gid.x * 4u;
    let b0 = (gid.y + gid.z * nwg.y * 8u) * 4u;
    if (b0 >= p.batch || j0 >= p.hidden) {
        return;
    }
    // rows/columns past the edge are clamped: loads stay in bounds, results are dropped
    var wr: vec4<u32>;
    var hr: vec4<u32>;
    for (var r = 0u; r < 4u; r++) {
        wr[r] = p.w_off + min(j0 + r, p.hidden - 1u) * p.hidden;
        hr[r] = p.prev_off + min(b0 + r, p.batch - 1u) * p.hidden;
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var q = 0u; q < p.hidden; q++) {
        let wv = vec4<f32>(w[wr.x + q], w[wr.y + q], w[wr.z + q], w[wr.w + q]);
        acc0 = fma(vec4<f32>(h[hr.x + q]), wv, acc0);
        acc1 = fma(vec4<f32>(h[hr.y + q]), wv, acc1);
        acc2 = fma(vec4<f32>(h[hr.z + q]), wv, acc2);
        acc3 = fma(vec4<f32>(h[hr.w + q]), wv, acc3);
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        let bi = b0 + r;
        if (bi >= p.batch) {
            break;
        }
        let carry = p.step > info[INFO_LENGTHS + p.b0 + bi];
        for (var s = 0u; s < 4u; s++) {
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
                h[idx] = activate(pre + acc[r][s], p.act);
            }
        }
    }
}
