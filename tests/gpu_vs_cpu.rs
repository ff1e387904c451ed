//! The GPU engine against the CPU reference (SPEC §5): loss, every gradient, dx, dh0, the
//! final state and the weights after optimiser steps, for every model variant.

mod model_cases;

use model_cases::{check_buffer, check_loss, check_trained, ctx, engines, model, Shape, Worst, ADAM};
use wgrnn::gpu::GpuEngine;
use wgrnn::{
    random_batch, Activation, Clip, Engine, Head, Input, ModelConfig, OptimConfig, OptimKind, ParamLayout, Reduction,
    SeqShape, Want,
};

/// SPEC §5 bounds and rules: the library's, shared with `wgrnn check`.
use wgrnn::compare::{self, LOSS_RTOL, TENSOR_RTOL};

/// ‖a - b‖ / max(‖b‖, TINY), and the largest elementwise |a - b|; NaN fails.
fn rel(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "length");
    assert!(a.iter().all(|x| x.is_finite()), "non-finite GPU value");
    let d = compare::tensor("tensor", a, b);
    (d.rel, d.max_abs)
}

/// One full comparison: loss_and_grads (with dx and dh0), forward outputs and final state,
/// then one train_step and the updated weights and last_state.
fn compare(cfg: &ModelConfig, opt: OptimConfig, b: usize, t: usize, with_h0: bool, seed: u64, w: &mut Worst) {
    let case = format!("{cfg} B={b} T={t} h0={with_h0} opt={:?}", opt.kind);
    let (mut cpu, mut gpu) = engines(cfg, opt, seed);
    let batch = random_batch(cfg, b, t, with_h0, seed + 1);
    let want = Want { dx: true, dh0: with_h0 };
    let (lc, gc) = cpu.loss_and_grads(&batch, want).unwrap();
    let (lg, gg) = gpu.loss_and_grads(&batch, want).unwrap();
    w.loss = w.loss.max(check_loss(&case, lg, lc));
    w.grad = w
        .grad
        .max(check_buffer(&case, "grad", cpu.layout(), &gg.params, &gc.params));
    let (e, max) = rel(gg.dx.as_ref().unwrap(), gc.dx.as_ref().unwrap());
    assert!(e < TENSOR_RTOL, "{case}: dx rel diff {e:.3e} (max {max:.3e})");
    if with_h0 {
        let (e, max) = rel(gg.dh0.as_ref().unwrap(), gc.dh0.as_ref().unwrap());
        assert!(e < TENSOR_RTOL, "{case}: dh0 rel diff {e:.3e} (max {max:.3e})");
    } else {
        assert!(gg.dh0.is_none());
    }

    let (oc, og) = (cpu.forward(&batch).unwrap(), gpu.forward(&batch).unwrap());
    check_loss(&case, og.loss, oc.loss);
    let (e, _) = rel(&og.out, &oc.out);
    assert!(e < TENSOR_RTOL, "{case}: forward outputs rel diff {e:.3e}");
    let (e, _) = rel(&og.final_state, &oc.final_state);
    assert!(e < TENSOR_RTOL, "{case}: forward final state rel diff {e:.3e}");

    let lc = cpu.train_step(&batch, true).unwrap().unwrap();
    let lg = gpu.train_step(&batch, true).unwrap().unwrap();
    check_loss(&case, lg, lc);
    let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
    w.weights = w.weights.max(check_buffer(&case, "weights", cpu.layout(), &pg, &pc));
    let (e, _) = rel(&gpu.last_state().unwrap(), &cpu.last_state().unwrap());
    assert!(e < TENSOR_RTOL, "{case}: last_state rel diff {e:.3e}");
    w.cases += 1;
}

/// (B, T, I, H, O) sets, rotated over the cases: sizes that divide no workgroup, and a 1 in
/// every position somewhere. O is raised to 2 for softmax heads.
const SHAPES: [Shape; 4] = [(3, 4, 2, 5, 1), (1, 3, 4, 2, 5), (2, 1, 3, 4, 6), (5, 2, 1, 3, 2)];

