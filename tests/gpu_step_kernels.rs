//! The per-step recurrence kernels (`StepKernel`: the plain reference, the subgroup variant
//! where the adapter has usable subgroups, the workgroup-tiled one) through the whole engine,
//! the per-step chain forced: a few training steps with each give the plain kernel's bits
//! and agree with the CPU engine within SPEC §5, on one-hot tokens, an embedding, dense
//! inputs, one-to-many (steps without input), bidirectional, ragged and two-layer models,
//! with B and H on and off the tiles' edges.

use std::sync::{Arc, OnceLock};

use wgrnn::compare;
use wgrnn::config::Dropout;
use wgrnn::gpu::kernels::{Recurrence, RecurrencePlan, StepKernel, SEQ_BLOCK};
use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{
    random_batch, Activation, Batch, CpuEngine, Engine, Head, Input, ModelConfig, OptimConfig, OptimKind, ParamLayout,
    SeqShape, Want,
};

/// A missing adapter fails the test: CI installs lavapipe, so there is always one.
fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

/// An engine recording the per-step chain with `step`.
fn gpu(cfg: &ModelConfig, opt: OptimConfig, seed: u64, step: StepKernel) -> GpuEngine {
    let p = ParamLayout::new(cfg).init(cfg, seed);
    let mut e = GpuEngine::new(ctx(), *cfg, opt, p).unwrap();
    let tile = ctx().kernels().unwrap().seq_tile;
    e.set_recurrence(RecurrencePlan {
        kind: Recurrence::Step,
        block: SEQ_BLOCK,
        tile,
    })
    .unwrap();
    e.set_step_kernel(step).unwrap();
    e
}

/// What one engine computes: the loss, gradients and dx of the first batch, then the loss of
/// a training step on each batch and the weights after them.
struct Run {
    losses: Vec<f32>,
    grads: Vec<f32>,
    dx: Vec<f32>,
    weights: Vec<f32>,
}

fn run(e: &mut dyn Engine, batches: &[Batch<f32>]) -> Run {
    let want = Want { dx: true, dh0: false };
    let (loss, g) = e.loss_and_grads(&batches[0], want).unwrap();
    let mut losses = vec![loss];
    for b in batches {
        losses.push(e.train_step(b, true).unwrap().unwrap());
    }
    Run {
        losses,
        grads: g.params,
        dx: g.dx.unwrap(),
        weights: e.params().unwrap(),
    }
}

fn bits(r: &Run) -> Vec<u32> {
    let all = r.losses.iter().chain(&r.grads).chain(&r.dx).chain(&r.weights);
    all.map(|v| v.to_bits()).collect()
}

/// `got` against the CPU engine's run within SPEC §5.
fn check_cpu(case: &str, layout: &ParamLayout, got: &Run, cpu: &Run) {
    for (g, c) in got.losses.iter().zip(&cpu.losses) {
        let d = compare::loss("loss", *g, *c);
        assert!(d.ok, "{case}: {d}");
    }
    let d = compare::tensor("dx", &got.dx, &cpu.dx);
    assert!(d.ok, "{case}: {d}");
    for (what, g, c) in [
        ("grad", &got.grads, &cpu.grads),
        ("weights", &got.weights, &cpu.weights),
    ] {
        for d in compare::buffer(what, layout, g, c) {
            assert!(d.ok, "{case}: {d}");
        }
    }
}

/// (model, B, T, ragged lengths, h0)
fn cases() -> Vec<(ModelConfig, usize, usize, bool, bool)> {
    let embed = ModelConfig {
        input: Input::Tokens {
            vocab: 9,
            embed: Some(6),
        },
        activation: Activation::Sigmoid,
        ..ModelConfig::char_lm(9, 36, 1)
    };
    let dense = ModelConfig {
        input: Input::Dense { size: 5 },
        output: 2,
        head: Head::Linear,
        activation: Activation::Relu,
        ..ModelConfig::char_lm(2, 1, 1)
    };
    let one_to_many = ModelConfig {
        seq: SeqShape::OneToMany,
        ..dense
    };
    let bidirectional = ModelConfig {
        bidirectional: true,
        ..ModelConfig::char_lm(5, 20, 1)
    };
    let two_layers = ModelConfig {
        bias: false,
        dropout: Dropout { p: 0.25, seed: 3 },
        ..ModelConfig::char_lm(6, 48, 2)
    };
    vec![
        // H = 37: two column tiles, no vec4 loads
        (ModelConfig::char_lm(7, 37, 1), 5, 4, false, true),
        // B = 33: two row tiles; H = 36, aligned: vec4 staging
        (embed, 33, 3, true, false),
        (dense, 1, 3, false, true),
        (
            ModelConfig {
                hidden: 7,
                ..one_to_many
            },
            6,
            4,
            true,
            false,
        ),
        (bidirectional, 7, 5, true, false),
        (two_layers, 34, 4, true, true),
    ]
}

#[test]
fn every_step_kernel_trains_with_the_plain_bits_and_matches_cpu() {
    let steps = ctx().kernels().unwrap().steps();
    assert!(
        steps.contains(&StepKernel::Tile32),
        "the tiled step kernel needs no feature"
    );
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.9 }, 0.1);
    for (n, (cfg, b, t, ragged, h0)) in cases().into_iter().enumerate() {
        let batches: Vec<Batch<f32>> = (0..3)
            .map(|s| {
                let mut batch = random_batch(&cfg, b, t, h0, 100 * n as u64 + s);
                if ragged {
                    batch.lengths = Some((0..b).map(|i| 1 + ((i * 5 + s as usize) % t) as u32).collect());
                }
                batch
            })
            .collect();
        let case = format!("{cfg} B={b} T={t} ragged={ragged} h0={h0}");
        let layout = ParamLayout::new(&cfg);
        let cpu_params = layout.init(&cfg, n as u64);
        let cpu = run(&mut CpuEngine::new(cfg, opt, cpu_params).unwrap(), &batches);
        let plain = run(&mut gpu(&cfg, opt, n as u64, StepKernel::Plain), &batches);
        check_cpu(&format!("{case}, plain"), &layout, &plain, &cpu);
        for &sk in steps.iter().filter(|&&s| s != StepKernel::Plain) {
            let got = run(&mut gpu(&cfg, opt, n as u64, sk), &batches);
            check_cpu(&format!("{case}, {sk}"), &layout, &got, &cpu);
            assert!(bits(&got) == bits(&plain), "{case}: {sk} differs from plain");
        }
    }
}
