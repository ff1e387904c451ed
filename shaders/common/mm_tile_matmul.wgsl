// The matrix product of common/mm_tile.wgsl with matmul.wgsl's contract (parameters,
// bindings, beta, row sums): everything of matmul_tile32.wgsl, matmul_tile64.wgsl and
// matmul_tile128.wgsl but their sizes (TILE, BK, WG, SUB) and entry point, which calls
// matmul_tile. Prepended after mm_tile.wgsl by kernels::Kernel::source().
//
// A pair (`pair` = 1) runs two products that share A's and C's buffers in one dispatch
// (kernels::matmul_pair): workgroup z is the problem, the second reads its B from b2. Each
// element is computed exactly as in a product of its own, so a pair gives the bits of its
// two products run one after the other.
struct P {
    m: u32, n: u32, k: u32,
    a_off: u32, b_off: u32, c_off: u32,
    // 1 = the operand is stored transposed: A as (k, m), B as (n, k)
    ta: u32, tb: u32,
    // 1 = accumulate into C, 0 = overwrite (C is never read)
    beta: u32,
    // row sums of op(A) as in matmul.wgsl (the first problem's only)
    rowsum: u32, rs_off: u32, rs2_off: u32,
    // the second problem of a pair, as the first's fields
    pair: u32,
    m2: u32, n2: u32, k2: u32,
    a_off2: u32, b_off2: u32, c_off2: u32,
    ta2: u32, tb2: u32,
    beta2: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// a and b again, read four floats at a time where the operand is aligned
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
// the second problem's B (b's buffer again outside pairs)
@group(0) @binding(6) var<storage, read> b2: array<f32>;
@group(0) @binding(7) var<storage, read> b2_4: array<vec4<f32>>;

// One problem's sizes, offsets and flags.
struct Prob {
    m: u32, n: u32, k: u32,
    a_off: u32, b_off: u32, c_off: u32,
    ta: bool, tb: bool,
    beta: bool,
}

// This workgroup's problem, and whether it is a pair's second: the same for the whole
// workgroup; the loads read `second` in the staging loops only, not in the inner loop.
var<private> cur: Prob;
var<private> second: bool;

fn load_a(i: u32) -> f32 {
    return a[i];
}

fn load_a4(i: u32) -> vec4<f32> {
    return a4[i / 4u];
}

fn load_b(i: u32) -> f32 {
    if (second) {
        return b2[i];
    }
    return b[i];
}

fn load_b4(i: u32) -> vec4<f32> {
    if (second) {
        return b2_4[i / 4u];
    }
    return b4[i / 4u];
}

fn store_c(i: u32, j: u32, v: f32) {
    let ci = cur.c_off + i * cur.n + j;
    var s = v;
    if (cur.beta) {
        s += c[ci];
    }
    c[ci] = s;
}

// Problem `z` of the dispatch (1 only in a pair).
fn prob(z: u32) -> Prob {
    if (z == 1u) {
        return Prob(p.m2, p.n2, p.k2, p.a_off2, p.b_off2, p.c_off2, p.ta2 != 0u, p.tb2 != 0u, p.beta2 != 0u);
    }
    return Prob(p.m, p.n, p.k, p.a_off, p.b_off, p.c_off, p.ta != 0u, p.tb != 0u, p.beta != 0u);
}

// The workgroup's tile of C; the workgroups of tile column 0 also sum their TILE rows of
// op(A), one invocation per row. A pair has no z spill: z is the problem.
fn matmul_tile(lid: vec3<u32>, wg_in: vec3<u32>, nwg: vec3<u32>) {
    let pair = p.pair != 0u;
    let z = select(0u, wg_in.z, pair);
    let wg = select(wg_in, vec3<u32>(wg_in.xy, 0u), pair);
    let q = prob(z);
    cur = q;
    second = z == 1u;
    let row = tile_row0(wg, nwg) + lid.y * WG + lid.x;
    let sum_row = p.rowsum != 0u && z == 0u && wg.x == 0u && lid.y * WG + lid.x < TILE;
    var rs = 0.0;
    if (sum_row && q.beta && row < q.m) {
        rs = c[p.rs_off + row];
    }
    let oa = operand_a(q.a_off, q.m, q.k, q.ta);
    let ob = operand_b(q.b_off, q.k, q.n, q.tb);
    rs = mm_tile(oa, ob, lid, wg, nwg, sum_row, rs);
    if (sum_row && row < q.m) {
        c[p.rs_off + row] = rs;
        c[p.rs2_off + row] = rs;
    }
}
