// The matrix product of common/mm_tile.wgsl with matmul.wgsl's contract (parameters,
// bindings, beta, row sums): everything of matmul_tile32.wgsl, matmul_tile64.wgsl and
// matmul_tile128.wgsl but their sizes (TILE, BK, WG, SUB) and entry point, which calls
// matmul_tile. Prepended after mm_tile.wgsl by kernels::Kernel::source().
struct P {
    m: u32, n: u32, k: u32,
    a_off: u32, b_off: u32, c_off: u32,
    // 1 = the operand is stored transposed: A as (k, m), B as (n, k)
    ta: u32, tb: u32,
    // 1 = accumulate into C, 0 = overwrite (C is never read)
    beta: u32,
    // row sums of op(A) as in matmul.wgsl
    rowsum: u32, rs_off: u32, rs2_off: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// a and b again, read four floats at a time where the operand is aligned
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;

fn load_a(i: u32) -> f32 {
    return a[i];
}

fn load_a4(i: u32) -> vec4<f32> {
    return a4[i / 4u];
}

fn load_b(i: u32) -> f32 {
    return b[i];
}

fn load_b4(i: u32) -> vec4<f32> {
    return b4[i / 4u];
}

fn store_c(i: u32, j: u32, v: f32) {
    let ci = p.c_off + i * p.n + j;
    var s = v;
    if (p.beta != 0u) {
        s += c[ci];
    }
    c[ci] = s;
}

// The workgroup's tile of C; the workgroups of tile column 0 also sum their TILE rows of
// op(A), one invocation per row.
fn matmul_tile(lid: vec3<u32>, wg: vec3<u32>, nwg: vec3<u32>) {
    let row = tile_row0(wg, nwg) + lid.y * WG + lid.x;
    let sum_row = p.rowsum != 0u && wg.x == 0u && lid.y * WG + lid.x < TILE;
    var rs = 0.0;
    if (sum_row && p.beta != 0u && row < p.m) {
        rs = c[p.rs_off + row];
    }
    let oa = operand_a(p.a_off, p.m, p.k, p.ta != 0u);
    let ob = operand_b(p.b_off, p.k, p.n, p.tb != 0u);
    rs = mm_tile(oa, ob, lid, wg, nwg, sum_row, rs);
    if (sum_row && row < p.m) {
        c[p.rs_off + row] = rs;
        c[p.rs2_off + row] = rs;
    }
}
