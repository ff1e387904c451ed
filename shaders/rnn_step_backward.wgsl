// One reverse step of one layer, fused: dz_t = (dh_t + W_hh^T · dz_{t+1}) ⊙ f'(h_t).
// Twin of the reverse sweep in cpu::backward. f' is written with the output h = f(z).
struct P {
    batch: u32, hidden: u32,
    dh_off: u32, h_off: u32,
    dz_off: u32, next_off: u32,
    // 0 at t = T: dz_{T+1} = 0
    has_next: u32,
    w_off: u32,
    // 0 tanh, 1 sigmoid, 2 relu
    act: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> dh: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;

fn activation_grad(hv: f32) -> f32 {
    switch p.act {
        case 0u: { return 1.0 - hv * hv; }
        case 1u: { return hv * (1.0 - hv); }
        default: { return select(0.0, 1.0, hv > 0.0); }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= p.batch * p.hidden) {
        return;
    }
    let bi = idx / p.hidden;
    let j = idx % p.hidden;
    var acc = 0.0;
    if (p.has_next != 0u) {
        let drow = p.next_off + bi * p.hidden;
        // column j of W_hh: W_hh^T dz as a row is dz · W_hh
        for (var q = 0u; q < p.hidden; q++) {
            acc = fma(dz[drow + q], w[p.w_off + q * p.hidden + j], acc);
        }
    }
    let d = dh[p.dh_off + idx] + acc;
    dz[p.dz_off + idx] = d * activation_grad(h[p.h_off + idx]);
}
