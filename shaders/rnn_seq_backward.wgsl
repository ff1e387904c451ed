// The whole reverse sweep of one direction of one layer in one dispatch: every step of
// rnn_step_backward.wgsl, dz_t = (dh_t + W_hh^T · dz_next) ⊙ f'(h_t), from the last step
// the direction computed to its first (t = T..1 forward, 1..T reverse), inside the kernel.
// A workgroup owns a block of bw sequences and all H units, as in rnn_seq_forward.wgsl,
// and only barriers of its own separate the steps. f' is written with the output h = f(z)
// (activation_grad() of common/rnn_act.wgsl; the info slots of common/batch_info.wgsl; the
// block layout and its set-up (seq_block()), W_hh's tile and the accumulators of
// common/seq_block.wgsl; all prepended by kernels::Kernel::source()).
//
// Buffers as the step kernel reads them (gpu::schedule::backward): dh (T or T+1, B, H·dirs)
// with this direction's columns at dh_col, B rows of dh_stride floats per step, the
// gradient of step t in row t - 1 (many-to-one: the head's, at the direction's last step,
// in row T); h one direction's (T+1, B, H) states; dz (T, B, H) at dz_off, step t in row
// t - 1. Past a sequence's length dz_t = 0, and the forward direction (whose padding
// carries the state) passes the state gradient dh_t + W_hh^T dz_next on to dh of step
// t - 1 (SPEC §2); the reverse direction also writes dz of each sequence's last step at
// first_off (its first computed, which gives dh0).
//
// W_hh^T · dz_next as rows: (dz_next · W_hh)[j] = Σ_q dz_next[q] W_hh[q, j], a row of W_hh
// per q, of which consecutive invocations read consecutive units: coalesced as stored. So
// the tile keeps W_hh's layout (row q, 4 units per vec4) whether resident (loaded once),
// tiled (flag bit 1: streamed as many rows at a time as the tile holds, read once per block
// for all its groups) or
// direct (read from storage by each invocation). dz_next is read with addresses a whole
// group shares. The sum over q runs in order with one fma per q: the step kernel's chain,
// the same bits.
struct P {
    batch: u32, hidden: u32, steps: u32,
    // bit 0: the reverse direction's sweep, t = 1..T, dz_next = dz_{t-1} (else t = T..1,
    // dz_next = dz_{t+1}); bit 1: stream W_hh through the tile when it is not resident
    flags: u32,
    w_off: u32,
    // 0 tanh, 1 sigmoid, 2 relu
    act: u32,
    // floats between sequences in dh, and this direction's first column
    dh_stride: u32, dh_col: u32,
    // 1 = many-to-one's top layer: the direction's last step reads dh row T
    head_row: u32,
    dz_off: u32,
    // the index of sequence 0 in the whole batch, for the lengths in `info`
    b0: u32,
    has_first: u32, first_off: u32,
    // sequences per workgroup, 1..=32, and the vec4s of the tile used (520..=WT4)
    bw: u32, cap: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dh: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<storage, read> info: array<u32>;

fn w_at(q: u32, j: u32) -> f32 {
    if (j < p.hidden && q < p.hidden) {
        return w[p.w_off + q * p.hidden + j];
    }
    return 0.0;
}

// W_hh[q, j .. j + 4], one tile vec4
fn w_units(q: u32, j: u32) -> vec4<f32> {
    return vec4<f32>(w_at(q, j), w_at(q, j + 1u), w_at(q, j + 2u), w_at(q, j + 3u));
}

// Rows qc..qc + rows of W_hh, the 4-unit groups jc / 4 .. + stride - 1, into the tile:
// invocations g, g + 1 read units 4g, 4g + 4 of a row.
fn load_rows(jc: u32, qc: u32, rows: u32, stride: u32, lid: u32) {
    for (var q = 0u; q < rows; q++) {
        for (var g = lid; g < stride - 1u; g += WG) {
            wt[q * stride + g] = w_units(qc + q, jc + 4u * g);
        }
    }
}

// dz_next of the group's 4 sequences at column q
fn g_next(next: u32, seqs: vec4<u32>, q: u32) -> vec4<f32> {
    let c = next + q;
    return vec4<f32>(dz[c + seqs.x * p.hidden], dz[c + seqs.y * p.hidden], dz[c + seqs.z * p.hidden], dz[c + seqs.w * p.hidden]);
}

// dz_t of sequence bi, unit j from `fut` = (W_hh^T dz_next)_j: the step kernel's epilogue.
// Every element of dh, h and dz it touches belongs to this invocation alone.
fn store_dz(t: u32, dh_row: u32, bi: u32, j: u32, fut: f32) {
    let idx = bi * p.hidden + j;
    let row = p.batch * p.dh_stride;
    let di = p.dh_col + bi * p.dh_stride + j;
    let g = dh[dh_row * row + di] + fut;
    let len = info[INFO_LENGTHS + p.b0 + bi];
    let out = p.dz_off + (t - 1u) * p.batch * p.hidden + idx;
    if (t > len) {
        dz[out] = 0.0;
        // t > len ≥ 1: the forward direction's previous step exists
        if ((p.flags & 1u) == 0u) {
            dh[(t - 2u) * row + di] += g;
        }
        return;
    }
    let hrow = select(t, t - 1u, (p.flags & 1u) != 0u);
    let d = g * activation_grad(h[hrow * p.batch * p.hidden + idx], p.act);
    dz[out] = d;
    if (p.has_first != 0u && t == len) {
        dz[p.first_off + idx] = d;
    }
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
        load_rows(0u, 0u, p.hidden, blk.stride, lid);
        workgroupBarrier();
    }
    let bh = p.batch * p.hidden;
    for (var k = 0u; k < p.steps; k++) {
        let t = select(p.steps - k, k + 1u, blk.reverse);
        let dh_row = select(t - 1u, p.steps, p.head_row != 0u && k == 0u);
        // the step before in this sweep; none at k = 0, where dz_next = 0
        let next = p.dz_off + select(t, t - 2u, blk.reverse) * bh;
        for (var jc = 0u; jc < p.hidden; jc += 4u * blk.lanes) {
            zero_acc();
            let j0 = jc + 4u * blk.lane;
            if (k > 0u && blk.tiled) {
                for (var qc = 0u; qc < p.hidden; qc += blk.rows) {
                    // the previous tile's readers are done before it is overwritten
                    workgroupBarrier();
                    let n = min(blk.rows, p.hidden - qc);
                    load_rows(jc, qc, n, blk.stride, lid);
                    workgroupBarrier();
                    if (j0 < p.hidden) {
                        for (var q = 0u; q < n; q++) {
                            mac(g_next(next, blk.seqs, qc + q), tile_at(q, blk.stride, blk.lane));
                        }
                    }
                }
            } else if (k > 0u && blk.whole && j0 < p.hidden) {
                for (var q = 0u; q < p.hidden; q++) {
                    mac(g_next(next, blk.seqs, q), tile_at(q, blk.stride, j0 / 4u));
                }
            } else if (k > 0u && j0 < p.hidden) {
                // columns past the edge are clamped: loads stay in bounds, results are dropped
                let cols = min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.hidden - 1u));
                let wc = vec4<u32>(p.w_off) + cols;
                for (var q = 0u; q < p.hidden; q++) {
                    let r = q * p.hidden;
                    mac(g_next(next, blk.seqs, q), vec4<f32>(w[wc.x + r], w[wc.y + r], w[wc.z + r], w[wc.w + r]));
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
                        store_dz(t, dh_row, bi, j0 + s, acc[r][s]);
                    }
                }
            }
        }
        // dz_t is in the storage buffer before any invocation loads it as dz_next
        storageBarrier();
    }
}
