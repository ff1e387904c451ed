// The whole recurrence of one direction of one layer in one dispatch: every step of
// rnn_step_forward.wgsl, h_t = f(pre_t + (b_ih + b_hh) + W_hh · h_{t-1}), for t = 1..T (or
// T..1 for the reverse direction) inside the kernel. Sequences are independent, so a
// workgroup owns a block of BW sequences and all H units and needs no other workgroup: only
// barriers of its own separate the steps (WebGPU has no grid-wide sync, and none is needed).
// h is one direction's (T+1, B, H) buffer, rows as in the step kernel (gpu::workspace:
// forward h_t at row t, reverse hr_t at row t - 1); pre_t sits in the step's row and is
// replaced in place by h_t. A sequence shorter than t keeps its state (SPEC §1).
// activate() is common/rnn_act.wgsl's and the info slots common/batch_info.wgsl's,
// prepended by kernels::Kernel::source().
//
// Why this shape (for real GPUs; on lavapipe the per-step chain is the default): W_hh is
// streamed through workgroup memory in tiles of QT columns of q, loaded coalesced
// (consecutive invocations read consecutive q of a row of W_hh) and stored transposed, so
// that the product reads it as vec4s of 4 units, one per invocation, without bank conflicts
// (rows padded by one vec4). When the whole W_hh fits (H ≤ 56 with the 15 KiB used here, within
// WebGPU's 16 KiB minimum) it is loaded once and stays for all T steps. h_{t-1} of the block
// goes through workgroup memory as one vec4 (BW = 4 sequences) per q, read by all
// invocations at once (a broadcast). Each invocation owns 4 units × 4 sequences, as the step
// kernel's invocations do, and sums over q in order with one fma per q: every element is the
// same fma chain as in rnn_step_forward.wgsl, so both paths give the same bits.
struct P {
    batch: u32, hidden: u32, steps: u32,
    // 0: the forward direction, t = 1..T, h_t at row t from row t - 1; 1: the reverse
    // direction, t = T..1, hr_t at row t - 1 from row t
    reverse: u32,
    w_off: u32, bih_off: u32, bhh_off: u32,
    // 0 = a bias-free layer: bih_off and bhh_off are unread
    has_bias: u32,
    // 0 tanh, 1 sigmoid, 2 relu
    act: u32,
    // for t ≤ pre_steps: 1 = pre_t is in row t of h; 2 = one-hot token inputs, pre_t[b, j] =
    // W_ih[j, tok[tok_off + (t - 1)·B + b]] (W_ih (H, V) at wih_off); steps past pre_steps
    // (one-to-many after step 1) have no input: pre_t = 0
    use_pre: u32, pre_steps: u32,
    tok_off: u32, vocab: u32, wih_off: u32,
    // the index of sequence 0 in the whole batch, for the lengths in `info`
    b0: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
// the (T_in, B) token ids; bound but unread unless use_pre = 2
@group(0) @binding(3) var<storage, read> tok: array<u32>;
@group(0) @binding(4) var<storage, read> info: array<u32>;

const WG: u32 = 64u;
// sequences per workgroup: one vec4 of the state tile
const BW: u32 = 4u;
// units per chunk: 4 per invocation; larger H loops over chunks
const UC: u32 = 256u;
// columns of q per streamed tile of W_hh (a power of two: the load splits e by shifts)
const QT: u32 = 8u;
const QT_SHIFT: u32 = 3u;
// capacities in vec4s: W_hh tile (QT rows of up to 65, or a resident W_hh) and state tile
const WT4: u32 = 896u;
const HT: u32 = 64u;

// wt[q·s4 + i] = W_hh[jc + 4i .. jc + 4i + 4, qc + q]: row q of the tile, s4 vec4s apart
var<workgroup> wt: array<vec4<f32>, WT4>;
// ht[q] = h_{t-1}[s0 .. s0 + 4, qc + q]
var<workgroup> ht: array<vec4<f32>, HT>;

// The tile's layout: vec4s per row (the widest chunk's 4-unit groups plus one of padding,
// against bank conflicts on the transposed stores) and the columns of q per tile: all of
// them when W_hh fits whole (resident), else QT.
fn tile_layout() -> vec2<u32> {
    let s4 = min((p.hidden + 3u) / 4u, UC / 4u) + 1u;
    if (p.hidden <= UC && p.hidden <= HT && p.hidden * s4 <= WT4) {
        return vec2<u32>(s4, p.hidden);
    }
    return vec2<u32>(s4, QT);
}

// W_hh[j, q] or 0 past the edge (the zeros are never summed: the product stops at H)
fn w_at(j: u32, q: u32) -> f32 {
    if (j < p.hidden && q < p.hidden) {
        return w[p.w_off + j * p.hidden + q];
    }
    return 0.0;
}

// The whole W_hh into the tile (resident: once per dispatch; qt = H here, so the division
// by it runs once, not per step).
fn load_w_whole(s4: u32, lid: u32) {
    let n = 4u * (s4 - 1u) * p.hidden;
    for (var e = lid; e < n; e += WG) {
        let r = e / p.hidden;
        let q = e % p.hidden;
        wt[q * s4 + r / 4u][r % 4u] = w_at(r, q);
    }
}

// One QT-column tile of the chunk's rows: invocations e, e + 1 read q, q + 1 of one row.
fn load_w_tile(jc: u32, qc: u32, s4: u32, lid: u32) {
    let n = 4u * (s4 - 1u) * QT;
    for (var e = lid; e < n; e += WG) {
        let r = e >> QT_SHIFT;
        let q = e & (QT - 1u);
        wt[q * s4 + r / 4u][r % 4u] = w_at(jc + r, qc + q);
    }
}

// The block's previous states for columns qc..qc + qt (zeros past H), one vec4 per q.
fn load_h_tile(prev: u32, seqs: vec4<u32>, qc: u32, qt: u32, lid: u32) {
    for (var q = lid; q < qt; q += WG) {
        var v = vec4<f32>(0.0);
        if (qc + q < p.hidden) {
            let c = prev + qc + q;
            v = vec4<f32>(h[c + seqs.x * p.hidden], h[c + seqs.y * p.hidden], h[c + seqs.z * p.hidden], h[c + seqs.w * p.hidden]);
        }
        ht[q] = v;
    }
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
            pre = w[p.wih_off + j * p.vocab + min(tk, p.vocab - 1u)];
        }
    }
    if (p.has_bias != 0u) {
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
    let s0 = (wg.x + wg.y * nwg.x) * BW;
    let last = p.batch - 1u;
    // sequences past the batch are clamped: loads stay in bounds, results are dropped
    let seqs = min(vec4<u32>(s0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    let lay = tile_layout();
    let s4 = lay.x;
    let qt = lay.y;
    let resident = qt == p.hidden;
    if (resident) {
        load_w_whole(s4, lid);
    }
    let bh = p.batch * p.hidden;
    for (var k = 0u; k < p.steps; k++) {
        let t = select(k + 1u, p.steps - k, p.reverse != 0u);
        let cur = select(t, t - 1u, p.reverse != 0u) * bh;
        let prev = select(t - 1u, t, p.reverse != 0u) * bh;
        for (var jc = 0u; jc < p.hidden; jc += UC) {
            var acc0 = vec4<f32>(0.0);
            var acc1 = vec4<f32>(0.0);
            var acc2 = vec4<f32>(0.0);
            var acc3 = vec4<f32>(0.0);
            let j0 = jc + lid * 4u;
            for (var qc = 0u; qc < p.hidden; qc += qt) {
                // the previous tile's readers are done before it is overwritten
                workgroupBarrier();
                if (!resident) {
                    load_w_tile(jc, qc, s4, lid);
                }
                load_h_tile(prev, seqs, qc, qt, lid);
                workgroupBarrier();
                if (j0 < p.hidden) {
                    let qn = min(qt, p.hidden - qc);
                    for (var q = 0u; q < qn; q++) {
                        let hv = ht[q];
                        let wv = wt[q * s4 + lid];
                        acc0 = fma(vec4<f32>(hv.x), wv, acc0);
                        acc1 = fma(vec4<f32>(hv.y), wv, acc1);
                        acc2 = fma(vec4<f32>(hv.z), wv, acc2);
                        acc3 = fma(vec4<f32>(hv.w), wv, acc3);
                    }
                }
            }
            let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
            for (var r = 0u; r < BW; r++) {
                let bi = s0 + r;
                if (bi > last) {
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
