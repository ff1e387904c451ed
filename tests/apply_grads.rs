//! `loss_and_grads` followed by `apply_grads` (the data-parallel step, with the summed
//! gradients) is the same update as `train_step`, bit for bit, on both paths.

use std::sync::Arc;

use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{random_batch, Clip, CpuEngine, Engine, ModelConfig, OptimConfig, OptimKind, ParamLayout, Want};

fn optimisers() -> Vec<OptimConfig> {
    let clip = Clip {
        norm: Some(0.5),
        value: Some(0.05),
    };
    let adam = OptimKind::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    vec![
        OptimConfig::new(OptimKind::Sgd { momentum: 0.9 }, 0.1),
        OptimConfig {
            clip,
            ..OptimConfig::new(adam, 0.01)
        },
        OptimConfig {
            weight_decay: 0.01,
            ..OptimConfig::new(OptimKind::Adagrad { eps: 1e-10 }, 0.05)
        },
    ]
}

fn same_update(make: &dyn Fn(ModelConfig, OptimConfig, Vec<f32>) -> Box<dyn Engine>, path: &str) {
    let cfg = ModelConfig::char_lm(11, 13, 2);
    for opt in optimisers() {
        let p = ParamLayout::new(&cfg).init(&cfg, 3);
        let (mut whole, mut split) = (make(cfg, opt, p.clone()), make(cfg, opt, p));
        for s in 0..3 {
            let batch = random_batch(&cfg, 5, 7, false, 10 + s);
            let l1 = whole.train_step(&batch, true).unwrap().unwrap();
            let (l2, g) = split.loss_and_grads(&batch, Want::default()).unwrap();
            split.apply_grads(&g.params).unwrap();
            assert_eq!(l1.to_bits(), l2.to_bits(), "{path} {:?}: loss at step {s}", opt.kind);
        }
        let (a, b) = (whole.params().unwrap(), split.params().unwrap());
        assert!(a == b, "{path} {:?}: weights differ", opt.kind);
        assert_eq!(whole.optim_state().unwrap(), split.optim_state().unwrap());
    }
}

#[test]
fn cpu_apply_grads_is_the_update_of_train_step() {
    same_update(&|c, o, p| Box::new(CpuEngine::new(c, o, p).unwrap()), "cpu");
}

#[test]
fn gpu_apply_grads_is_the_update_of_train_step() {
    let ctx: Arc<GpuContext> = GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)");
    same_update(
        &|c, o, p| Box::new(GpuEngine::new(ctx.clone(), c, o, p).unwrap()),
        "gpu",
    );
}

#[test]
fn wrong_length_and_non_finite_gradients_are_errors() {
    let cfg = ModelConfig::char_lm(5, 4, 1);
    let p = ParamLayout::new(&cfg).init(&cfg, 1);
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1);
    let ctx = GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)");
    let engines: Vec<Box<dyn Engine>> = vec![
        Box::new(CpuEngine::new(cfg, opt, p.clone()).unwrap()),
        Box::new(GpuEngine::new(ctx, cfg, opt, p.clone()).unwrap()),
    ];
    for mut e in engines {
        assert!(e.apply_grads(&p[1..]).is_err());
        let mut g = vec![0.0; p.len()];
        g[0] = f32::NAN;
        let err = e.apply_grads(&g).unwrap_err().to_string();
        assert!(err.contains("gradient"), "{err}");
        assert_eq!(e.params().unwrap(), p, "a refused update changed the weights");
    }
}
