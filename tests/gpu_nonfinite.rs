//! The GPU path reports a non-finite gradient norm the way the CPU path reports a
//! non-finite gradient: as `Error::NonFinite` naming the gradient and the step.

use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{Activation, Reduction, SeqShape, Targets};
use wgrnn::{Batch, Engine, Error, Head, Init, Input, Inputs, ModelConfig, OptimConfig, OptimKind, ParamLayout};

#[test]
fn gradient_norm_overflow_is_an_error() {
    let ctx = GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter: install mesa-vulkan-drivers");
    let cfg = ModelConfig {
        input: Input::Dense { size: 1 },
        hidden: 1,
        layers: 1,
        activation: Activation::Tanh,
        output: 1,
        head: Head::Linear,
        reduction: Reduction::Sum,
        seq: SeqShape::ManyToOne,
        init: Init::Default,
        bias: true,
        head_bias: true,
        bidirectional: false,
        dropout: Default::default(),
        loss: Default::default(),
    };
    let params = ParamLayout::new(&cfg).init(&cfg, 1);
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 1e-3);
    let mut gpu = GpuEngine::new(ctx, cfg, opt, params).unwrap();
    // loss = (ŷ - y)² ≈ 2e38 still fits f32 (max 3.4e38), but the head gradient 2(ŷ - y)
    // squared is ≈ 8e38: the global norm overflows while the loss does not.
    let batch = Batch {
        batch: 1,
        steps: 1,
        inputs: Inputs::Dense(vec![0.5]),
        targets: Targets::Values(vec![1.4e19]),
        h0: None,
        lengths: None,
    };
    match gpu.train_step(&batch, true) {
        Err(Error::NonFinite { what, step }) => {
            assert_eq!(what, "gradient");
            assert_eq!(step, 1);
        }
        other => panic!("expected a non-finite gradient error, got {other:?}"),
    }
}

/// An update that overflows the optimiser state between loss reads is caught at the next
/// read and named by the step it happened at, the step the CPU path stops at.
#[test]
fn nonfinite_state_between_reads_names_its_step() {
    let cfg = ModelConfig::char_lm(4, 3, 1);
    let params = ParamLayout::new(&cfg).init(&cfg, 1);
    let kind = OptimKind::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut opt = OptimConfig::new(kind, 1e-3);
    opt.weight_decay = 1e30;
    let batch = Batch {
        batch: 1,
        steps: 2,
        inputs: Inputs::Tokens(vec![0, 1]),
        targets: Targets::Classes(vec![1, 2]),
        h0: None,
        lengths: None,
    };
    let ctx = GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter");
    let mut gpu = GpuEngine::new(ctx, cfg, opt, params.clone()).unwrap();
    let mut cpu = wgrnn::CpuEngine::new(cfg, opt, params).unwrap();
    let cpu_err = cpu.train_step(&batch, false).unwrap_err();
    for _ in 0..3 {
        gpu.train_step(&batch, false).unwrap();
    }
    let gpu_err = gpu.train_step(&batch, true).unwrap_err();
    assert_eq!(gpu_err.to_string(), cpu_err.to_string());
    assert!(matches!(gpu_err, Error::NonFinite { step: 1, .. }), "{gpu_err}");
}