/// The full product: activation × head × sequence shape × input kind × L × reduction × h0,
/// with the optimiser rotating too.
#[test]
fn every_variant_matches_cpu() {
    let opts = [
        OptimConfig::new(ADAM, 0.01),
        OptimConfig::new(OptimKind::Sgd { momentum: 0.9 }, 0.1),
        OptimConfig::new(OptimKind::Adagrad { eps: 1e-8 }, 0.1),
    ];
    let mut w = Worst::default();
    let mut n = 0usize;
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::Relu] {
        for head in [Head::Softmax, Head::Linear, Head::Sigmoid] {
            for seq in [SeqShape::ManyToMany, SeqShape::ManyToOne, SeqShape::OneToMany] {
                for input_kind in 0..3 {
                    for layers in 1..=3 {
                        for red in [Reduction::Mean, Reduction::Sum] {
                            for with_h0 in [false, true] {
                                let (mut cfg, b, t) = model(&SHAPES, head, seq, input_kind, layers, n);
                                cfg.activation = act;
                                cfg.reduction = red;
                                compare(&cfg, opts[n % opts.len()], b, t, with_h0, n as u64, &mut w);
                                n += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    println!(
        "{} cases; worst loss rel diff {:.3e} (tol {LOSS_RTOL:e}), grad {:.3e}, weights {:.3e} (tol {TENSOR_RTOL:e})",
        w.cases, w.loss, w.grad, w.weights
    );
}

/// k optimiser steps on fresh batches, each step's loss and the final weights and optimiser
/// state compared (SPEC §5: weights after k steps within the gradient bound).
fn run_steps(cfg: &ModelConfig, opt: OptimConfig, b: usize, t: usize, k: u64, carry_state: bool) -> f64 {
    let case = format!(
        "{cfg} B={b} T={t} opt={:?} clip={:?} wd={}",
        opt.kind, opt.clip, opt.weight_decay
    );
    let (mut cpu, mut gpu) = engines(cfg, opt, 7);
    let mut worst = 0.0f64;
    let (mut sc, mut sg) = (None, None);
    for s in 0..k {
        let mut batch = random_batch(cfg, b, t, false, 100 + s);
        // truncated BPTT: carry each engine's own final state into the next window
        batch.h0 = sc.clone();
        let lc = cpu.train_step(&batch, true).unwrap().unwrap();
        batch.h0 = sg.clone();
        // the loss is read back on odd steps only; the others must still update
        let lg = gpu.train_step(&batch, s % 2 == 1).unwrap();
        if let Some(lg) = lg {
            worst = worst.max(check_loss(&format!("{case} step {s}"), lg, lc));
        }
        if carry_state {
            sc = Some(cpu.last_state().unwrap());
            sg = Some(gpu.last_state().unwrap());
        }
    }
    worst = worst.max(check_trained(&case, k, &mut cpu, &mut gpu));
    worst
}

fn lm() -> ModelConfig {
    ModelConfig {
        input: Input::Tokens {
            vocab: 11,
            embed: Some(6),
        },
        ..ModelConfig::char_lm(11, 13, 2)
    }
}

#[test]
fn twenty_steps_of_each_optimizer() {
    let dense = ModelConfig {
        input: Input::Dense { size: 3 },
        hidden: 9,
        layers: 1,
        output: 2,
        head: Head::Linear,
        seq: SeqShape::ManyToOne,
        ..ModelConfig::char_lm(2, 9, 1)
    };
    let kinds = [
        (ADAM, 0.01),
        (OptimKind::Sgd { momentum: 0.9 }, 0.05),
        (OptimKind::Sgd { momentum: 0.0 }, 0.1),
        (OptimKind::Adagrad { eps: 1e-8 }, 0.05),
    ];
    for cfg in [lm(), dense] {
        for (kind, lr) in kinds {
            for wd in [0.0, 1e-3] {
                let mut opt = OptimConfig::new(kind, lr);
                opt.weight_decay = wd;
                let e = run_steps(&cfg, opt, 4, 5, 20, false);
                println!("{cfg} {kind:?} wd={wd}: worst rel diff {e:.3e} (tol {TENSOR_RTOL:e})");
            }
        }
    }
}

/// An update that overflows (a huge weight decay) with no loss read back: the next read
/// names the tensor and step the CPU path stops at, for every optimiser: the state (Adam's
/// v, Adagrad's sum) or, with a huge learning rate too, the weights (SGD with and without
/// a velocity).
#[test]
fn overflowing_updates_are_reported_as_on_cpu() {
    let cases = [
        (ADAM, 1e-3, "optimiser state"),
        (OptimKind::Adagrad { eps: 1e-8 }, 1e-3, "optimiser state"),
        (OptimKind::Sgd { momentum: 0.9 }, 1e10, "weights"),
        (OptimKind::Sgd { momentum: 0.0 }, 1e10, "weights"),
    ];
    for (kind, lr, what) in cases {
        let mut opt = OptimConfig::new(kind, lr);
        opt.weight_decay = 1e30;
        let (mut cpu, mut gpu) = engines(&lm(), opt, 3);
        let batch = random_batch(&lm(), 3, 4, false, 8);
        let cpu_err = cpu.train_step(&batch, false).unwrap_err();
        let want = format!("non-finite {what} at step 1;");
        assert!(cpu_err.to_string().starts_with(&want), "{kind:?}: {cpu_err}");
        for _ in 0..3 {
            gpu.train_step(&batch, false).unwrap();
        }
        let gpu_err = gpu.train_step(&batch, true).unwrap_err();
        assert_eq!(gpu_err.to_string(), cpu_err.to_string(), "{kind:?}");
    }
}

/// Data-parallel updates (`apply_grads`, which reads nothing back) that overflow the
/// weights: the next call that reads names the update, as the CPU path does at once.
#[test]
fn overflowing_apply_grads_is_reported_at_the_next_read() {
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 1e38);
    let (mut cpu, mut gpu) = engines(&lm(), opt, 3);
    let grads = vec![10.0f32; cpu.layout().total];
    let cpu_err = cpu.apply_grads(&grads).unwrap_err();
    gpu.apply_grads(&grads).unwrap();
    let batch = random_batch(&lm(), 2, 3, false, 5);
    let gpu_err = gpu.loss_and_grads(&batch, Want::default()).unwrap_err();
    assert_eq!(gpu_err.to_string(), cpu_err.to_string());
    assert!(
        gpu_err.to_string().starts_with("non-finite weights at step 1;"),
        "{gpu_err}"
    );
}

#[test]
fn clipping_by_value_and_by_norm() {
    for clip in [
        Clip {
            norm: Some(0.05),
            value: None,
        },
        Clip {
            norm: None,
            value: Some(0.01),
        },
        Clip {
            norm: Some(0.05),
            value: Some(0.01),
        },
        // a bound far above the norm: the factor stays 1
        Clip {
            norm: Some(1e6),
            value: None,
        },
    ] {
        for kind in [ADAM, OptimKind::Sgd { momentum: 0.5 }] {
            let mut opt = OptimConfig::new(kind, 0.05);
            opt.clip = clip;
            let e = run_steps(&lm(), opt, 3, 6, 10, false);
            println!("clip {clip:?} {kind:?}: worst rel diff {e:.3e}");
        }
    }
}

/// Truncated BPTT: the final state of each window is carried into the next.
#[test]
fn stateful_training_carries_last_state() {
    let mut cfg = lm();
    cfg.activation = Activation::Relu;
    let opt = OptimConfig::new(OptimKind::Adagrad { eps: 1e-8 }, 0.05);
    let e = run_steps(&cfg, opt, 2, 3, 8, true);
    println!("stateful: worst rel diff {e:.3e}");
}

/// Shapes change between calls (training batch, evaluation batch): buffers are reallocated
/// and the last training state survives.
#[test]
fn batch_shape_changes() {
    let cfg = lm();
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.9 }, 0.1);
    let (mut cpu, mut gpu) = engines(&cfg, opt, 3);
    for (i, &(b, t)) in [(2, 3), (5, 1), (2, 3), (1, 7)].iter().enumerate() {
        let batch = random_batch(&cfg, b, t, i % 2 == 0, 40 + i as u64);
        let lc = cpu.train_step(&batch, true).unwrap().unwrap();
        let lg = gpu.train_step(&batch, true).unwrap().unwrap();
        check_loss("shape change", lg, lc);
        let eval = random_batch(&cfg, 3, 2, false, 50 + i as u64);
        let (oc, og) = (cpu.forward(&eval).unwrap(), gpu.forward(&eval).unwrap());
        check_loss("shape change eval", og.loss, oc.loss);
        let (e, _) = rel(&gpu.last_state().unwrap(), &cpu.last_state().unwrap());
        assert!(
            e < TENSOR_RTOL,
            "last_state after an eval batch of another shape: {e:.3e}"
        );
    }
    let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
    check_buffer("shape change", "weights", cpu.layout(), &pg, &pc);
}

/// A batch too large for the adapter is refused before allocation, naming the limit and
/// the largest batch that fits.
#[test]
fn oversized_batch_reports_the_limit() {
    let cfg = ModelConfig::char_lm(5, 64, 1);
    let layout = ParamLayout::new(&cfg);
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1);
    let mut gpu = GpuEngine::new(ctx(), cfg, opt, layout.init(&cfg, 1)).unwrap();
    let err = gpu.dispatches_per_step(1 << 22, 1 << 10).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, wgrnn::Error::GpuLimit { .. }), "{msg}");
    assert!(msg.contains("largest batch that fits is B = "), "{msg}");
    // the engine is still usable at a sane size
    assert!(gpu.dispatches_per_step(4, 8).unwrap() > 0);
}

