// The workgroup-tiled matrix product shared by matmul_tile32.wgsl, matmul_tile64.wgsl and
// matmul_tile128.wgsl (written for real GPUs; the lavapipe kernels are matmul_blocked.wgsl and
// matmul_sg.wgsl), prepended to each by kernels::Kernel::source(); WGSL has no #include.
// Not a module on its own: it uses what every including kernel declares, with the same names:
//   struct P and p (the matmul.wgsl contract), the bindings a, b (array<f32>), c, and a4, b4
//   (the same buffers as a, b viewed as array<vec4<f32>>);
//   const TILE (rows = columns of C per workgroup), BK (steps of q per stage), WG (the
//   workgroup is WG × WG invocations), SUB (each invocation owns SUB × SUB blocks of 4 × 4);
//   var<workgroup> As, Bs: array<vec4<f32>, BK * S4>, the staged tiles.
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
// Determinism: every element of C is one fma chain over q = 0..k in order from zero, then
// + C under beta, and every row sum is C (or 0) + A[i, 0] + A[i, 1] + ... in order: the
// operations of matmul.wgsl exactly, so every matmul kernel gives the same bits. The tail of
// k that does not fill a stage runs only its real steps (adding a zero could turn -0 into +0).

const S4: u32 = TILE / 4u + 1u;

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
    // extent of r: m for A, n for B
    len: u32,
    // r is the dimension contiguous in memory (A stored transposed, B stored as is)
    along_r: bool,
    // vec4 loads are aligned: offset and leading dimension are multiples of 4
    vec: bool,
}

// op(A)[i, q]: A (m, k) at a_off + i·k + q, or stored transposed, (k, m), at a_off + q·m + i
fn operand_a() -> Operand {
    let t = p.ta != 0u;
    let ld = select(p.k, p.m, t);
    return Operand(p.a_off, select(1u, p.m, t), select(p.k, 1u, t), p.m, t, ((p.a_off | ld) & 3u) == 0u);
}

// op(B)[q, j]: B (k, n) at b_off + q·n + j, or stored transposed, (n, k), at b_off + j·k + q
fn operand_b() -> Operand {
    let t = p.tb != 0u;
    let ld = select(p.n, p.k, t);
    return Operand(p.b_off, select(p.n, 1u, t), select(1u, p.k, t), p.n, !t, ((p.b_off | ld) & 3u) == 0u);
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

// Index into a or b of element (q, r) of the operand, and whether it exists. With the vec4
// path a group is wholly inside or wholly outside: its first element decides.
fn src(o: Operand, q: u32, r: u32) -> vec2<u32> {
    return vec2<u32>(o.off + q * o.sq + r * o.sr, u32(q < p.k && r < o.len));
}

// Stages op(A)[i0.., q0..] into As (As[q][i]); `t` is the invocation's index.
fn stage_a(o: Operand, q0: u32, i0: u32, t: u32) {
    if (o.vec) {
        for (var e = t; e < BK * TILE / 4u; e += WG * WG) {
            let s = vec_slot(o, e);
            let at = src(o, q0 + s.x, i0 + s.y);
            var v = vec4<f32>(0.0);
            if (at.y != 0u) {
                v = a4[at.x / 4u];
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
                v = a[at.x];
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
                v = b4[at.x / 4u];
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
                v = b[at.x];
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

// C[i.., j..] (+)= the 4 × 4 block, masked at the edges of C
fn store_block(blk: array<vec4<f32>, 4>, i: u32, j: u32) {
    for (var r = 0u; r < 4u; r++) {
        if (i + r >= p.m) {
            return;
        }
        for (var s = 0u; s < 4u; s++) {
            if (j + s < p.n) {
                let ci = p.c_off + (i + r) * p.n + j + s;
                var v = blk[r][s];
                if (p.beta != 0u) {
                    v += c[ci];
                }
                c[ci] = v;
            }
        }
    }
}

// The whole product for one workgroup: tiles of C in x (columns) and y (rows, spilling into
// z beyond 65535 workgroups).
fn mm_tile(lid: vec3<u32>, wg: vec3<u32>, nwg: vec3<u32>) {
    let i0 = (wg.y + wg.z * nwg.y) * TILE;
    let j0 = wg.x * TILE;
    // a whole surplus workgroup of the z spill leaves (uniform: barriers follow)
    if (i0 >= p.m) {
        return;
    }
    let t = lid.y * WG + lid.x;
    let oa = operand_a();
    let ob = operand_b();
    // the workgroups of tile column 0 also sum their TILE rows of op(A) from the staged
    // tiles, one invocation per row
    let sum_row = p.rowsum != 0u && wg.x == 0u && t < TILE;
    var rs = 0.0;
    if (sum_row && p.beta != 0u && i0 + t < p.m) {
        rs = c[p.rs_off + i0 + t];
    }
    let full = p.k / BK;
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
    let tail = p.k - full * BK;
    if (tail > 0u) {
        stage_a(oa, full * BK, i0, t);
        stage_b(ob, full * BK, j0, t);
        workgroupBarrier();
        mac_stage(tail, lid.x, lid.y);
        if (sum_row) {
            rs = row_sum_stage(rs, tail, t);
        }
    }
    if (sum_row && i0 + t < p.m) {
        c[p.rs_off + i0 + t] = rs;
        c[p.rs2_off + i0 + t] = rs;
    }
    let i = i0 + 4u * lid.y;
    let j = j0 + 4u * lid.x;
    store_block(blk_00, i, j);
    if (SUB == 2u) {
        let h = TILE / 2u;
        store_block(blk_01, i, j + h);
        store_block(blk_10, i + h, j);
        store_block(blk_11, i + h, j + h);
    }
}
