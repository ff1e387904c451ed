//! What the kernel tests share: the device, buffers filled from host data, one-shot runs of
//! dispatches, read-backs, the elementwise comparison with a CPU twin and the per-call words.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use wgrnn::gpu::batch_info;
use wgrnn::gpu::buffers::{tensor, upload, Scale, Staging};
use wgrnn::gpu::kernels;
use wgrnn::gpu::program::{Op as GOp, Program};
use wgrnn::gpu::{GpuContext, GpuOptions};

/// Results of one f32 kernel vs its f32 CPU twin: elementwise |gpu - cpu| <= ATOL + RTOL·|cpu|.
pub const ATOL: f32 = 1e-6;
pub const RTOL: f32 = 1e-5;

pub fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

pub fn rand_vec(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

pub fn buf<T: bytemuck::Pod>(data: &[T]) -> wgpu::Buffer {
    let c = ctx();
    let b = tensor(&c, "test", data.len(), Scale::Model).unwrap();
    upload(&c, &b, 0, data);
    b
}

pub fn run(ops: Vec<kernels::Dispatch>) {
    let c = ctx();
    let ops: Vec<GOp> = ops.into_iter().map(GOp::Dispatch).collect();
    Program::new(&c, &c.kernels().unwrap(), &ops).unwrap().run(&c).unwrap();
}

pub fn read(b: &wgpu::Buffer, off: usize, len: usize) -> Vec<f32> {
    let c = ctx();
    let enc = c.device.create_command_encoder(&Default::default());
    Staging::default()
        .submit_and_read(&c, enc, &[(b, off, len)])
        .unwrap()
        .remove(0)
}

/// Asserts elementwise closeness and returns the largest |diff|.
pub fn close(what: &str, gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    let mut max = 0.0f32;
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let d = (g - c).abs();
        assert!(
            g.is_finite() && d <= ATOL + RTOL * c.abs(),
            "{what}: element {i}: gpu {g} cpu {c} |diff| {d:e} > atol {ATOL:e} + rtol {RTOL:e}·|cpu|"
        );
        max = max.max(d);
    }
    max
}

/// The per-call words (`gpu::batch_info`) of a batch with these lengths and loss scale, with
/// one unused sequence in front: the kernels are run as on a chunk whose first sequence is
/// sequence 1 of the batch.
pub fn info_words(scale: f32, lengths: &[u32]) -> Vec<u32> {
    let mut w = vec![0u32; batch_info::len(lengths.len() + 1)];
    w[batch_info::LOSS_SCALE] = scale.to_bits();
    w[batch_info::LENGTHS] = 99;
    w[batch_info::LENGTHS + 1..].copy_from_slice(lengths);
    w
}
