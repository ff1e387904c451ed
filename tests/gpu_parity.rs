//! The nn.RNN-parity options (#11) on the GPU path: bias-free cells and heads,
//! bidirectional layers, per-sequence lengths and dropout, against the CPU reference
//! (SPEC §5) and against themselves (a ragged batch is its sequences run alone).

mod model_cases;

use model_cases::{
    check_buffer, check_loss, check_trained, engines, gpu_engine, model, rotate_options, Shape, Worst, ADAM,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgrnn::compare::{self, TENSOR_RTOL};
use wgrnn::config::Dropout;
use wgrnn::{
    random_batch, Batch, Clip, Engine, Head, Input, Inputs, ModelConfig, OptimConfig, OptimKind, Reduction, SeqShape,
    Targets, Want,
};

fn adam() -> OptimConfig {
    OptimConfig::new(ADAM, 0.01)
}

/// (B, T, I, H, O) sets, rotated over the cases: sizes that divide no workgroup, and a 1 in
/// every position somewhere. O is raised to 2 for softmax heads.
const SHAPES: [Shape; 5] = [
    (3, 4, 2, 5, 1),
    (1, 3, 4, 2, 5),
    (2, 1, 3, 4, 6),
    (5, 2, 1, 3, 2),
    (6, 5, 3, 1, 3),
];

/// Lengths of a batch: `kind` 0 none, 1 ragged (one sequence of length 1, the others
/// random in 1..=T), 2 all T, given explicitly.
fn lengths(kind: usize, b: usize, t: usize, seed: u64) -> Option<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match kind {
        0 => None,
        1 => Some(
            (0..b)
                .map(|i| if i == b / 2 { 1 } else { rng.random_range(1..=t as u32) })
                .collect(),
        ),
        _ => Some(vec![t as u32; b]),
    }
}

/// Sequence `i` of `batch` alone, cut to its own length.
fn alone(cfg: &ModelConfig, batch: &Batch<f32>, i: usize) -> Batch<f32> {
    let mut one = batch.rows(cfg, i, 1);
    let len = batch.len_of(i);
    let (t_in, t_out) = (cfg.input_steps(len), cfg.target_steps(len));
    one.inputs = match one.inputs {
        Inputs::Dense(x) => Inputs::Dense(x[..t_in * x.len() / cfg.input_steps(batch.steps)].to_vec()),
        Inputs::Tokens(x) => Inputs::Tokens(x[..t_in].to_vec()),
    };
    one.targets = match one.targets {
        Targets::Classes(y) => Targets::Classes(y[..t_out].to_vec()),
        Targets::Values(y) => Targets::Values(y[..t_out * cfg.output].to_vec()),
    };
    one.steps = len;
    one.lengths = None;
    one
}

fn close(case: &str, what: &str, gpu: &[f32], want: &[f32]) -> f64 {
    let d = compare::tensor(what, gpu, want);
    assert!(d.ok, "{case}: {d}");
    d.rel
}

