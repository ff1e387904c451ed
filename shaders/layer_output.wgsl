// A layer's output y (steps, B, H·dirs) as the layer above and the head read it: row by row
// the concatenation [h_fwd ; h_rev] of the two directions' states (SPEC §1, bidirectional),
// times the dropout mask m[layer] in training (SPEC §1: unit u of sequence b0 + b at step
// t0 + s). Twin of the layer output in cpu::forward. The states are (·, B, H) buffers, row
// s of the copy at fwd_off / rev_off + s·B·H. With grad = 1 it instead multiplies the
// gradient arriving at y in place by the same mask (SPEC §2), reading no state. One
// invocation per element of y; common/batch_info.wgsl and common/dropout.wgsl are
// prepended by kernels::Kernel::source().
struct P {
    steps: u32, batch: u32, hidden: u32, dirs: u32,
    fwd_off: u32, rev_off: u32, dst_off: u32,
    // 1 = apply the mask of layer `layer` (training only)
    dropout: u32, layer: u32,
    // the step of row 0 (1-based) and the index of sequence 0 in the whole batch
    t0: u32, b0: u32,
    grad: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> fwd: array<f32>;
// bound but unread with one direction
@group(0) @binding(3) var<storage, read> rev: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let w = p.hidden * p.dirs;
    if (i >= p.steps * p.batch * w) {
        return;
    }
    let u = i % w;
    // the state row s·B + b of (s, b)
    let sb = i / w;
    var f = 1.0;
    if (p.dropout != 0u) {
        let key = INFO_DROPOUT;
        let scale = bitcast<f32>(info[key + 2u]);
        f = dropout_factor(info[key], info[key + 1u], scale, p.layer, p.t0 + sb / p.batch, p.b0 + sb % p.batch, u);
    }
    if (p.grad != 0u) {
        dst[p.dst_off + i] *= f;
        return;
    }
    var v: f32;
    if (u < p.hidden) {
        v = fwd[p.fwd_off + sb * p.hidden + u];
    } else {
        v = rev[p.rev_off + sb * p.hidden + u - p.hidden];
    }
    dst[p.dst_off + i] = v * f;
}
