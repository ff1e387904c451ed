//! CPU reference vs central finite differences in f64 (SPEC §5): relative error < 1e-6 per
//! tensor, for every activation × head × sequence shape × input kind × L × reduction × h0.

use wgrnn::cpu::{backward, forward};
use wgrnn::{
    random_batch, Activation, Batch, Head, Init, Input, Inputs, ModelConfig, ParamLayout, Reduction, SeqShape, Want,
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

fn loss(cfg: &ModelConfig, layout: &ParamLayout, p: &[f64], batch: &Batch<f64>) -> f64 {
    forward(cfg, layout, p, batch).loss
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
    cfg.validate().unwrap();
    let layout = ParamLayout::new(cfg);
    let p: Vec<f64> = layout.init(cfg, seed).iter().map(|&v| v as f64).collect();
    let batch: Batch<f64> = random_batch(cfg, b, t, with_h0, seed + 1).cast();
    batch.validate(cfg).unwrap();
    let act = forward(cfg, &layout, &p, &batch);
    let want = Want {
        dx: matches!(cfg.input, Input::Dense { .. }),
        dh0: with_h0,
    };
    let g = backward(cfg, &layout, &p, &batch, &act, want);
    let case = format!("{cfg} B={b} T={t} h0={with_h0}");
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
            loss(cfg, &layout, &q, &batch)
        });
        report(&spec.name, &g.params[r.clone()], &num);
    }
    if matches!(batch.inputs, Inputs::Dense(_)) {
        let num = numeric(g.dx.as_ref().unwrap(), eps, |i, d| {
            let mut bb = batch.clone();
            if let Inputs::Dense(v) = &mut bb.inputs {
                v[i] += d;
            }
            loss(cfg, &layout, &p, &bb)
        });
        report("dx", g.dx.as_ref().unwrap(), &num);
    }
    if with_h0 {
        let num = numeric(g.dh0.as_ref().unwrap(), eps, |i, d| {
            let mut bb = batch.clone();
            bb.h0.as_mut().unwrap()[i] += d;
            loss(cfg, &layout, &p, &bb)
        });
        report("dh0", g.dh0.as_ref().unwrap(), &num);
    }
    worst
}

/// (B, T, I, H, O) sets: all different, with 1s in every position somewhere. O is raised to
/// 2 for softmax heads.
const SHAPES: [(usize, usize, usize, usize, usize); 4] =
    [(3, 4, 2, 5, 1), (1, 3, 4, 2, 5), (2, 1, 3, 4, 6), (4, 2, 1, 3, 2)];

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
                                let (b, t, i, h, o) = SHAPES[cases % SHAPES.len()];
                                let o = if head == Head::Softmax { o.max(2) } else { o };
                                let input = match input_kind {
                                    0 => Input::Dense { size: i },
                                    1 => Input::Tokens {
                                        vocab: i + 2,
                                        embed: None,
                                    },
                                    _ => Input::Tokens {
                                        vocab: i + 2,
                                        embed: Some(i),
                                    },
                                };
                                let cfg = ModelConfig {
                                    input,
                                    hidden: h,
                                    layers,
                                    activation: act,
                                    output: o,
                                    head,
                                    reduction,
                                    seq,
                                    init: Init::Default,
                                    bias: true,
                                    head_bias: true,
                                    bidirectional: false,
                                    dropout: Default::default(),
                                    loss: Default::default(),
                                };
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
        assert!((b.loss - a.loss * ratio).abs() < 1e-12 * a.loss.abs(), "O={o}: {} vs {}", b.loss, a.loss);
        let want = Want::default();
        let ga = backward(&mse, &layout, &p, &batch, &a, want);
        let gb = backward(&half, &layout, &p, &batch, &b, want);
        for (x, y) in ga.params.iter().zip(&gb.params) {
            assert!((y - x * ratio).abs() <= 1e-12 * (1.0 + x.abs()), "O={o}: grad {y} vs {x}·{ratio}");
        }
    }
}
