//! The model cases the GPU-vs-CPU, whole-sequence, nn.RNN-parity and gradient-check tests
//! share: small configurations rotated over shape tables each test keeps for itself, the GPU
//! context, engine pairs and the SPEC §5 checks they report with.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use wgrnn::compare;
use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{
    Activation, CpuEngine, Engine, Head, Init, Input, ModelConfig, OptimConfig, OptimKind, ParamLayout, Reduction,
    SeqShape,
};

/// (B, T, I, H, O) of one case.
pub type Shape = (usize, usize, usize, usize, usize);

/// The Adam the tests train with (PyTorch's defaults).
pub const ADAM: OptimKind = OptimKind::Adam {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
};

/// A missing adapter fails the test: CI installs lavapipe, so there is always one.
pub fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

/// Inputs of `kind` 0 dense of width `i`, 1 tokens (V = i + 2), 2 tokens through an
/// embedding of width `i`.
pub fn input(kind: usize, i: usize) -> Input {
    match kind {
        0 => Input::Dense { size: i },
        1 => Input::Tokens {
            vocab: i + 2,
            embed: None,
        },
        _ => Input::Tokens {
            vocab: i + 2,
            embed: Some(i),
        },
    }
}

/// Case `n`'s model of the given kinds on `shapes[n % len]`, with O raised to 2 for softmax
/// heads: tanh, mean reduction, biases, one direction and no dropout, which each test
/// rotates as it needs. Returns (config, B, T).
pub fn model(
    shapes: &[Shape],
    head: Head,
    seq: SeqShape,
    input_kind: usize,
    layers: usize,
    n: usize,
) -> (ModelConfig, usize, usize) {
    let (b, t, i, h, o) = shapes[n % shapes.len()];
    let cfg = ModelConfig {
        input: input(input_kind, i),
        hidden: h,
        layers,
        activation: Activation::Tanh,
        output: if head == Head::Softmax { o.max(2) } else { o },
        head,
        reduction: Reduction::Mean,
        seq,
        init: Init::Default,
        bias: true,
        head_bias: true,
        bidirectional: false,
        dropout: Default::default(),
        loss: Default::default(),
    };
    (cfg, b, t)
}

pub fn gpu_engine(cfg: &ModelConfig, opt: OptimConfig, seed: u64) -> GpuEngine {
    let p = ParamLayout::new(cfg).init(cfg, seed);
    GpuEngine::new(ctx(), *cfg, opt, p).unwrap()
}

pub fn cpu_engine(cfg: &ModelConfig, opt: OptimConfig, seed: u64) -> CpuEngine {
    CpuEngine::new(*cfg, opt, ParamLayout::new(cfg).init(cfg, seed)).unwrap()
}

/// Both engines from the same initial parameters.
pub fn engines(cfg: &ModelConfig, opt: OptimConfig, seed: u64) -> (CpuEngine, GpuEngine) {
    (cpu_engine(cfg, opt, seed), gpu_engine(cfg, opt, seed))
}

/// The relative difference of two losses; fails the case past SPEC §5's bound.
pub fn check_loss(case: &str, gpu: f32, cpu: f32) -> f64 {
    let d = compare::loss("loss", gpu, cpu);
    assert!(d.ok, "{case}: gpu {gpu} cpu {cpu} {d}");
    d.rel
}

/// Compares every tensor of two flat parameter-layout buffers; returns the worst relative
/// difference.
pub fn check_buffer(case: &str, what: &str, layout: &ParamLayout, gpu: &[f32], cpu: &[f32]) -> f64 {
    let diffs = compare::buffer(what, layout, gpu, cpu);
    for d in &diffs {
        assert!(d.ok, "{case}: {d}");
    }
    compare::worst(&diffs)
}

/// The worst relative differences seen, per quantity.
#[derive(Default, Debug)]
pub struct Worst {
    pub loss: f64,
    pub grad: f64,
    pub weights: f64,
    pub cases: usize,
}

impl Worst {
    pub fn add(&mut self, o: &Worst) {
        self.loss = self.loss.max(o.loss);
        self.grad = self.grad.max(o.grad);
        self.weights = self.weights.max(o.weights);
        self.cases += o.cases;
    }
}

/// Case `n`'s biases, activation and reduction, rotated so that every combination of the
/// options meets each of them somewhere.
pub fn rotate_options(cfg: &mut ModelConfig, n: usize) {
    cfg.bias = n % 2 == 1;
    cfg.head_bias = (n / 3) % 2 == 1;
    cfg.activation = [Activation::Tanh, Activation::Sigmoid, Activation::Relu][(n / 4) % 3];
    cfg.reduction = [Reduction::Mean, Reduction::Sum][(n / 7) % 2];
}

/// The weights and optimiser state after `k` training steps on both engines; returns the
/// worst relative difference.
pub fn check_trained(case: &str, k: u64, cpu: &mut CpuEngine, gpu: &mut GpuEngine) -> f64 {
    let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
    let mut worst = check_buffer(case, &format!("weights after {k} steps"), cpu.layout(), &pg, &pc);
    let (oc, og) = (cpu.optim_state().unwrap(), gpu.optim_state().unwrap());
    assert_eq!(oc.step, og.step);
    for (i, (a, c)) in og.slots.iter().zip(&oc.slots).enumerate() {
        worst = worst.max(check_buffer(case, &format!("optimiser slot {i}"), cpu.layout(), a, c));
    }
    worst
}
