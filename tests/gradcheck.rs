//! CPU reference vs central finite differences in f64 (SPEC §5): relative error < 1e-6 per
//! tensor, for every activation × head × sequence shape × input kind × L × reduction × h0,
//! and for the nn.RNN options (bias-free, bidirectional, ragged lengths, dropout).

mod model_cases;

use model_cases::{model, Shape};
use wgrnn::cpu::{backward, forward, forward_train};
use wgrnn::dropout::MaskKey;
use wgrnn::{
    random_batch, Activation, Batch, Dropout, Head, Init, Input, Inputs, ModelConfig, ParamLayout, Reduction, SeqShape,
    Want,
};

/// Five-point central differences in f64: truncation error ~ eps^4·f⁽⁵⁾/30 ~ 1e-18 and
/// rounding error ~ 1e-16·|L| / eps ~ 1e-12 at eps = 1e-4, so even gradients of norm 1e-5
/// (IRNN's tiny W_ih makes dx that small) are checked well inside the 1e-6 bound.
const EPS: f64 = 1e-4;
/// A relu kink within 2·eps of a pre-activation breaks the difference quotient (IRNN puts
/// many pre-activations within 1e-3 of 0). Relu models therefore try each of these steps per
/// element and keep the quotient nearest the analytic value: a wrong gradient is off at every
/// step, while a kink only spoils the steps that cross it.
const EPS_RELU: [f64; 4] = [1e-4, 1e-5, 1e-6, 1e-7];
/// SPEC §5
const MAX_REL: f64 = 1e-6;
/// Gradients whose norm is below this are treated as exactly zero on both sides.
const TINY: f64 = 1e-10;

/// The loss of a training step; with dropout the masks are fixed by `key` (a pure function
/// of the update count), so the loss is a smooth function of the weights and inputs.
fn loss(cfg: &ModelConfig, layout: &ParamLayout, p: &[f64], batch: &Batch<f64>, key: Option<&MaskKey>) -> f64 {
    forward_train(cfg, layout, p, batch, key).loss
}

fn rel_err(a: &[f64], n: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(n).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nn = n.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na.max(nn) < TINY {
        0.0
    } else {
        diff / na.max(nn)
    }
}

/// d loss / d element i, where `f(i, d)` is the loss with element i moved by d; `analytic`
/// picks among the steps when there are several (see EPS_RELU).
fn numeric(analytic: &[f64], eps: &[f64], mut f: impl FnMut(usize, f64) -> f64) -> Vec<f64> {
    let mut quotient = |i: usize, e: f64| (8.0 * (f(i, e) - f(i, -e)) - (f(i, 2.0 * e) - f(i, -2.0 * e))) / (12.0 * e);
    (0..analytic.len())
        .map(|i| {
            eps.iter()
                .map(|&e| quotient(i, e))
                .min_by(|x, y| (x - analytic[i]).abs().total_cmp(&(y - analytic[i]).abs()))
                .unwrap()
        })
        .collect()
}

/// Returns the largest relative error over all tensors, and fails with a message naming the
/// case and tensor when one exceeds the bound.
fn check_case(cfg: &ModelConfig, b: usize, t: usize, with_h0: bool, seed: u64) -> f64 {
    check_ragged(cfg, b, t, with_h0, seed, None)
}

/// `check_case` with sequence lengths (B) and, with dropout, the masks of update `seed`.
fn check_ragged(cfg: &ModelConfig, b: usize, t: usize, with_h0: bool, seed: u64, lengths: Option<Vec<u32>>) -> f64 {
    cfg.validate().unwrap();
    let key = MaskKey::new(&cfg.dropout, seed);
    let key = Some(&key);
    let layout = ParamLayout::new(cfg);
    let p: Vec<f64> = layout.init(cfg, seed).iter().map(|&v| v as f64).collect();
    let mut batch: Batch<f64> = random_batch(cfg, b, t, with_h0, seed + 1).cast();
    batch.lengths = lengths;
    batch.validate(cfg).unwrap();
    let act = forward_train(cfg, &layout, &p, &batch, key);
    // the options under test change the loss: the check cannot pass by ignoring them
    if batch.is_ragged() {
        let full = Batch {
            lengths: None,
            ..batch.clone()
        };
        assert_ne!(act.loss, loss(cfg, &layout, &p, &full, key), "lengths ignored");
    }
    if cfg.dropout.is_active() {
        assert_ne!(act.loss, loss(cfg, &layout, &p, &batch, None), "dropout ignored");
    }
    let want = Want {
        dx: matches!(cfg.input, Input::Dense { .. }),
        dh0: with_h0,
    };
    let g = backward(cfg, &layout, &p, &batch, &act, want);
    let case = format!("{cfg} B={b} T={t} h0={with_h0} lengths={:?}", batch.lengths);
    let mut worst = 0.0f64;
    let mut report = |name: &str, a: &[f64], n: &[f64]| {
        let e = rel_err(a, n);
        assert!(e < MAX_REL, "{case}: {name} relative error {e:.3e} >= {MAX_REL:e}");
        worst = worst.max(e);
    };

    let eps: &[f64] = if cfg.activation == Activation::Relu {
        &EPS_RELU
    } else {
        &[EPS]
    };
    for spec in &layout.tensors {
        let r = spec.range();
        let num = numeric(&g.params[r.clone()], eps, |i, d| {
            let mut q = p.clone();
            q[r.start + i] += d;
            loss(cfg, &layout, &q, &batch, key)
        });
        report(&spec.name, &g.params[r.clone()], &num);
    }
    if matches!(batch.inputs, Inputs::Dense(_)) {
        let num = numeric(g.dx.as_ref().unwrap(), eps, |i, d| {
            let mut bb = batch.clone();
            if let Inputs::Dense(v) = &mut bb.inputs {
                v[i] += d;
            }
            loss(cfg, &layout, &p, &bb, key)
        });
        report("dx", g.dx.as_ref().unwrap(), &num);
    }
    if with_h0 {
        let num = numeric(g.dh0.as_ref().unwrap(), eps, |i, d| {
            let mut bb = batch.clone();
            bb.h0.as_mut().unwrap()[i] += d;
            loss(cfg, &layout, &p, &bb, key)
        });
        report("dh0", g.dh0.as_ref().unwrap(), &num);
    }
    worst
}

