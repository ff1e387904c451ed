// The whole reverse sweep of one direction of one layer in one dispatch: every step of
// rnn_step_backward.wgsl, dz_t = (dh_t + W_hh^T · dz_next) ⊙ f'(h_t), from the last step
// the direction computed to its first (t = T..1 forward, 1..T reverse), inside the kernel.
// A workgroup owns a block of BW sequences and all H units, as in rnn_seq_forward.wgsl,
// and only barriers of its own separate the steps. f' is written with the output h = f(z)
// (activation_grad() of common/rnn_act.wgsl; the info slots of common/batch_info.wgsl; both
// prepended by kernels::Kernel::source()).
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
// W_hh^T · dz_next as rows: (dz_next · W_hh)[j] = Σ_q dz_next[q] W_hh[q, j], so the tiles of
// W_hh hold rows q, loaded coalesced and stored as they are (consecutive invocations,
// consecutive j); dz_next of the block goes through workgroup memory, one vec4 per q. The
// sum over q runs in order with one fma per q: the same chain as the step kernel.
struct P {
    batch: u32, hidden: u32, steps: u32,
    // 0: the forward direction's sweep, t = T..1, dz_next = dz_{t+1}; 1: the reverse
    // direction's, t = 1..T, dz_next = dz_{t-1}
    reverse: u32,
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
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dh: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<storage, read> info: array<u32>;

const WG: u32 = 64u;
const BW: u32 = 4u;
const UC: u32 = 256u;
const QT: u32 = 8u;
const WT4: u32 = 896u;
const HT: u32 = 64u;

// wt[q·s4 + i] = W_hh[qc + q, jc + 4i .. jc + 4i + 4]
var<workgroup> wt: array<vec4<f32>, WT4>;
// gt[q] = dz_next[s0 .. s0 + 4, qc + q]
var<workgroup> gt: array<vec4<f32>, HT>;

// As in rnn_seq_forward.wgsl: vec4s per tile row, and columns of q per tile (all when
// W_hh is resident).
fn tile_layout() -> vec2<u32> {
    let s4 = min((p.hidden + 3u) / 4u, UC / 4u) + 1u;
    if (p.hidden <= UC && p.hidden <= HT && p.hidden * s4 <= WT4) {
        return vec2<u32>(s4, p.hidden);
    }
    return vec2<u32>(s4, QT);
}

fn w_at(q: u32, j: u32) -> f32 {
    if (j < p.hidden && q < p.hidden) {
        return w[p.w_off + q * p.hidden + j];
    }
    return 0.0;
}

// Rows qc..qc + qt of W_hh, the chunk's columns: invocations c, c + 1 read j, j + 1 of a row.
fn load_w(jc: u32, qc: u32, qt: u32, s4: u32, lid: u32) {
    let width = 4u * (s4 - 1u);
    for (var q = 0u; q < qt; q++) {
        for (var c = lid; c < width; c += WG) {
            wt[q * s4 + c / 4u][c % 4u] = w_at(qc + q, jc + c);
        }
    }
}

fn load_g_tile(next: u32, seqs: vec4<u32>, qc: u32, qt: u32, lid: u32) {
    for (var q = lid; q < qt; q += WG) {
        var v = vec4<f32>(0.0);
        if (qc + q < p.hidden) {
            let c = next + qc + q;
            v = vec4<f32>(dz[c + seqs.x * p.hidden], dz[c + seqs.y * p.hidden], dz[c + seqs.z * p.hidden], dz[c + seqs.w * p.hidden]);
        }
        gt[q] = v;
    }
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
        if (p.reverse == 0u) {
            dh[(t - 2u) * row + di] += g;
        }
        return;
    }
    let hrow = select(t, t - 1u, p.reverse != 0u);
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
    let s0 = (wg.x + wg.y * nwg.x) * BW;
    let last = p.batch - 1u;
    let seqs = min(vec4<u32>(s0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    let lay = tile_layout();
    let s4 = lay.x;
    let qt = lay.y;
    let resident = qt == p.hidden;
    if (resident) {
        load_w(0u, 0u, qt, s4, lid);
    }
    let bh = p.batch * p.hidden;
    for (var k = 0u; k < p.steps; k++) {
        let t = select(p.steps - k, k + 1u, p.reverse != 0u);
        // the step before in this sweep (none at k = 0: dz_next = 0)
        let next = p.dz_off + select(t, t - 2u, p.reverse != 0u) * bh;
        let dh_row = select(t - 1u, p.steps, p.head_row != 0u && k == 0u);
        for (var jc = 0u; jc < p.hidden; jc += UC) {
            var acc0 = vec4<f32>(0.0);
            var acc1 = vec4<f32>(0.0);
            var acc2 = vec4<f32>(0.0);
            var acc3 = vec4<f32>(0.0);
            let j0 = jc + lid * 4u;
            for (var qc = 0u; k > 0u && qc < p.hidden; qc += qt) {
                workgroupBarrier();
                if (!resident) {
                    load_w(jc, qc, qt, s4, lid);
                }
                load_g_tile(next, seqs, qc, qt, lid);
                workgroupBarrier();
                if (j0 < p.hidden) {
                    let qn = min(qt, p.hidden - qc);
                    for (var q = 0u; q < qn; q++) {
                        let gv = gt[q];
                        let wv = wt[q * s4 + lid];
                        acc0 = fma(vec4<f32>(gv.x), wv, acc0);
                        acc1 = fma(vec4<f32>(gv.y), wv, acc1);
                        acc2 = fma(vec4<f32>(gv.z), wv, acc2);
                        acc3 = fma(vec4<f32>(gv.w), wv, acc3);
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
                        store_dz(t, dh_row, bi, j0 + s, acc[r][s]);
                    }
                }
            }
        }
        // dz_t is in the storage buffer before any invocation loads it as dz_next
        storageBarrier();
    }
}
