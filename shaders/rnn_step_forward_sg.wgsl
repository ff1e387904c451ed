// One recurrent step of one layer, fused, with subgroup broadcasts (needs SUBGROUP; the
// plain twin is rnn_step_forward.wgsl): h_t = f(pre_t + (b_ih + b_hh) + W_hh · h_{t-1}).
// The product is the (B, H) × W_hh^T tile loop of common/sg_tile.wgsl (prepended, with
// common/rnn_act.wgsl, by kernels::Kernel::source()): a subgroup of S lanes owns
// 16 sequences × 2S hidden units, each lane 16 × 2; per 8 steps of q, lanes 0..7 load
// h_{t-1}[b, q + u] and share it by broadcast, each lane loads its own 2 rows of W_hh.
// The sum over q runs in order for every element, as in the plain kernel; parameters,
// bindings and the epilogue step_h() are common/rnn_step_forward_io.wgsl's.
// B[q, j0..j0+2] at element `qb` = q·(q stride) past the clamped column addresses `bc`
fn load_b(bc: vec2<u32>, qb: u32) -> vec2<f32> {
    return vec2<f32>(w[bc.x + qb], w[bc.y + qb]);
}

// A[i0 + r, q] for the 16 rows at element `qa` = q·(q stride) past the row addresses
fn load_a(r: array<vec4<u32>, 4>, qa: u32) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        vec4<f32>(h[r[0].x + qa], h[r[0].y + qa], h[r[0].z + qa], h[r[0].w + qa]),
        vec4<f32>(h[r[1].x + qa], h[r[1].y + qa], h[r[1].z + qa], h[r[1].w + qa]),
        vec4<f32>(h[r[2].x + qa], h[r[2].y + qa], h[r[2].z + qa], h[r[2].w + qa]),
        vec4<f32>(h[r[3].x + qa], h[r[3].y + qa], h[r[3].z + qa], h[r[3].w + qa]),
    );
}

// h_t for sequence `bi`, hidden units j0..j0+2 (masked at the edges)
fn store_row(bi: u32, j0: u32, v: vec2<f32>) {
    for (var s = 0u; s < 2u; s++) {
        if (bi < p.batch && j0 + s < p.hidden) {
            step_h(bi, j0 + s, v[s]);
        }
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let tile = sg_tile_index(wg, nwg, sg, sg_size);
    let tiles_n = sg_tiles_n(p.hidden, sg_size);
    // enough workgroups were launched for the largest subgroup size; surplus subgroups leave
    // (the whole subgroup at once, so the broadcasts in sg_tile_mac stay in uniform control
    // flow)
    if (tile >= ((p.batch + 15u) / 16u) * tiles_n) {
        return;
    }
    let i0 = (tile / tiles_n) * 16u;
    let j0 = (tile % tiles_n) * 2u * sg_size + lane * 2u;
    let rows = sg_tile_rows(p.prev_off, i0, p.batch, p.hidden);
    let bc = sg_tile_cols(p.w_off, j0, p.hidden, p.hidden);
    let zero = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    _ = sg_tile_mac(rows, bc, p.hidden, 1u, 1u, lane, false, zero);
    sg_tile_store(i0, j0);
}
