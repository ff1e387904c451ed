// One reverse step of one layer for real GPUs: rnn_step_backward.wgsl's contract (the same
// parameters and bindings) and bits, with W_hh^T · dz_{t+1} as the workgroup-tiled product of
// common/mm_tile.wgsl: op(A) = dz_{t+1} (B, H), op(B) = W_hh, both staged through workgroup
// memory with coalesced loads, 32 × 32 tiles of (B, H) per workgroup, 8 × 8 invocations of
// 4 × 4. The epilogue (store_c) is the plain kernel's store_dz. activation_grad() is
// common/rnn_act.wgsl's and the info slots common/batch_info.wgsl's, prepended with mm_tile
// by kernels::Kernel::source().
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
// dz_{t+1} is read from row next_off, dz_t written to rows dz_off and first_off, which no
// staging reads
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<storage, read> info: array<u32>;

const TILE: u32 = 32u;
const BK: u32 = 16u;
const WG: u32 = 8u;
const SUB: u32 = 1u;

// The bindings are the plain kernel's (so the launch code is shared), without vec4 views: an
// aligned group is four scalar loads (neighbouring invocations still read neighbouring groups).
fn load_a(i: u32) -> f32 {
    return dz[i];
}

fn load_a4(i: u32) -> vec4<f32> {
    return vec4<f32>(dz[i], dz[i + 1u], dz[i + 2u], dz[i + 3u]);
}

fn load_b(i: u32) -> f32 {
    return w[i];
}

fn load_b4(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}

// dz_t of sequence `bi`, unit j, from `fut` = (W_hh^T dz_{t+1})_j, as the plain kernel's
// store_dz. Past the sequence's length dz_t = 0 and the state gradient dh_t + fut, which a
// carried state receives whole, goes on to the previous step (SPEC §2); every element of dh
// is read and written by the invocation that owns it, so there is no race.
fn store_c(bi: u32, j: u32, fut: f32) {
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

@compute @workgroup_size(WG, WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    var oa = operand_a(p.next_off, p.batch, p.hidden, false);
    // at t = T the product is empty: every sum is +0, as the plain kernel's
    if (p.has_next == 0u) {
        oa.k = 0u;
    }
    let ob = operand_b(p.w_off, p.hidden, p.hidden, false);
    _ = mm_tile(oa, ob, lid, wg, nwg, false, 0.0);
}
