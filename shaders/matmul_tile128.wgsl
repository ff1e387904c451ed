// Workgroup-tiled matrix product for real GPUs: 128 × 128 tiles of C per workgroup, 16 × 16
// invocations of 8 × 8 (2 × 2 blocks of 4 × 4) outputs, 8 steps of q per stage. For large products: twice the
// arithmetic per staged value of the 4 × 4 tiles.
// The kernel is common/mm_tile.wgsl (its header says what it takes from gpu.cpp, ONNX Runtime
// and Burn/CubeCL) with common/mm_tile_matmul.wgsl (the parameters and bindings), prepended
// by kernels::Kernel::source(); this file gives its sizes. Same contract and same bits as
// matmul.wgsl.
const TILE: u32 = 128u;
const BK: u32 = 8u;
const WG: u32 = 16u;
const SUB: u32 = 2u;

@compute @workgroup_size(WG, WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    matmul_tile(lid, wg, nwg);
}
