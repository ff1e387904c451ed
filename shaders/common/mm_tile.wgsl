// The workgroup-tiled matrix product (written for real GPUs; the lavapipe kernels are
// matmul_blocked.wgsl and matmul_sg.wgsl) under matmul_tile32.wgsl, matmul_tile64.wgsl and
// matmul_tile128.wgsl (through common/mm_tile_matmul.wgsl) and rnn_step_forward_tile.wgsl and
// rnn_step_backward_tile.wgsl, prepended to each by kernels::Kernel::source(); WGSL has no
// #include. Not a module on its own: it calls what every including kernel defines:
//   const TILE (rows = columns of C per workgroup), BK (steps of q per stage), WG (the
//   workgroup is WG × WG invocations), SUB (each invocation owns SUB × SUB blocks of 4 × 4);
//   fn load_a(i: u32) -> f32: element i of the buffer holding A (an Operand's off, sq and sr
//   address it), and load_a4(i: u32) -> vec4<f32>: elements i..i + 3, i a multiple of 4
//   (called only for an aligned operand); load_b and load_b4 the same for B;
//   fn store_c(i: u32, j: u32, v: f32): the product's element (i, j), called once for each
//   element of C by the one invocation that owns it (the epilogue: the matmul's store, a
//   step's bias, activation and f').
// The kernel describes op(A) and op(B) with operand_a and operand_b (offset, sizes, transpose)
// and calls mm_tile.
// tests/shaders_validate.rs validates the assembled modules, which checks the contract.
//
// What was taken from where:
// - The structure (a TILE × TILE block of C per workgroup, A and B staged through workgroup
//   memory BK steps of q at a time, a register block per invocation fed from the staged
//   tiles, an outer-product inner loop) is the "2D block tiling" of gpu.cpp's matmul example
//   (github.com/AnswerDotAI/gpu.cpp, examples/matmul/run.cpp: kShaderMatmul4 and its
//   vectorised variants; BM = BN = 64, BK = 8, TM = TN = 8 there), after Simon Boehm's CUDA
//   SGEMM walk-through that it follows. Unlike gpu.cpp it handles any m, n, k (bounds-checked
//   staging, masked stores) and every transpose, without templating sizes into the source.
// - vec4 loads of global memory only when the operand's offset and leading dimension are
//   multiples of 4, a scalar path otherwise, and the staged tiles laid out so that the
//   compute loop reads A and B along the same dimension whatever the transposes: ONNX
//   Runtime's WebGPU MatMul (onnxruntime/core/providers/webgpu/math/gemm_utils.cc,
//   MakeMatMulPackedVec4Source / MakeMatMulPackedSource: 8 × 8 invocations of 4 × 4 outputs,
//   is_vec4 chosen per shape).
// - Several tile shapes compiled side by side and picked per shape class by timing them on
//   the adapter (src/gpu/tune.rs), as Burn/CubeCL's matmul autotune does, instead of one
//   configuration for every GPU.
// - The 8 × 8 block of matmul_tile128 is 2 × 2 blocks of 4 × 4 half a tile apart, so that
//   the vec4 reads of consecutive invocations in the compute loop are consecutive (no bank
//   conflicts): Boehm's "warptiling" layout.
//
// Staging is coalesced: consecutive invocations load consecutive addresses of the operand as
// it is stored (along q when it is stored k-major, along i / j otherwise). The tiles are
// stored q-major, [q][i] and [q][j], rows padded by one vec4 (S4 = TILE / 4 + 1): the stores
// of a transposing stage then spread over twice the banks, and rows stay 16-byte aligned for
// the vec4 reads of the compute loop, which are conflict-free (consecutive for B, broadcast
// for A). Every element of the tiles the compute loop reads is written by the stage before
// it (zero outside op(A) and op(B)); the padding is never read.
//
// Determinism: every element of C is one fma chain over q = 0..k in order from zero, handed
// to store_c, and every row sum continues its start with A[i, 0], A[i, 1], ... in order: the
// operations of matmul.wgsl and of the plain step kernels exactly, so every matmul kernel
// and every step kernel gives the same bits as its reference. The tail of k that does not
// fill a stage runs only its real steps (adding a zero could turn -0 into +0).

const S4: u32 = TILE / 4u + 1u;

// (BK, TILE) slices of op(A)^T and op(B), rows padded to S4 vec4s
var<workgroup> As: array<vec4<f32>, BK * S4>;
var<workgroup> Bs: array<vec4<f32>, BK * S4>;

// The register blocks: blk_rs = rows r·TILE/2 + 4·ly.., columns s·TILE/2 + 4·lx.. of the
// workgroup's tile (only blk_00 when SUB = 1). Private and only ever indexed by constants,
// so they stay in registers.
var<private> blk_00: array<vec4<f32>, 4>;
var<private> blk_01: array<vec4<f32>, 4>;
var<private> blk_10: array<vec4<f32>, 4>;
var<private> blk_11: array<vec4<f32>, 4>;

