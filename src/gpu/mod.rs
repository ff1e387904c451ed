//! The GPU path on wgpu (WGSL compute shaders): `context` finds the device, `kernels`
//! compiles `shaders/*.wgsl`, `buffers` allocates and reads back, `scheduler` records
//! programs, `engine` implements `Engine` on top.

pub mod buffers;
pub mod context;
pub mod engine;
pub mod kernels;
pub mod scheduler;

pub use context::{list_adapters, AdapterReport, GpuContext, GpuOptions};
pub use engine::GpuEngine;
