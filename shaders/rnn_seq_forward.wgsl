// The whole recurrence of one direction of one layer in one dispatch: every step of
// rnn_step_forward.wgsl, h_t = f(pre_t + (b_ih + b_hh) + W_hh · h_{t-1}), for t = 1..T (or
// T..1 for the reverse direction) inside the kernel. Sequences are independent, so a
// workgroup owns a block of BW sequences and all H units and needs no other workgroup: only
// barriers of its own separate the steps (WebGPU has no grid-wide sync, and none is needed).
// h is one direction's (T+1, B, H) buffer, rows as in the step kernel (gpu::workspace:
// forward h_t at row t, reverse hr_t at row t - 1); pre_t sits in the step's row and is
// replaced in place by h_t. A sequence shorter than t keeps its state (SPEC §1).
// activate() is common/rnn_act.wgsl's, the info slots common/batch_info.wgsl's and the
// block layout and its set-up (seq_block()), W_hh's tile and the accumulators
// common/seq_block.wgsl's, all prepended by kernels::Kernel::source().
//
// Why this shape: see common/seq_block.wgsl for the block. The sum over q runs in order with
// one fma per q: every element is the same fma chain as in rnn_step_forward.wgsl, so both
// paths give the same bits. h_{t-1} is read with addresses a whole group shares (one
// load, broadcast). W_hh, row j per unit, comes in one of three ways:
// - resident, when it fits in the tile: loaded once, it serves all T steps;
// - tiled (flag bit 1, for real GPUs): streamed through the tile as many rows of q at a time
//   as it holds, loaded coalesced (runs of 8 invocations read 8 consecutive q of a row) and
//   stored transposed, 4 units per vec4, so that the product reads one vec4 per invocation
//   per q and every group of the block reads the same entries;
// - direct (for lavapipe, where workgroup memory only adds copies): read from the storage
//   buffer, 4 rows per invocation, as the step kernel reads it.
struct P {
    batch: u32, hidden: u32, steps: u32,
    // bit 0: the reverse direction, t = T..1, hr_t at row t - 1 from row t (else t = 1..T,
    // h_t at row t from row t - 1); bit 1: stream W_hh through the tile (else read it from
    // storage) when it is not resident; bit 2: the layer has biases (else bih_off and
    // bhh_off are unread)
    flags: u32,
    w_off: u32, bih_off: u32, bhh_off: u32,
    // 0 tanh, 1 sigmoid, 2 relu
    act: u32,
    // for t ≤ pre_steps: 1 = pre_t is in row t of h; 2 = token inputs, pre_t[b, j] =
    // w[tab_off + j·tab_sj + tok[tok_off + (t - 1)·B + b]·tab_st] (as in rnn_step_forward.wgsl); steps past pre_steps
    // (one-to-many after step 1) have no input: pre_t = 0
    use_pre: u32, pre_steps: u32,
    tok_off: u32, vocab: u32, tab_off: u32, tab_sj: u32, tab_st: u32,
    // the index of sequence 0 in the whole batch, for the lengths in `info`
    b0: u32,
    // sequences per workgroup, 1..=32, and the vec4s of the tile used (520..=WT4)
    bw: u32, cap: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
// the (T_in, B) token ids; bound but unread unless use_pre = 2
@group(0) @binding(3) var<storage, read> tok: array<u32>;
@group(0) @binding(4) var<storage, read> info: array<u32>;

// W_hh[j, q] or 0 past the edge (the zeros are never summed: the product stops at H)
fn w_at(j: u32, q: u32) -> f32 {
    if (j < p.hidden && q < p.hidden) {
        return w[p.w_off + j * p.hidden + q];
    }
    return 0.0;
}

// 4 units' weights at column q, stored as one tile vec4
fn w_units(j: u32, q: u32) -> vec4<f32> {
    return vec4<f32>(w_at(j, q), w_at(j + 1u, q), w_at(j + 2u, q), w_at(j + 3u, q));
}

// Rows qc..qc + rows of q of the 4-unit groups jc / 4 .. + groups into the tile, transposed
// (tile row q, `stride` vec4s apart): the lanes as 8 q × 8 groups, so runs of 8 invocations
// read consecutive q of the same 4 rows of W_hh. The whole W_hh when resident.
fn load_tile(jc: u32, qc: u32, rows: u32, groups: u32, stride: u32, lid: u32) {
    let qs = lid & 7u;
    let gs = lid >> 3u;
    for (var q0 = 0u; q0 < rows; q0 += 8u) {
        for (var g0 = 0u; g0 < groups; g0 += 8u) {
            let q = q0 + qs;
            let g = g0 + gs;
            if (q < rows && g < groups) {
                wt[q * stride + g] = w_units(jc + 4u * g, qc + q);
            }
        }
    }
}

// h_{t-1} of the group's 4 sequences at column q
fn h_prev(prev: u32, seqs: vec4<u32>, q: u32) -> vec4<f32> {
    let c = prev + q;
    return vec4<f32>(h[c + seqs.x * p.hidden], h[c + seqs.y * p.hidden], h[c + seqs.z * p.hidden], h[c + seqs.w * p.hidden]);
}

// h_t of sequence bi, unit j from z's product part `acc`: the step kernel's epilogue.
// Every element of rows t and t-1 is read and written by the invocation that owns it.
fn store_h(t: u32, cur: u32, prev: u32, bi: u32, j: u32, acc: f32) {
    let idx = cur + bi * p.hidden + j;
    if (t > info[INFO_LENGTHS + p.b0 + bi]) {
        h[idx] = h[prev + bi * p.hidden + j];
        return;
    }
    var pre = 0.0;
    if (t <= p.pre_steps) {
        if (p.use_pre == 1u) {
            pre = h[idx];
        } else if (p.use_pre == 2u) {
            let tk = tok[p.tok_off + (t - 1u) * p.batch + bi];
            pre = w[p.tab_off + j * p.tab_sj + p.tab_st * min(tk, p.vocab - 1u)];
        }
    }
    if ((p.flags & 4u) != 0u) {
        pre += w[p.bih_off + j] + w[p.bhh_off + j];
    }
    h[idx] = activate(pre + acc, p.act);
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // every invocation stays to the end: all of them take part in every barrier
    let blk = seq_block(wg.x + wg.y * nwg.x, lid, p.batch, p.hidden, p.bw, p.cap, p.flags);
    if (blk.whole) {
        load_tile(0u, 0u, p.hidden, blk.stride - 1u, blk.stride, lid);
        workgroupBarrier();
    }
    let bh = p.batch * p.hidden;
    for (var k = 0u; k < p.steps; k++) {
        let t = select(k + 1u, p.steps - k, blk.reverse);
        let cur = select(t, t - 1u, blk.reverse) * bh;
        let prev = select(t - 1u, t, blk.reverse) * bh;
        for (var jc = 0u; jc < p.hidden; jc += 4u * blk.lanes) {
            zero_acc();
            let j0 = jc + 4u * blk.lane;
            if (blk.tiled) {
                for (var qc = 0u; qc < p.hidden; qc += blk.rows) {
                    // the previous tile's readers are done before it is overwritten
                    workgroupBarrier();
                    load_tile(jc, qc, min(blk.rows, p.hidden - qc), blk.stride - 1u, blk.stride, lid);
                    workgroupBarrier();
                    if (j0 < p.hidden) {
                        for (var q = 0u; q < min(blk.rows, p.hidden - qc); q++) {
                            mac(h_prev(prev, blk.seqs, qc + q), tile_at(q, blk.stride, blk.lane));
                        }
                    }
                }
            } else if (blk.whole && j0 < p.hidden) {
                for (var q = 0u; q < p.hidden; q++) {
                    mac(h_prev(prev, blk.seqs, q), tile_at(q, blk.stride, j0 / 4u));
                }
            } else if (j0 < p.hidden) {
                // rows past the edge are clamped: loads stay in bounds, results are dropped
                let units = min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.hidden - 1u));
                let wr = vec4<u32>(p.w_off) + units * p.hidden;
                for (var q = 0u; q < p.hidden; q++) {
                    mac(h_prev(prev, blk.seqs, q), vec4<f32>(w[wr.x + q], w[wr.y + q], w[wr.z + q], w[wr.w + q]));
                }
            }
            let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
            for (var r = 0u; r < 4u; r++) {
                let bi = blk.s0 + 4u * blk.grp + r;
                if (bi > blk.hi) {
                    break;
                }
                for (var s = 0u; s < 4u; s++) {
                    if (j0 + s < p.hidden) {
                        store_h(t, cur, prev, bi, j0 + s, acc[r][s]);
                    }
                }
            }
        }
        // h_t is in the storage buffer before any invocation loads it as h_{t-1}
        storageBarrier();
    }
}
