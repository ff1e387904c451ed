// The contract shared by the reverse step kernels (rnn_step_backward.wgsl and its subgroup
// and tiled twins, which differ only in how they compute W_hh^T · dz_{t+1}): the parameters,
// the bindings and the epilogue store_dz(), prepended to each by kernels::Kernel::source().
// activation_grad() is common/rnn_act.wgsl's and the info slots common/batch_info.wgsl's.
struct P {
    batch: u32, hidden: u32,
    dh_off: u32, h_off: u32,
    dz_off: u32, next_off: u32,
    // 0 at t = T: dz_{T+1} = 0
    has_next: u32,
    w_off: u32,
    // 0 tanh, 1 sigmoid, 2 relu
    act: u32,
    // floats between sequences in dh: H, or 2H where both directions share a (T, B, 2H) buffer
    dh_stride: u32,
    // t (1-based) and the index of sequence 0 in the whole batch, for the lengths in `info`
    step: u32, b0: u32,
    // 1 = a step past a sequence's length passes its state gradient on to the previous
    // step's dh at carry_off (the forward direction, whose padding carries the state)
    carry: u32, carry_off: u32,
    // 1 = also write dz at first_off on the step of each sequence's length (the reverse
    // direction's first step, whose dz gives dh0)
    has_first: u32, first_off: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dh: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
// dz_{t+1} is read from row next_off, dz_t written to rows dz_off and first_off
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<storage, read> info: array<u32>;

// dz_t of sequence `bi`, unit j, from `fut` = (W_hh^T dz_{t+1})_j. Past the sequence's
// length dz_t = 0 and the state gradient dh_t + fut, which a carried state receives whole,
// goes on to the previous step (SPEC §2); every element of dh is read and written by the
// invocation that owns it, so there is no race.
fn store_dz(bi: u32, j: u32, fut: f32) {
    let idx = bi * p.hidden + j;
    let di = bi * p.dh_stride + j;
    let g = dh[p.dh_off + di] + fut;
    let len = info[INFO_LENGTHS + p.b0 + bi];
    if (p.step > len) {
        dz[p.dz_off + idx] = 0.0;
        if (p.carry != 0u) {
            dh[p.carry_off + di] += g;
        }
        return;
    }
    let d = g * activation_grad(h[p.h_off + idx], p.act);
    dz[p.dz_off + idx] = d;
    if (p.has_first != 0u && p.step == len) {
        dz[p.first_off + idx] = d;
    }
}