/// A batch whose activations exceed one storage binding is split into chunks whose
/// gradients and losses are summed (workload F: (T+1)·B·H floats > 128 MiB). Forced here
/// with a tiny artificial binding limit: B = 7 in chunks of 3, 3 and 1, with an embedding
/// and two layers, norm clipping, Adam and carried states, against the CPU path.
#[test]
fn split_batch_training_matches_cpu() {
    let (b, t) = (7, 5);
    let mut opt = OptimConfig::new(ADAM, 0.02);
    opt.clip = Clip {
        norm: Some(0.5),
        value: None,
    };
    for cfg in [lm(), ModelConfig::char_lm(11, 13, 1)] {
        let case = format!("split batch {cfg}");
        let (mut cpu, mut gpu) = engines(&cfg, opt, 5);
        // (T+1)·H = 78 floats per sequence is the largest buffer row: 3 sequences fit
        let per_seq = ((t + 1) * cfg.hidden * 4) as u64;
        gpu.set_binding_limit(Some(3 * per_seq)).unwrap();
        let one = gpu.dispatches_per_step(b, t).unwrap();
        gpu.set_binding_limit(None).unwrap();
        let whole = gpu.dispatches_per_step(b, t).unwrap();
        assert!(
            one > 2 * whole,
            "{case}: {one} dispatches split vs {whole} whole: not split"
        );
        gpu.set_binding_limit(Some(3 * per_seq)).unwrap();
        let (mut sc, mut sg) = (None, None);
        for s in 0..4 {
            let mut batch = random_batch(&cfg, b, t, false, 300 + s);
            batch.h0 = sc.clone();
            let lc = cpu.train_step(&batch, true).unwrap().unwrap();
            batch.h0 = sg.clone();
            let lg = gpu.train_step(&batch, true).unwrap().unwrap();
            check_loss(&format!("{case} step {s}"), lg, lc);
            sc = Some(cpu.last_state().unwrap());
            sg = Some(gpu.last_state().unwrap());
            let (e, _) = rel(sg.as_ref().unwrap(), sc.as_ref().unwrap());
            assert!(e < TENSOR_RTOL, "{case} step {s}: last_state rel diff {e:.3e}");
        }
        let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
        check_buffer(&case, "weights after 4 steps", cpu.layout(), &pg, &pc);
        // a split batch is for training only: evaluation asks for a smaller batch
        let eval = random_batch(&cfg, b, t, false, 9);
        assert!(gpu.forward(&eval).is_err(), "{case}: forward on a split batch");
        let small = random_batch(&cfg, 2, t, false, 10);
        let (oc, og) = (cpu.forward(&small).unwrap(), gpu.forward(&small).unwrap());
        check_loss(&format!("{case} eval"), og.loss, oc.loss);
    }
}

/// Half-MSE (SPEC §1) on both MSE heads and every sequence shape: loss, gradients and the
/// weights after one step, GPU against CPU.
#[test]
fn half_mse_matches_cpu() {
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1);
    let mut w = Worst::default();
    let mut n = 0usize;
    for head in [Head::Linear, Head::Sigmoid] {
        for seq in [SeqShape::ManyToMany, SeqShape::ManyToOne, SeqShape::OneToMany] {
            for red in [Reduction::Mean, Reduction::Sum] {
                let (mut cfg, b, t) = model(&SHAPES, head, seq, 0, 2, n);
                cfg.reduction = red;
                cfg.loss = wgrnn::Loss::HalfMse;
                compare(&cfg, opt, b, t, n.is_multiple_of(2), 500 + n as u64, &mut w);
                n += 1;
            }
        }
    }
    println!(
        "half-mse: {} cases; worst loss {:.3e}, grad {:.3e}",
        w.cases, w.loss, w.grad
    );
}
