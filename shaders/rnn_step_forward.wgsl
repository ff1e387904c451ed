// One recurrent step of one layer, fused: h_t = f(pre_t + (b_ih + b_hh) + W_hh · h_{t-1}).
// Twin of the recurrence loop in cpu::forward. h is the layer's (T+1, B, H) buffer; pre_t
// (the input projection, written by matmul or embed_gather) sits in row t and is replaced
// in place by h_t: each invocation reads and writes only its own element of row t.
struct P {
    batch: u32, hidden: u32,
    cur_off: u32, prev_off: u32,
    w_off: u32, bih_off: u32, bhh_off: u32,
    // 0 = no input at this step (one-to-many after step 1): pre_t is zero
    use_pre: u32,
    // 0 tanh, 1 sigmoid, 2 relu
    act: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;

fn sigmoid(z: f32) -> f32 {
    // never evaluates exp of a large positive number
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

fn activate(z: f32) -> f32 {
    switch p.act {
        // some backends return NaN for tanh of large |z|; tanh(±15) is ±1 in f32 already
        case 0u: { return tanh(clamp(z, -15.0, 15.0)); }
        case 1u: { return sigmoid(z); }
        default: { return max(z, 0.0); }
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
    var pre = 0.0;
    if (p.use_pre != 0u) {
        pre = h[p.cur_off + idx];
    }
    pre += w[p.bih_off + j] + w[p.bhh_off + j];
    var acc = 0.0;
    let wrow = p.w_off + j * p.hidden;
    let hrow = p.prev_off + bi * p.hidden;
    for (var q = 0u; q < p.hidden; q++) {
        acc = fma(w[wrow + q], h[hrow + q], acc);
    }
    h[p.cur_off + idx] = activate(pre + acc);
}
