//! The same run twice on the same device gives bitwise-identical losses and weights
//! (no float atomics, fixed summation order everywhere).

use std::sync::Arc;

use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{random_batch, Clip, Engine, Input, ModelConfig, OptimConfig, OptimKind, ParamLayout};

fn run(ctx: &Arc<GpuContext>, cfg: &ModelConfig, opt: OptimConfig) -> (Vec<u32>, Vec<u32>) {
    let layout = ParamLayout::new(cfg);
    let mut gpu = GpuEngine::new(ctx.clone(), *cfg, opt, layout.init(cfg, 11)).unwrap();
    let mut losses = Vec::new();
    for s in 0..6 {
        let batch = random_batch(cfg, 7, 9, s % 2 == 1, 200 + s);
        losses.push(gpu.train_step(&batch, true).unwrap().unwrap().to_bits());
    }
    let weights = gpu.params().unwrap().iter().map(|v| v.to_bits()).collect();
    (losses, weights)
}

#[test]
fn two_identical_runs_are_bitwise_equal() {
    let ctx = GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)");
    let cfg = ModelConfig {
        input: Input::Tokens {
            vocab: 13,
            embed: Some(5),
        },
        ..ModelConfig::char_lm(13, 33, 2)
    };
    let mut opt = OptimConfig::new(
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        0.01,
    );
    opt.clip = Clip {
        norm: Some(0.5),
        value: None,
    };
    let plain = ModelConfig::char_lm(13, 70, 1);
    for cfg in [cfg, plain] {
        let a = run(&ctx, &cfg, opt);
        let b = run(&ctx, &cfg, opt);
        assert_eq!(a.0, b.0, "{cfg}: losses differ between identical runs");
        assert!(a.1 == b.1, "{cfg}: weights differ between identical runs");
    }
}
