// One recurrent step of one layer, fused: h_t = f(pre_t + (b_ih + b_hh) + W_hh · h_{t-1}).
// Twin of the recurrence loop in cpu::forward. h is one direction's (T+1, B, H) buffer;
// pre_t (the input projection, written by matmul or embed_gather) sits in the step's row and
// is replaced in place by h_t: each invocation reads and writes only its own element of it.
// A sequence shorter than `step` keeps its state (SPEC §1): h_t = h_{t-1}, the previous row.
// Parameters, bindings and the epilogue step_h() are common/rnn_step_forward_io.wgsl's,
// prepended by kernels::Kernel::source().

// Each invocation computes a 4 (sequences) × 4 (hidden units) block, so every loaded
// weight and state feeds four multiply-adds (loads dominate on lavapipe). The sum over q
// runs in order for every element, as in a one-element-per-invocation kernel.
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j0 = gid.x * 4u;
    let b0 = (gid.y + gid.z * nwg.y * 8u) * 4u;
    if (b0 >= p.batch || j0 >= p.hidden) {
        return;
    }
    // rows/columns past the edge are clamped: loads stay in bounds, results are dropped
    var wr: vec4<u32>;
    var hr: vec4<u32>;
    for (var r = 0u; r < 4u; r++) {
        wr[r] = p.w_off + min(j0 + r, p.hidden - 1u) * p.hidden;
        hr[r] = p.prev_off + min(b0 + r, p.batch - 1u) * p.hidden;
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var q = 0u; q < p.hidden; q++) {
        let wv = vec4<f32>(w[wr.x + q], w[wr.y + q], w[wr.z + q], w[wr.w + q]);
        acc0 = fma(vec4<f32>(h[hr.x + q]), wv, acc0);
        acc1 = fma(vec4<f32>(h[hr.y + q]), wv, acc1);
        acc2 = fma(vec4<f32>(h[hr.z + q]), wv, acc2);
        acc3 = fma(vec4<f32>(h[hr.w + q]), wv, acc3);
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        for (var s = 0u; s < 4u; s++) {
            if (b0 + r < p.batch && j0 + s < p.hidden) {
                step_h(b0 + r, j0 + s, acc[r][s]);
            }
        }
    }
}
