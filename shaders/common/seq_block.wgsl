// The block layout shared by the whole-sequence kernels (rnn_seq_forward.wgsl,
// rnn_seq_backward.wgsl), prepended to each by kernels::Kernel::source() (WGSL has no
// #include). Names no binding: every size comes in as an argument.
//
// A workgroup of 64 invocations owns bw sequences (1..=32) and all H units. It splits into
// `groups` groups of 4 sequences (a power of two, the fewest that hold bw), each of
// 64 / groups invocations (`lanes`); invocation `lane` of group `grp` owns units
// j0 .. j0 + 4 of every chunk of 4 · lanes units, for the group's 4 sequences: a 4 × 4
// block of accumulators. Groups past bw, and sequences past the batch, compute clamped
// duplicates whose results are dropped.
//
// W_hh's workgroup tile `wt` holds either the whole W_hh (resident: loaded once per dispatch,
// `resident_stride` vec4s per row) or rows of q of one chunk (streamed, `tile_stride` vec4s
// per row: the chunk's 4-unit groups plus one vec4 of padding, so that the stores of
// consecutive q and the product's reads of consecutive groups fall in different banks).
// Every group reads the same tile entries: the tile is W_hh's reuse across the block's
// sequences. Its size WT4 (vec4s) is a pipeline constant, the adapter's workgroup storage
// (kernels::Kernels::new); a dispatch uses `cap` ≤ WT4 of it (at least 520: 8 rows of the
// widest chunk), so that tests can run small tiles on a large adapter.

const WG: u32 = 64u;
override WT4: u32 = 1024u;

var<workgroup> wt: array<vec4<f32>, WT4>;

// the 4 × 4 block: acc_r[s] for sequence r, unit j0 + s of the group (named vec4s: lavapipe
// keeps an indexed private array in scratch memory)
var<private> acc0: vec4<f32>;
var<private> acc1: vec4<f32>;
var<private> acc2: vec4<f32>;
var<private> acc3: vec4<f32>;

fn zero_acc() {
    acc0 = vec4<f32>(0.0);
    acc1 = vec4<f32>(0.0);
    acc2 = vec4<f32>(0.0);
    acc3 = vec4<f32>(0.0);
}

// one q of the product: a[r] (sequence r's operand at q) times v (4 units' weights at q),
// one fma per element, so the sum over q runs in order as in the step kernels
fn mac(a: vec4<f32>, v: vec4<f32>) {
    acc0 = fma(vec4<f32>(a.x), v, acc0);
    acc1 = fma(vec4<f32>(a.y), v, acc1);
    acc2 = fma(vec4<f32>(a.z), v, acc2);
    acc3 = fma(vec4<f32>(a.w), v, acc3);
}

// groups of 4 sequences for bw sequences: 1, 2, 4 or 8
fn seq_groups(bw: u32) -> u32 {
    var g = 1u;
    while (4u * g < bw && g < 8u) {
        g *= 2u;
    }
    return g;
}

// The group's 4 sequences (s0 the workgroup's first), clamped to the block's last valid one
// `hi` so that every load stays in bounds.
fn group_seqs(s0: u32, grp: u32, hi: u32) -> vec4<u32> {
    return min(vec4<u32>(s0 + 4u * grp) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(hi));
}

fn resident_stride(hidden: u32) -> u32 {
    return (hidden + 3u) / 4u + 1u;
}

fn is_resident(hidden: u32, cap: u32) -> bool {
    return hidden * resident_stride(hidden) <= min(cap, WT4);
}

fn tile_stride(hidden: u32, lanes: u32) -> u32 {
    return min((hidden + 3u) / 4u, lanes) + 1u;
}

// rows of q per streamed tile: as many as `cap` holds (at least 8: the host checks cap), at
// most H; never 0, which would never end the loop over tiles
fn tile_rows(hidden: u32, stride: u32, cap: u32) -> u32 {
    return max(min(min(cap, WT4) / stride, hidden), 1u);
}

// The tile entry of 4-unit group g at row q of the resident W_hh or the streamed tile.
fn tile_at(q: u32, stride: u32, g: u32) -> vec4<f32> {
    return wt[q * stride + g];
}

// Where one invocation works: the shared set-up of both kernels' `main`. `wg_index` is the
// workgroup's flat index, `flags` the kernels' bits 0 (reverse) and 1 (stream W_hh).
struct Block {
    // the block's first sequence and its last valid one (below s0 only in a surplus
    // workgroup, which stores nothing)
    s0: u32, hi: u32,
    // invocations per group, this invocation's group and lane in it
    lanes: u32, grp: u32, lane: u32,
    // the group's 4 sequences, clamped to hi
    seqs: vec4<u32>,
    // W_hh resident in the tile; streamed through it; the reverse direction
    whole: bool, tiled: bool, reverse: bool,
    // vec4s per tile row, rows of q per streamed tile
    stride: u32, rows: u32,
}

fn seq_block(wg_index: u32, lid: u32, batch: u32, hidden: u32, bw: u32, cap: u32, flags: u32) -> Block {
    var b: Block;
    b.s0 = wg_index * bw;
    b.hi = min(b.s0 + bw, batch) - 1u;
    b.lanes = WG / seq_groups(bw);
    b.grp = lid / b.lanes;
    b.lane = lid % b.lanes;
    b.seqs = group_seqs(b.s0, b.grp, b.hi);
    b.whole = is_resident(hidden, cap);
    b.tiled = !b.whole && (flags & 2u) != 0u;
    b.reverse = (flags & 1u) != 0u;
    b.stride = select(tile_stride(hidden, b.lanes), resident_stride(hidden), b.whole);
    b.rows = tile_rows(hidden, b.stride, cap);
    return b;
}