/// GPU against itself: with the sum reduction, the loss, gradients, dx, dh0 and final
/// state of a ragged batch are those of its sequences run alone at their own lengths
/// (padding steps carry the state and take no part in the loss or the gradients).
#[test]
fn ragged_batch_is_its_sequences_alone() {
    let mut n = 0;
    for bidirectional in [false, true] {
        for seq in [SeqShape::ManyToMany, SeqShape::ManyToOne, SeqShape::OneToMany] {
            for head in [Head::Softmax, Head::Linear] {
                for input_kind in 0..3 {
                    let (mut cfg, _, _) = model(&SHAPES, head, seq, input_kind, 1 + n % 2, n);
                    cfg.reduction = Reduction::Sum;
                    cfg.bidirectional = bidirectional;
                    cfg.bias = n % 3 != 0;
                    let (b, t) = (4, 5);
                    let case = format!("{cfg} B={b} T={t}");
                    let mut gpu = gpu_engine(&cfg, adam(), n as u64);
                    let mut batch = random_batch(&cfg, b, t, true, 10 + n as u64);
                    batch.lengths = Some(vec![1, 5, 3, 2]);
                    let want = Want { dx: true, dh0: true };
                    let (loss, grads) = gpu.loss_and_grads(&batch, want).unwrap();
                    let state = gpu.forward(&batch).unwrap().final_state;
                    let (dx, dh0) = (grads.dx.unwrap(), grads.dh0.unwrap());
                    let (mut sum_loss, mut sum_grads) = (0.0f32, vec![0.0f32; grads.params.len()]);
                    let inw = cfg.in_width(0);
                    let hd = cfg.hidden;
                    for i in 0..b {
                        let one = alone(&cfg, &batch, i);
                        let (l1, g1) = gpu.loss_and_grads(&one, want).unwrap();
                        sum_loss += l1;
                        sum_grads.iter_mut().zip(&g1.params).for_each(|(s, g)| *s += g);
                        let len = one.steps;
                        // dx rows of sequence i: its own steps, zero past its length
                        let mut dx_i = Vec::new();
                        for s in 0..cfg.input_steps(t) {
                            dx_i.extend_from_slice(&dx[(s * b + i) * inw..(s * b + i + 1) * inw]);
                        }
                        let mut want_dx = g1.dx.unwrap();
                        want_dx.resize(dx_i.len(), 0.0);
                        close(&case, &format!("dx of sequence {i} (len {len})"), &dx_i, &want_dx);
                        let rows = |v: &[f32]| -> Vec<f32> {
                            (0..cfg.state_rows())
                                .flat_map(|r| v[(r * b + i) * hd..(r * b + i + 1) * hd].to_vec())
                                .collect()
                        };
                        close(&case, &format!("dh0 of sequence {i}"), &rows(&dh0), &g1.dh0.unwrap());
                        let s1 = gpu.forward(&one).unwrap().final_state;
                        close(&case, &format!("final state of sequence {i}"), &rows(&state), &s1);
                    }
                    let d = compare::loss("loss", loss, sum_loss);
                    assert!(d.ok, "{case}: {d}");
                    close(&case, "gradients", &grads.params, &sum_grads);
                    n += 1;
                }
            }
        }
    }
}

/// One full comparison on one batch: loss_and_grads (with dx, and dh0 when the batch has
/// h0), forward outputs and final state, then one train_step, the updated weights and
/// last_state.
fn compare_case(cfg: &ModelConfig, opt: OptimConfig, batch: &Batch<f32>, seed: u64) -> Worst {
    let case = format!(
        "{cfg} B={} T={} lengths={:?} h0={}",
        batch.batch,
        batch.steps,
        batch.lengths,
        batch.h0.is_some()
    );
    let (mut cpu, mut gpu) = engines(cfg, opt, seed);
    let want = Want {
        dx: true,
        dh0: batch.h0.is_some(),
    };
    let mut w = Worst::default();
    let (lc, gc) = cpu.loss_and_grads(batch, want).unwrap();
    let (lg, gg) = gpu.loss_and_grads(batch, want).unwrap();
    w.loss = check_loss(&case, lg, lc);
    w.grad = check_buffer(&case, "grad", cpu.layout(), &gg.params, &gc.params);
    w.grad = w
        .grad
        .max(close(&case, "dx", gg.dx.as_ref().unwrap(), gc.dx.as_ref().unwrap()));
    if want.dh0 {
        w.grad = w
            .grad
            .max(close(&case, "dh0", gg.dh0.as_ref().unwrap(), gc.dh0.as_ref().unwrap()));
    }
    let (oc, og) = (cpu.forward(batch).unwrap(), gpu.forward(batch).unwrap());
    w.loss = w.loss.max(check_loss(&format!("{case} forward"), og.loss, oc.loss));
    close(&case, "forward outputs", &og.out, &oc.out);
    close(&case, "forward final state", &og.final_state, &oc.final_state);
    let lc = cpu.train_step(batch, true).unwrap().unwrap();
    let lg = gpu.train_step(batch, true).unwrap().unwrap();
    w.loss = w.loss.max(check_loss(&format!("{case} train_step"), lg, lc));
    let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
    w.weights = check_buffer(&case, "weights", cpu.layout(), &pg, &pc);
    close(
        &case,
        "last_state",
        &gpu.last_state().unwrap(),
        &cpu.last_state().unwrap(),
    );
    w.cases = 1;
    w
}

