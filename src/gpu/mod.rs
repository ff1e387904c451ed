//! The GPU path on wgpu (WGSL compute shaders).
