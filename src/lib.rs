//! wgrnn: Elman RNN training on any GPU wgpu reaches, checked against a plain CPU reference.
//!
//! Dimension letters everywhere: B batch, T time steps, I input width, H hidden width,
//! O output width (V for classes), L layers, E embedding width.

pub mod batch;
pub mod batch_file;
pub mod bench;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod cpu;
pub mod data;
pub mod device;
pub mod dropout;
#[cfg(feature = "mpi")]
pub mod dist;
pub mod engine;
pub mod error;
pub mod fsio;
pub mod gpu;
mod mem;
pub mod optim;
pub mod params;
pub mod real;
pub mod tensor_file;
pub mod train;

pub use batch::{random_batch, Batch, Inputs, Targets};
pub use config::{Activation, Dropout, Head, Init, Input, ModelConfig, Reduction, SeqShape};
pub use cpu::CpuEngine;
pub use engine::{Engine, EngineKind, Grads, Outputs, Want};
pub use error::{Error, Result};
pub use optim::{Clip, OptimConfig, OptimKind, OptimState, Optimizer};
pub use params::ParamLayout;

/// The README's example runs as a doctest, so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
