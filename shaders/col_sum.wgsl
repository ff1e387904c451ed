// Column sums of a (rows, cols) matrix: bias gradients Σ_{t,b} dz. Twin of
// cpu::backward's add_col_sums. The sums go to dst_off and dst2_off (b_ih and b_hh have
// the same gradient; a buffer cannot be copied onto itself, so both are written here). One invocation per column sums its rows in order, so the
// result matches the CPU bit for bit and needs no atomics.
struct P {
    rows: u32, cols: u32,
    src_off: u32, dst_off: u32, dst2_off: u32,
    // 1 = add to dst (a batch split into chunks sums their gradients), 0 = overwrite
    accumulate: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.x + gid.y * nwg.x * 64u;
    if (j >= p.cols) {
        return;
    }
    var acc = 0.0;
    if (p.accumulate != 0u) {
        acc = dst[p.dst_off + j];
    }
    for (var r = 0u; r < p.rows; r++) {
        acc += src[p.src_off + r * p.cols + j];
    }
    dst[p.dst_off + j] = acc;
    dst[p.dst2_off + j] = acc;
}