// How to address one operand as a q-major tile: element (q, r) of op(A) (r = i) or of op(B)
// (r = j) lives at off + q·sq + r·sr.
struct Operand {
    off: u32,
    sq: u32,
    sr: u32,
    // extents of q (k) and of r (m for A, n for B)
    k: u32,
    len: u32,
    // r is the dimension contiguous in memory (A stored transposed, B stored as is)
    along_r: bool,
    // vec4 loads are aligned: offset and leading dimension are multiples of 4
    vec: bool,
}

// op(A)[i, q] of an (m, k) op(A): A (m, k) at off + i·k + q, or stored transposed, (k, m),
// at off + q·m + i when `t`
fn operand_a(off: u32, m: u32, k: u32, t: bool) -> Operand {
    let ld = select(k, m, t);
    return Operand(off, select(1u, m, t), select(k, 1u, t), k, m, t, ((off | ld) & 3u) == 0u);
}

// op(B)[q, j] of a (k, n) op(B): B (k, n) at off + q·n + j, or stored transposed, (n, k), at
// off + j·k + q when `t`
fn operand_b(off: u32, k: u32, n: u32, t: bool) -> Operand {
    let ld = select(n, k, t);
    return Operand(off, select(n, 1u, t), select(1u, k, t), k, n, !t, ((off | ld) & 3u) == 0u);
}

// Staging, scalar path: element e of the BK × TILE tile in load order (consecutive e,
// consecutive addresses) as (q, r) within the tile.
fn scalar_slot(o: Operand, e: u32) -> vec2<u32> {
    return select(vec2<u32>(e % BK, e / BK), vec2<u32>(e / TILE, e % TILE), o.along_r);
}

// Staging, vec4 path: group e of 4 elements contiguous in memory, as the (q, r) of its first.
fn vec_slot(o: Operand, e: u32) -> vec2<u32> {
    return select(vec2<u32>(4u * (e % (BK / 4u)), e / (BK / 4u)), vec2<u32>(e / (TILE / 4u), 4u * (e % (TILE / 4u))), o.along_r);
}

// Index in the operand's buffer of element (q, r), and whether it exists. With the vec4
// path a group is wholly inside or wholly outside: its first element decides.
fn src(o: Operand, q: u32, r: u32) -> vec2<u32> {
    return vec2<u32>(o.off + q * o.sq + r * o.sr, u32(q < o.k && r < o.len));
}

// Stages op(A)[i0.., q0..] into As (As[q][i]); `t` is the invocation's index.
fn stage_a(o: Operand, q0: u32, i0: u32, t: u32) {
    if (o.vec) {
        for (var e = t; e < BK * TILE / 4u; e += WG * WG) {
            let s = vec_slot(o, e);
            let at = src(o, q0 + s.x, i0 + s.y);
            var v = vec4<f32>(0.0);
            if (at.y != 0u) {
                v = load_a4(at.x);
            }
            if (o.along_r) {
                As[s.x * S4 + s.y / 4u] = v;
            } else {
                for (var u = 0u; u < 4u; u++) {
                    As[(s.x + u) * S4 + s.y / 4u][s.y % 4u] = v[u];
                }
            }
        }
    } else {
        for (var e = t; e < BK * TILE; e += WG * WG) {
            let s = scalar_slot(o, e);
            let at = src(o, q0 + s.x, i0 + s.y);
            var v = 0.0;
            if (at.y != 0u) {
                v = load_a(at.x);
            }
            As[s.x * S4 + s.y / 4u][s.y % 4u] = v;
        }
    }
}

// Stages op(B)[q0.., j0..] into Bs (Bs[q][j]), as stage_a.
fn stage_b(o: Operand, q0: u32, j0: u32, t: u32) {
    if (o.vec) {
        for (var e = t; e < BK * TILE / 4u; e += WG * WG) {
            let s = vec_slot(o, e);
            let at = src(o, q0 + s.x, j0 + s.y);
            var v = vec4<f32>(0.0);
            if (at.y != 0u) {
                v = load_b4(at.x);
            }
            if (o.along_r) {
                Bs[s.x * S4 + s.y / 4u] = v;
            } else {
                for (var u = 0u; u < 4u; u++) {
                    Bs[(s.x + u) * S4 + s.y / 4u][s.y % 4u] = v[u];
                }
            }
        }
    } else {
        for (var e = t; e < BK * TILE; e += WG * WG) {
            let s = scalar_slot(o, e);
            let at = src(o, q0 + s.x, j0 + s.y);
            var v = 0.0;
            if (at.y != 0u) {
                v = load_b(at.x);
            }
            Bs[s.x * S4 + s.y / 4u][s.y % 4u] = v;
        }
    }
}

