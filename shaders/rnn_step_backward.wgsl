// One reverse step of one layer, fused: dz_t = (dh_t + W_hh^T · dz_{t+1}) ⊙ f'(h_t).
// Twin of the reverse sweep in cpu::backward. f' is written with the output h = f(z)
// (activation_grad() of common/rnn_act.wgsl). dh is read at dh_off + b·dh_stride + j: one
// direction's columns of the gradient arriving from the head or the layer above. Parameters,
// bindings and the epilogue store_dz() are common/rnn_step_backward_io.wgsl's, prepended by
// kernels::Kernel::source().

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