/// Every head, sequence shape, input kind, L in {1, 2} and direction count, with the
/// biases, lengths (none, ragged, all equal given explicitly), dropout, h0, sizes and
/// optimiser rotating over the cases; the worst differences are reported per option.
#[test]
fn every_option_matches_cpu() {
    let opts = [
        adam(),
        OptimConfig::new(OptimKind::Sgd { momentum: 0.9 }, 0.1),
        OptimConfig::new(OptimKind::Adagrad { eps: 1e-8 }, 0.1),
    ];
    let names = [
        "no bias",
        "no head bias",
        "bidirectional",
        "ragged",
        "equal lengths",
        "dropout",
    ];
    let mut worst: Vec<Worst> = names.iter().map(|_| Worst::default()).collect();
    let mut n = 0usize;
    for bidirectional in [false, true] {
        for layers in [1, 2] {
            for head in [Head::Softmax, Head::Linear, Head::Sigmoid] {
                for seq in [SeqShape::ManyToMany, SeqShape::ManyToOne, SeqShape::OneToMany] {
                    for input_kind in 0..3 {
                        let (mut cfg, b, t) = model(&SHAPES, head, seq, input_kind, layers, n);
                        cfg.bidirectional = bidirectional;
                        rotate_options(&mut cfg, n);
                        if (n / 2).is_multiple_of(2) {
                            cfg.dropout = Dropout { p: 0.3, seed: n as u64 };
                        }
                        let mut batch = random_batch(&cfg, b, t, (n / 5).is_multiple_of(2), 1000 + n as u64);
                        batch.lengths = lengths(n % 3, b, t, n as u64);
                        let w = compare_case(&cfg, opts[n % opts.len()], &batch, n as u64);
                        let on = [
                            !cfg.bias,
                            !cfg.head_bias,
                            bidirectional,
                            batch.is_ragged(),
                            n % 3 == 2,
                            cfg.dropout.is_active() && layers > 1,
                        ];
                        for (k, _) in on.iter().enumerate().filter(|(_, &o)| o) {
                            worst[k].add(&w);
                        }
                        n += 1;
                    }
                }
            }
        }
    }
    for (name, w) in names.iter().zip(&worst) {
        println!(
            "{name}: {} cases; worst loss rel diff {:.3e}, grad {:.3e}, weights {:.3e}",
            w.cases, w.loss, w.grad, w.weights
        );
    }
}

/// k training steps on fresh ragged batches, the loss read back on odd steps only (the
/// others must still update): the dropout masks follow the update count on both paths.
/// Returns the worst relative difference.
fn run_steps(cfg: &ModelConfig, opt: OptimConfig, b: usize, t: usize, k: u64, carried: bool) -> f64 {
    let case = format!("{cfg} B={b} T={t} carried={carried}");
    let (mut cpu, mut gpu) = engines(cfg, opt, 7);
    let mut worst = 0.0f64;
    for s in 0..k {
        let mut batch = random_batch(cfg, b, t, false, 100 + s);
        batch.lengths = lengths(1, b, t, 200 + s);
        // the first window starts from zeros; each later one from the previous final state
        let (lc, lg) = if carried && s > 0 {
            (
                cpu.train_step_carried(&batch, true),
                gpu.train_step_carried(&batch, s % 2 == 1),
            )
        } else {
            (cpu.train_step(&batch, true), gpu.train_step(&batch, s % 2 == 1))
        };
        if let Some(lg) = lg.unwrap() {
            worst = worst.max(check_loss(&format!("{case} step {s}"), lg, lc.unwrap().unwrap()));
        }
    }
    worst = worst.max(check_trained(&case, k, &mut cpu, &mut gpu));
    worst = worst.max(close(
        &case,
        "last_state",
        &gpu.last_state().unwrap(),
        &cpu.last_state().unwrap(),
    ));
    worst
}