// blk[r] + av[r] · bv: one step of q for a 4 × 4 block (by value, not through a pointer:
// every backend naga writes takes that the same way)
fn mac(blk: array<vec4<f32>, 4>, av: vec4<f32>, bv: vec4<f32>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        fma(vec4<f32>(av.x), bv, blk[0]),
        fma(vec4<f32>(av.y), bv, blk[1]),
        fma(vec4<f32>(av.z), bv, blk[2]),
        fma(vec4<f32>(av.w), bv, blk[3]),
    );
}

// The first `steps` steps of q of the staged tiles into the register blocks of invocation
// (lx, ly); the second rows / columns of blocks sit half a tile (TILE / 8 vec4s) away.
fn mac_stage(steps: u32, lx: u32, ly: u32) {
    for (var q = 0u; q < steps; q++) {
        let a0 = As[q * S4 + ly];
        let b0 = Bs[q * S4 + lx];
        blk_00 = mac(blk_00, a0, b0);
        if (SUB == 2u) {
            let a1 = As[q * S4 + ly + TILE / 8u];
            let b1 = Bs[q * S4 + lx + TILE / 8u];
            blk_01 = mac(blk_01, a0, b1);
            blk_10 = mac(blk_10, a1, b0);
            blk_11 = mac(blk_11, a1, b1);
        }
    }
}

// Row i0 + t of op(A)'s sum continued over the first `steps` staged steps of q, in order.
fn row_sum_stage(rs: f32, steps: u32, t: u32) -> f32 {
    var s = rs;
    for (var q = 0u; q < steps; q++) {
        s += As[q * S4 + t / 4u][t % 4u];
    }
    return s;
}

// The 4 × 4 block at C[i.., j..] through store_c, masked at the edges of C
fn store_block(blk: array<vec4<f32>, 4>, i: u32, j: u32, m: u32, n: u32) {
    for (var r = 0u; r < 4u; r++) {
        if (i + r >= m) {
            return;
        }
        for (var s = 0u; s < 4u; s++) {
            if (j + s < n) {
                store_c(i + r, j + s, blk[r][s]);
            }
        }
    }
}

// The first row of C of the workgroup: tiles of C in x (columns) and y (rows, spilling into
// z beyond 65535 workgroups).
fn tile_row0(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wg.y + wg.z * nwg.y) * TILE;
}

// C (m, n) = op(A) (m, k) · op(B) (k, n) for one workgroup, each element through store_c
// (m, k from oa, n from ob). With `sum_row`, invocation t = lid.y·WG + lid.x (t < TILE) also
// continues `rs0` over row tile_row0 + t of op(A) from the staged tiles and returns the sum
// (`rs0` otherwise).
fn mm_tile(
    oa: Operand,
    ob: Operand,
    lid: vec3<u32>,
    wg: vec3<u32>,
    nwg: vec3<u32>,
    sum_row: bool,
    rs0: f32,
) -> f32 {
    let i0 = tile_row0(wg, nwg);
    let j0 = wg.x * TILE;
    let m = oa.len;
    let k = oa.k;
    let n = ob.len;
    // a whole surplus workgroup (of the z spill, or of the larger problem's grid in a pair)
    // leaves (uniform: barriers follow); tile column 0 stays, it carries the row sums
    if (i0 >= m || j0 >= max(n, 1u)) {
        return rs0;
    }
    let t = lid.y * WG + lid.x;
    var rs = rs0;
    let full = k / BK;
    for (var st = 0u; st < full; st++) {
        stage_a(oa, st * BK, i0, t);
        stage_b(ob, st * BK, j0, t);
        workgroupBarrier();
        mac_stage(BK, lid.x, lid.y);
        if (sum_row) {
            rs = row_sum_stage(rs, BK, t);
        }
        workgroupBarrier();
    }
    let tail = k - full * BK;
    if (tail > 0u) {
        stage_a(oa, full * BK, i0, t);
        stage_b(ob, full * BK, j0, t);
        workgroupBarrier();
        mac_stage(tail, lid.x, lid.y);
        if (sum_row) {
            rs = row_sum_stage(rs, tail, t);
        }
    }
    let i = i0 + 4u * lid.y;
    let j = j0 + 4u * lid.x;
    store_block(blk_00, i, j, m, n);
    if (SUB == 2u) {
        let h = TILE / 2u;
        store_block(blk_01, i, j + h, m, n);
        store_block(blk_10, i + h, j, m, n);
        store_block(blk_11, i + h, j + h, m, n);
    }
    return rs;
}
