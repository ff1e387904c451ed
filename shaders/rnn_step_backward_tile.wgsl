// One reverse step of one layer for real GPUs: rnn_step_backward.wgsl's contract (the same
// parameters and bindings) and bits, with W_hh^T · dz_{t+1} as the workgroup-tiled product of
// common/mm_tile.wgsl: op(A) = dz_{t+1} (B, H), op(B) = W_hh, both staged through workgroup
// memory with coalesced loads, 32 × 32 tiles of (B, H) per workgroup, 8 × 8 invocations of
// 4 × 4. Parameters, bindings and the epilogue store_dz() are
// common/rnn_step_backward_io.wgsl's, prepended with mm_tile by kernels::Kernel::source();
// dz_{t+1} is staged from row next_off, which no store writes.

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

fn store_c(bi: u32, j: u32, fut: f32) {
    store_dz(bi, j, fut);
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
