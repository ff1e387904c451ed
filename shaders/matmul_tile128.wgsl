// Workgroup-tiled matrix product for real GPUs: 128 × 128 tiles of C per workgroup, 16 × 16
// invocations of 8 × 8 (2 × 2 blocks of 4 × 4) outputs, 8 steps of q per stage. For large products: twice the
// arithmetic per staged value of the 4 × 4 tiles.
// The kernel is common/mm_tile.wgsl, prepended by kernels::Kernel::source() (its header says
// what it takes from gpu.cpp, ONNX Runtime and Burn/CubeCL); this file gives its sizes.
// Same contract and same bits as matmul.wgsl.
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

const TILE: u32 = 128u;
const BK: u32 = 8u;
const WG: u32 = 16u;
const SUB: u32 = 2u;

// (BK, TILE) slices of op(A)^T and op(B), rows padded to S4 vec4s
var<workgroup> As: array<vec4<f32>, BK * S4>;
var<workgroup> Bs: array<vec4<f32>, BK * S4>;

@compute @workgroup_size(WG, WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    mm_tile(lid, wg, nwg);
}