/// A two-layer character model with every option on.
fn lm(bidirectional: bool) -> ModelConfig {
    ModelConfig {
        input: Input::Tokens {
            vocab: 11,
            embed: Some(6),
        },
        bias: false,
        head_bias: false,
        bidirectional,
        dropout: Dropout { p: 0.25, seed: 99 },
        ..ModelConfig::char_lm(11, 13, 2)
    }
}

#[test]
fn k_steps_with_dropout_and_ragged_batches_match_cpu() {
    let dense = ModelConfig {
        input: Input::Dense { size: 3 },
        output: 2,
        head: Head::Linear,
        seq: SeqShape::ManyToOne,
        bidirectional: true,
        ..ModelConfig::char_lm(2, 9, 1)
    };
    for cfg in [lm(true), lm(false), dense] {
        let mut opt = adam();
        opt.clip = Clip {
            norm: Some(0.5),
            value: None,
        };
        let e = run_steps(&cfg, opt, 5, 6, 12, false);
        println!("{cfg}: 12 steps, worst rel diff {e:.3e} (tol {TENSOR_RTOL:e})");
    }
}

/// Truncated BPTT with lengths: each sequence's carried state is its state at its own
/// length.
#[test]
fn stateful_training_with_lengths_matches_cpu() {
    let cfg = lm(false);
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.5 }, 0.1);
    let e = run_steps(&cfg, opt, 4, 5, 6, true);
    println!("stateful with lengths: worst rel diff {e:.3e}");
}

/// A batch split into chunks (an artificial binding limit): the lengths, h0 rows and the
/// dropout masks' sequence index follow each chunk.
#[test]
fn split_batch_with_every_option_matches_cpu() {
    let (b, t) = (7, 5);
    for bidirectional in [true, false] {
        let cfg = lm(bidirectional);
        let case = format!("split batch {cfg}");
        let (mut cpu, mut gpu) = engines(&cfg, adam(), 5);
        // the largest per-sequence buffer is dz, (dirs·T + 1)·H floats: 3 sequences fit
        let per_seq = ((cfg.dirs() * t + 1) * cfg.hidden * 4) as u64;
        gpu.set_binding_limit(Some(3 * per_seq)).unwrap();
        let split = gpu.dispatches_per_step(b, t).unwrap();
        gpu.set_binding_limit(None).unwrap();
        let whole = gpu.dispatches_per_step(b, t).unwrap();
        assert!(
            split > 2 * whole,
            "{case}: {split} dispatches split vs {whole} whole: not split"
        );
        gpu.set_binding_limit(Some(3 * per_seq)).unwrap();
        for s in 0..4 {
            let mut batch = random_batch(&cfg, b, t, s % 2 == 0, 300 + s);
            batch.lengths = lengths(1, b, t, 400 + s);
            let lc = cpu.train_step(&batch, true).unwrap().unwrap();
            let lg = gpu.train_step(&batch, true).unwrap().unwrap();
            check_loss(&format!("{case} step {s}"), lg, lc);
            close(
                &case,
                "last_state",
                &gpu.last_state().unwrap(),
                &cpu.last_state().unwrap(),
            );
        }
        let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
        let e = check_buffer(&case, "weights after 4 steps", cpu.layout(), &pg, &pc);
        println!("{case}: worst rel diff {e:.3e}");
    }
}

/// The same run twice gives the same bits, dropout, both directions and lengths included.
#[test]
fn two_identical_runs_are_bitwise_equal() {
    let run = || {
        let cfg = lm(true);
        let mut gpu = gpu_engine(&cfg, adam(), 3);
        let mut losses = Vec::new();
        for s in 0..4 {
            let mut batch = random_batch(&cfg, 6, 7, s % 2 == 1, 500 + s);
            batch.lengths = lengths(1, 6, 7, s);
            losses.push(gpu.train_step(&batch, true).unwrap().unwrap().to_bits());
        }
        let weights: Vec<u32> = gpu.params().unwrap().iter().map(|v| v.to_bits()).collect();
        (losses, weights)
    };
    assert_eq!(run(), run());
}