/// (B, T, I, H, O) sets: all different, with 1s in every position somewhere. O is raised to
/// 2 for softmax heads.
const SHAPES: [Shape; 4] = [(3, 4, 2, 5, 1), (1, 3, 4, 2, 5), (2, 1, 3, 4, 6), (4, 2, 1, 3, 2)];

#[test]
fn gradcheck_every_variant() {
    let mut cases = 0;
    let mut worst = 0.0f64;
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::Relu] {
        for head in [Head::Softmax, Head::Linear, Head::Sigmoid] {
            for seq in [SeqShape::ManyToMany, SeqShape::ManyToOne, SeqShape::OneToMany] {
                for input_kind in 0..3 {
                    for layers in 1..=3 {
                        for reduction in [Reduction::Mean, Reduction::Sum] {
                            for with_h0 in [false, true] {
                                let (mut cfg, b, t) = model(&SHAPES, head, seq, input_kind, layers, cases);
                                cfg.activation = act;
                                cfg.reduction = reduction;
                                worst = worst.max(check_case(&cfg, b, t, with_h0, cases as u64));
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    println!("gradcheck: {cases} cases, max relative error {worst:.3e} (bound {MAX_REL:e})");
}

#[test]
fn gradcheck_irnn_relu() {
    let cfg = ModelConfig {
        input: Input::Dense { size: 2 },
        hidden: 6,
        layers: 2,
        activation: Activation::Relu,
        output: 1,
        head: Head::Linear,
        reduction: Reduction::Mean,
        seq: SeqShape::ManyToOne,
        init: Init::Irnn,
        bias: true,
        head_bias: true,
        bidirectional: false,
        dropout: Default::default(),
        loss: Default::default(),
    };
    let e = check_case(&cfg, 3, 7, true, 42);
    println!("irnn: max relative error {e:.3e}");
}

/// (B, T, I, H, O) sets for the nn.RNN options: T ≥ 2 so that lengths can differ; 1s in
/// B, I, H... and O somewhere. O is raised to 2 for softmax heads.
const OPTION_SHAPES: [Shape; 4] = [(3, 4, 2, 3, 2), (1, 3, 3, 2, 1), (4, 2, 1, 2, 3), (2, 5, 2, 1, 1)];

/// Lengths with a 1 and (B > 1) a full-length sequence: 1, T, T-1, 1, T, ...
fn ragged_lengths(b: usize, t: usize) -> Vec<u32> {
    (0..b)
        .map(|i| match i % 3 {
            0 => 1,
            1 => t as u32,
            _ => (t - 1).max(1) as u32,
        })
        .collect()
}

/// A small model for case number `n`: the activation, input kind, reduction and shape
/// rotate with n so every combination of the options meets each of them somewhere.
fn option_case(n: usize, head: Head, seq: SeqShape, layers: usize) -> (ModelConfig, usize, usize) {
    let (mut cfg, b, t) = model(&OPTION_SHAPES, head, seq, (n / 3) % 3, layers, n);
    cfg.activation = [Activation::Tanh, Activation::Sigmoid, Activation::Relu][n % 3];
    cfg.reduction = [Reduction::Mean, Reduction::Sum][(n / 9) % 2];
    (cfg, b, t)
}

/// {bias, no bias, no head bias} × {uni, bi} × {equal, ragged lengths (with a 1)} × L ∈
/// {1, 2} × head × sequence shape.
#[test]
fn gradcheck_bias_free_bidirectional_ragged() {
    let (mut cases, mut worst) = (0, 0.0f64);
    for (bias, head_bias) in [(true, true), (false, false), (true, false)] {
        for bidirectional in [false, true] {
            for ragged in [false, true] {
                for layers in 1..=2 {
                    for head in [Head::Softmax, Head::Linear, Head::Sigmoid] {
                        for seq in [SeqShape::ManyToMany, SeqShape::ManyToOne, SeqShape::OneToMany] {
                            let (mut cfg, b, t) = option_case(cases, head, seq, layers);
                            cfg.bias = bias;
                            cfg.head_bias = head_bias;
                            cfg.bidirectional = bidirectional;
                            let lengths = ragged.then(|| ragged_lengths(b, t));
                            let with_h0 = cases % 4 != 3;
                            worst = worst.max(check_ragged(&cfg, b, t, with_h0, cases as u64, lengths));
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    println!("gradcheck nn.RNN options: {cases} cases, max relative error {worst:.3e} (bound {MAX_REL:e})");
}

/// Dropout between layers with its masks fixed (SPEC §1: a pure function of the update
/// count), on L = 2 and 3, uni- and bidirectional, equal and ragged lengths.
#[test]
fn gradcheck_dropout() {
    let (mut cases, mut worst) = (0, 0.0f64);
    for bidirectional in [false, true] {
        for ragged in [false, true] {
            for layers in 2..=3 {
                for (head, seq) in [
                    (Head::Softmax, SeqShape::ManyToMany),
                    (Head::Linear, SeqShape::ManyToOne),
                    (Head::Sigmoid, SeqShape::OneToMany),
                ] {
                    let (mut cfg, b, t) = option_case(cases, head, seq, layers);
                    cfg.bidirectional = bidirectional;
                    cfg.bias = cases % 2 == 0;
                    // wider layers, so that each mask both drops and keeps units
                    cfg.hidden = 4;
                    cfg.dropout = Dropout { p: 0.4, seed: 9 };
                    let lengths = ragged.then(|| ragged_lengths(b, t));
                    worst = worst.max(check_ragged(&cfg, b, t, true, 100 + cases as u64, lengths));
                    cases += 1;
                }
            }
        }
    }
    println!("gradcheck dropout: {cases} cases, max relative error {worst:.3e} (bound {MAX_REL:e})");
}

/// Half-MSE (SPEC §1: ½ Σ_k (ŷ − y)², gradient ŷ − y) on both MSE heads, every sequence
/// shape and reduction, with O > 1 so the absent 1/O shows.
#[test]
fn gradcheck_half_mse() {
    let mut worst = 0.0f64;
    let mut cases = 0u64;
    for head in [Head::Linear, Head::Sigmoid] {
        for seq in [SeqShape::ManyToMany, SeqShape::ManyToOne, SeqShape::OneToMany] {
            for reduction in [Reduction::Mean, Reduction::Sum] {
                let cfg = ModelConfig {
                    input: Input::Dense { size: 3 },
                    hidden: 5,
                    layers: 2,
                    activation: Activation::Tanh,
                    output: 3,
                    head,
                    reduction,
                    seq,
                    loss: wgrnn::Loss::HalfMse,
                    ..ModelConfig::char_lm(2, 5, 2)
                };
                worst = worst.max(check_case(&cfg, 2, 4, cases.is_multiple_of(2), 300 + cases));
                cases += 1;
            }
        }
    }
    println!("half-mse: {cases} cases, max relative error {worst:.3e}");
}

/// The two conventions on the same batch: half-mse = mse · O / 2, gradients likewise.
#[test]
fn half_mse_is_the_classic_convention() {
    for o in [1usize, 3] {
        let mse = ModelConfig {
            input: Input::Dense { size: 2 },
            output: o,
            head: Head::Linear,
            reduction: Reduction::Sum,
            ..ModelConfig::char_lm(2, 4, 1)
        };
        let half = ModelConfig {
            loss: wgrnn::Loss::HalfMse,
            ..mse
        };
        let layout = ParamLayout::new(&mse);
        let p: Vec<f64> = layout.init(&mse, 3).iter().map(|&v| v as f64).collect();
        let batch: Batch<f64> = random_batch(&mse, 2, 3, false, 4).cast();
        let (a, b) = (forward(&mse, &layout, &p, &batch), forward(&half, &layout, &p, &batch));
        let ratio = o as f64 / 2.0;
        assert!(
            (b.loss - a.loss * ratio).abs() < 1e-12 * a.loss.abs(),
            "O={o}: {} vs {}",
            b.loss,
            a.loss
        );
        let want = Want::default();
        let ga = backward(&mse, &layout, &p, &batch, &a, want);
        let gb = backward(&half, &layout, &p, &batch, &b, want);
        for (x, y) in ga.params.iter().zip(&gb.params) {
            assert!(
                (y - x * ratio).abs() <= 1e-12 * (1.0 + x.abs()),
                "O={o}: grad {y} vs {x}·{ratio}"
            );
        }
    }
}
