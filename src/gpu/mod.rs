//! The GPU path on wgpu (WGSL compute shaders). Imports run one way: `context` finds the
//! device; `kernels` compiles `shaders/*.wgsl` and builds launches, `buffers` allocates and
//! reads back, `program` records op lists into command encoders; `workspace` holds the
//! per-batch buffers and `schedule` decides the ops of a call; `tune` picks the fastest
//! matrix-product kernel for each of them; `engine` implements `Engine` on top.

pub mod batch_info;
pub mod buffers;
pub mod context;
pub mod engine;
pub mod kernels;
pub mod program;
pub mod scalars;
pub mod schedule;
pub mod tune;
pub mod workspace;

pub use context::{list_adapters, AdapterReport, GpuContext, GpuOptions};
pub use engine::GpuEngine;
