// One reverse step of one layer, fused: dz_t = (dh_t + W_hh^T · dz_{t+1}) ⊙ f'(h_t).
// Twin of the reverse sweep in cpu::backward. f' is written with the output h = f(z)
// (activation_grad() of common/rnn_act.wgsl; the info slots of common/batch_info.wgsl; both
// prepended by kernels::Kernel::source()). dh is read at dh_off + b·dh_stride + j: one
// direction's columns of the gradient arriving from the head or the layer above.
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

// Each invocation computes a 4 (sequences) × 4 (hidden units) block, as in
// rnn_step_forward.wgsl; the sum over q runs in order for every element.
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j0 = gid.x * 4u;
    let b0 = (gid.y + gid.z * nwg.y * 8u) * 4u;
    if (b0 >= p.batch || j0 >= p.hidden) {
        return;
    }
    // rows/columns past the edge are clamped: loads stay in bounds, results are dropped
    var wc: vec4<u32>;
    var dr: vec4<u32>;
    for (var r = 0u; r < 4u; r++) {
        wc[r] = p.w_off + min(j0 + r, p.hidden - 1u);
        dr[r] = p.next_off + min(b0 + r, p.batch - 1u) * p.hidden;
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    if (p.has_next != 0u) {
        // columns j of W_hh: W_hh^T dz as a row is dz · W_hh
        for (var q = 0u; q < p.hidden; q++) {
            let row = q * p.hidden;
            let wv = vec4<f32>(w[wc.x + row], w[wc.y + row], w[wc.z + row], w[wc.w + row]);
            acc0 = fma(vec4<f32>(dz[dr.x + q]), wv, acc0);
            acc1 = fma(vec4<f32>(dz[dr.y + q]), wv, acc1);
            acc2 = fma(vec4<f32>(dz[dr.z + q]), wv, acc2);
            acc3 = fma(vec4<f32>(dz[dr.w + q]), wv, acc3);
        }
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        let bi = b0 + r;
        if (bi >= p.batch) {
            break;
        }
        for (var s = 0u; s < 4u; s++) {
            let j = j0 + s;
            if (j < p.hidden) {
                store_dz(bi, j, acc[r][s]);
            }
        }
    }
}
