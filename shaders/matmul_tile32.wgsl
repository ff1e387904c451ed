// Workgroup-tiled matrix product for real GPUs: 32 × 32 tiles of C per workgroup, 8 × 8
// invocations of 4 × 4 outputs, 16 steps of q per stage. Small tiles, for products too small or
// too narrow to fill a large GPU with 64-wide tiles (ONNX Runtime's default shape).
// The kernel is common/mm_tile.wgsl (its header says what it takes from gpu.cpp, ONNX Runtime
// and Burn/CubeCL) with common/mm_tile_matmul.wgsl (the parameters and bindings), prepended
// by kernels::Kernel::source(); this file gives its sizes. Same contract and same bits as
// matmul.wgsl.
const TILE: u32 = 32u;
const BK: u32 = 16u;
const WG: u32 = 8u;
const SUB: u32 = 1u;

@compute @workgroup_size(WG, WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    matmul_tile(lid, wg, nwg);
}
