// Deterministic scatter-add by token id, the gradient of embed_gather:
// out[tok[r]·stride_v + c·stride_c] += src[r, c] over r = 0..rows in order.
// Without float atomics: one invocation owns output slice c (every v for that c), zeroes
// it, then walks all rows in the CPU's order, so the sums match the CPU bit for bit.
struct P {
    rows: u32, cols: u32, vocab: u32,
    src_off: u32, out_off: u32,
    stride_v: u32, stride_c: u32,
    // 1 = add to the region (a batch split into chunks), 0 = zero it first
    accumulate: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> tok: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.x + gid.y * nwg.x * 64u;
    if (c >= p.cols) {
        return;
    }
    let base = p.out_off + c * p.stride_c;
    if (p.accumulate == 0u) {
        for (var v = 0u; v < p.vocab; v++) {
            out[base + v * p.stride_v] = 0.0;
        }
    }
    for (var r = 0u; r < p.rows; r++) {
        let v = min(tok[r], p.vocab - 1u);
        let i = base + v * p.stride_v;
        out[i] = out[i] + src[p.src_off + r * p.cols + c];
    }
}
