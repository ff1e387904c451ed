// Gather by token id: out (rows, cols)[r, c] = table[tok[r]·stride_v + c·stride_c].
// Token inputs never multiply a one-hot matrix. Used for the embedding lookup (table E
// (V, E): stride_v = E, stride_c = 1) and for plain tokens, where W_ih · onehot is the
// column W_ih[:, tok] (stride_v = 1, stride_c = V). Twin of the gathers in cpu::forward.
struct P {
    rows: u32, cols: u32,
    tab_off: u32, stride_v: u32, stride_c: u32,
    out_off: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> tok: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= p.rows * p.cols) {
        return;
    }
    let r = idx / p.cols;
    let c = idx % p.cols;
    out[p.out_off + idx] = table[p.tab_off + tok[r] * p.stride_v + c * p.stride_c];
}
