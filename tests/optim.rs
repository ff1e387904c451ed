//! Optimisers and clipping (SPEC §4) against values worked out by hand: two steps each on a
//! vector of 2–3 weights, with the gradients given (not computed), so every expected number
//! below follows from the formulas in the comments alone. The hyper-parameters are dyadic
//! (0.5, 0.25, ...), exact in f32 (OptimConfig's type) and in binary, so most expected values
//! are exact; the few that are not (square roots, 1/3, eps) are written as the arithmetic.
//!
//! Each case runs in f64 through `wgrnn::cpu::optim::{clip, update}` and again in f32, and
//! one `CpuEngine` run checks that training a tiny model changes the weights and lowers the
//! loss.

use wgrnn::cpu::optim::{clip, update};
use wgrnn::cpu::Real;
use wgrnn::{random_batch, Clip, CpuEngine, Engine, ModelConfig, OptimConfig, OptimKind, OptimState, ParamLayout};

/// f64: the updates are a handful of operations on exact dyadic values; what is not exact
/// (sqrt, division by 3, eps) is computed here in the same f64 operations, so the two sides
/// agree to an ulp or two.
const F64_TOL: f64 = 1e-15;
/// f32: the same handful of operations, each rounding to ~6e-8 relative.
const F32_RTOL: f64 = 1e-6;
/// Adam's and Adagrad's eps as wgrnn uses them (OptimKind::parse): 1e-8, stored in f32.
const EPS: f64 = 1e-8f32 as f64;

const W0: [f64; 3] = [1.0, -2.0, 0.5];
const G1: [f64; 3] = [0.5, 1.0, -2.0];
const G2: [f64; 3] = [1.0, -1.0, 0.25];

fn opt(kind: OptimKind, lr: f32, weight_decay: f32) -> OptimConfig {
    let o = OptimConfig {
        kind,
        lr,
        weight_decay,
        clip: Clip::default(),
    };
    o.validate().unwrap();
    o
}

/// Two steps (clip, then update) in float type F; returns the weights after each step and the
/// final state, in f64.
fn two_steps<F: Real>(cfg: &OptimConfig, w0: &[f64], grads: [&[f64]; 2]) -> ([Vec<f64>; 2], OptimState<f64>) {
    let mut w: Vec<F> = w0.iter().map(|&v| F::from_f64(v)).collect();
    let mut state = OptimState::<F>::new(&cfg.kind, w.len());
    let mut after = [Vec::new(), Vec::new()];
    for (k, g) in grads.iter().enumerate() {
        let mut g: Vec<F> = g.iter().map(|&v| F::from_f64(v)).collect();
        clip(&cfg.clip, &mut g);
        update(cfg, &mut state, &mut w, &g);
        after[k] = w.iter().map(|v| v.to_f64()).collect();
    }
    let state = OptimState {
        step: state.step,
        slots: state
            .slots
            .iter()
            .map(|s| s.iter().map(|v| v.to_f64()).collect())
            .collect(),
    };
    (after, state)
}

fn assert_close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g:.17e}, expected {w:.17e}"
        );
    }
}

/// Runs the case in f64 and f32 and compares the weights after both steps and the state
/// buffers with the hand-worked values.
fn check(name: &str, cfg: &OptimConfig, w0: &[f64], grads: [&[f64]; 2], want: [&[f64]; 2], slots: &[&[f64]]) {
    let (w, state) = two_steps::<f64>(cfg, w0, grads);
    assert_close(&format!("{name} f64 step 1"), &w[0], want[0], F64_TOL, F64_TOL);
    assert_close(&format!("{name} f64 step 2"), &w[1], want[1], F64_TOL, F64_TOL);
    assert_eq!(state.step, 2, "{name}: step count");
    assert_eq!(state.slots.len(), slots.len(), "{name}: state buffers");
    for (k, (got, want)) in state.slots.iter().zip(slots).enumerate() {
        assert_close(&format!("{name} f64 slot {k}"), got, want, F64_TOL, F64_TOL);
    }

    let (w, _) = two_steps::<f32>(cfg, w0, grads);
    assert_close(&format!("{name} f32 step 1"), &w[0], want[0], 0.0, F32_RTOL);
    assert_close(&format!("{name} f32 step 2"), &w[1], want[1], 0.0, F32_RTOL);
}

#[test]
fn sgd_plain() {
    // w -= lr·g, lr = 0.5
    // step 1: w = [1, -2, 0.5] - 0.5·[0.5, 1, -2]   = [0.75, -2.5, 1.5]
    // step 2: w = [0.75, -2.5, 1.5] - 0.5·[1, -1, 0.25] = [0.25, -2.0, 1.375]
    let cfg = opt(OptimKind::Sgd { momentum: 0.0 }, 0.5, 0.0);
    check(
        "sgd",
        &cfg,
        &W0,
        [&G1, &G2],
        [&[0.75, -2.5, 1.5], &[0.25, -2.0, 1.375]],
        &[],
    );
}

#[test]
fn sgd_momentum() {
    // v = μ v + g (v starts at 0, so v1 = g1, PyTorch's first step); w -= lr·v; μ = 0.5, lr = 0.5
    // step 1: v = [0.5, 1, -2];                        w = [1, -2, 0.5] - [0.25, 0.5, -1] = [0.75, -2.5, 1.5]
    // step 2: v = 0.5·[0.5, 1, -2] + [1, -1, 0.25] = [1.25, -0.5, -0.75]
    //         w = [0.75, -2.5, 1.5] - 0.5·v = [0.75 - 0.625, -2.5 + 0.25, 1.5 + 0.375] = [0.125, -2.25, 1.875]
    let cfg = opt(OptimKind::Sgd { momentum: 0.5 }, 0.5, 0.0);
    check(
        "sgd momentum",
        &cfg,
        &W0,
        [&G1, &G2],
        [&[0.75, -2.5, 1.5], &[0.125, -2.25, 1.875]],
        &[&[1.25, -0.5, -0.75]],
    );
}

#[test]
fn sgd_weight_decay() {
    // g' = g + wd·w; w -= lr·g'; wd = 0.25, lr = 0.5
    // step 1: g' = [0.5 + 0.25, 1 - 0.5, -2 + 0.125] = [0.75, 0.5, -1.875]
    //         w  = [1 - 0.375, -2 - 0.25, 0.5 + 0.9375] = [0.625, -2.25, 1.4375]
    // step 2: g' = [1 + 0.15625, -1 - 0.5625, 0.25 + 0.359375] = [1.15625, -1.5625, 0.609375]
    //         w  = [0.625 - 0.578125, -2.25 + 0.78125, 1.4375 - 0.3046875] = [0.046875, -1.46875, 1.1328125]
    let cfg = opt(OptimKind::Sgd { momentum: 0.0 }, 0.5, 0.25);
    check(
        "sgd weight decay",
        &cfg,
        &W0,
        [&G1, &G2],
        [&[0.625, -2.25, 1.4375], &[0.046875, -1.46875, 1.1328125]],
        &[],
    );
}

#[test]
fn sgd_momentum_and_weight_decay() {
    // PyTorch order: g' = g + wd·w, then v = μ v + g', w -= lr·v; μ = 0.5, wd = 0.25, lr = 0.5
    // step 1: g' = [0.75, 0.5, -1.875] (as above) = v;   w = [0.625, -2.25, 1.4375]
    // step 2: g' = [1.15625, -1.5625, 0.609375] (as above)
    //         v  = 0.5·[0.75, 0.5, -1.875] + g' = [0.375 + 1.15625, 0.25 - 1.5625, -0.9375 + 0.609375]
    //            = [1.53125, -1.3125, -0.328125]
    //         w  = [0.625 - 0.765625, -2.25 + 0.65625, 1.4375 + 0.1640625] = [-0.140625, -1.59375, 1.6015625]
    let cfg = opt(OptimKind::Sgd { momentum: 0.5 }, 0.5, 0.25);
    check(
        "sgd momentum + weight decay",
        &cfg,
        &W0,
        [&G1, &G2],
        [&[0.625, -2.25, 1.4375], &[-0.140625, -1.59375, 1.6015625]],
        &[&[1.53125, -1.3125, -0.328125]],
    );
}

#[test]
fn adam() {
    // β1 = 0.5, β2 = 0.75 (so the bias corrections matter and stay exact), lr = 0.125
    // m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²;  m̂ = m / (1-β1^k);  v̂ = v / (1-β2^k)
    // w -= lr·m̂ / (sqrt(v̂) + ε)
    // w0 = [1, -1], g1 = [2, -0.5], g2 = [-0.5, 0.5]
    // step 1: m = 0.5·[2, -0.5] = [1, -0.25];       v = 0.25·[4, 0.25] = [1, 0.0625]
    //         1-β1 = 0.5, 1-β2 = 0.25:  m̂ = [2, -0.5], v̂ = [4, 0.25], sqrt(v̂) = [2, 0.5]
    //         w = [1 - 0.125·2/(2+ε), -1 + 0.125·0.5/(0.5+ε)]  (≈ [0.875, -0.875]: lr·sign(g))
    // step 2: m = 0.5·[1, -0.25] + 0.5·[-0.5, 0.5] = [0.25, 0.125]
    //         v = 0.75·[1, 0.0625] + 0.25·[0.25, 0.25] = [0.8125, 0.109375]
    //         1-β1² = 0.75, 1-β2² = 0.4375:  m̂ = [1/3, 1/6], v̂ = [0.8125/0.4375, 0.25] = [13/7, 0.25]
    //         w = w1 - 0.125·[(1/3)/(sqrt(13/7)+ε), (1/6)/(0.5+ε)]
    let cfg = opt(
        OptimKind::Adam {
            beta1: 0.5,
            beta2: 0.75,
            eps: EPS as f32,
        },
        0.125,
        0.0,
    );
    let w1 = [1.0 - 0.125 * 2.0 / (2.0 + EPS), -1.0 + 0.125 * 0.5 / (0.5 + EPS)];
    let w2 = [
        w1[0] - 0.125 * (1.0 / 3.0) / ((13.0f64 / 7.0).sqrt() + EPS),
        w1[1] - 0.125 * (1.0 / 6.0) / (0.5 + EPS),
    ];
    check(
        "adam",
        &cfg,
        &[1.0, -1.0],
        [&[2.0, -0.5], &[-0.5, 0.5]],
        [&w1, &w2],
        &[&[0.25, 0.125], &[0.8125, 0.109375]],
    );
}

#[test]
fn adam_with_weight_decay() {
    // Adam's weight decay is PyTorch's L2 form (g' = g + wd·w before the moments), not AdamW.
    // β1 = 0.5, β2 = 0.75, lr = 0.125, wd = 0.5; w0 = [2], g1 = [1], g2 = [-3]
    // step 1: g' = 1 + 0.5·2 = 2;  m = 1, v = 0.25·4 = 1;  m̂ = 2, v̂ = 4
    //         w = 2 - 0.125·2/(2+ε)                                          (≈ 1.875)
    // step 2: g' = -3 + 0.5·w1 (≈ -2.0625);  m = 0.5·1 + 0.5·g';  v = 0.75·1 + 0.25·g'²
    //         m̂ = m/0.75, v̂ = v/0.4375;  w = w1 - 0.125·m̂/(sqrt(v̂)+ε)
    let cfg = opt(
        OptimKind::Adam {
            beta1: 0.5,
            beta2: 0.75,
            eps: EPS as f32,
        },
        0.125,
        0.5,
    );
    let w1 = 2.0 - 0.125 * 2.0 / (2.0 + EPS);
    let g = -3.0 + 0.5 * w1;
    let (m, v) = (0.5 * 1.0 + 0.5 * g, 0.75 * 1.0 + 0.25 * g * g);
    let w2 = w1 - 0.125 * (m / 0.75) / ((v / 0.4375).sqrt() + EPS);
    check(
        "adam weight decay",
        &cfg,
        &[2.0],
        [&[1.0], &[-3.0]],
        [&[w1], &[w2]],
        &[&[m], &[v]],
    );
}

#[test]
fn adagrad() {
    // s += g²;  w -= lr·g / (sqrt(s) + ε);  lr = 0.5
    // w0 = [1, -1], g1 = [3, -4], g2 = [4, 3]
    // step 1: s = [9, 16], sqrt = [3, 4]:  w = [1 - 0.5·3/(3+ε), -1 + 0.5·4/(4+ε)]    (≈ [0.5, -0.5])
    // step 2: s = [25, 25], sqrt = [5, 5]: w = w1 - 0.5·[4/(5+ε), 3/(5+ε)]              (≈ [0.1, -0.8])
    let cfg = opt(OptimKind::Adagrad { eps: EPS as f32 }, 0.5, 0.0);
    let w1 = [1.0 - 0.5 * 3.0 / (3.0 + EPS), -1.0 + 0.5 * 4.0 / (4.0 + EPS)];
    let w2 = [w1[0] - 0.5 * 4.0 / (5.0 + EPS), w1[1] - 0.5 * 3.0 / (5.0 + EPS)];
    check(
        "adagrad",
        &cfg,
        &[1.0, -1.0],
        [&[3.0, -4.0], &[4.0, 3.0]],
        [&w1, &w2],
        &[&[25.0, 25.0]],
    );
}

#[test]
fn clip_by_value() {
    // Clip by value 0.5 before plain SGD with lr = 1 (so w moves by exactly the clipped g).
    // step 1: g = [2, -0.25, -3] → [0.5, -0.25, -0.5];  w = [1, -2, 0.5] - g = [0.5, -1.75, 1.0]
    // step 2: g = [0.5, 0.75, -0.5] → [0.5, 0.5, -0.5] (±0.5 itself is kept)
    //         w = [0.5 - 0.5, -1.75 - 0.5, 1.0 + 0.5] = [0.0, -2.25, 1.5]
    let mut cfg = opt(OptimKind::Sgd { momentum: 0.0 }, 1.0, 0.0);
    cfg.clip.value = Some(0.5);
    cfg.validate().unwrap();
    check(
        "clip value",
        &cfg,
        &W0,
        [&[2.0, -0.25, -3.0], &[0.5, 0.75, -0.5]],
        [&[0.5, -1.75, 1.0], &[0.0, -2.25, 1.5]],
        &[],
    );
    // clip returns the norm after value clipping: sqrt(0.25 + 0.0625 + 0.25) = sqrt(0.5625) = 0.75
    let mut g = vec![2.0f64, -0.25, -3.0];
    let norm = clip(&cfg.clip, &mut g);
    assert_eq!(norm, 0.75);
    assert_eq!(g, [0.5, -0.25, -0.5]);
}

#[test]
fn clip_by_global_norm() {
    // clip_grad_norm_(max 1): g *= 1 / (‖g‖ + 1e-6) when that factor is below 1; SGD lr = 1.
    // step 1: g = [3, 4], ‖g‖ = 5 → g = [3, 4] / (5 + 1e-6) (≈ [0.6, 0.8])
    //         w = [1, -2] - g                                              (≈ [0.4, -2.8])
    // step 2: g = [0.3, 0.4], ‖g‖ = 0.5: factor 1/(0.5 + 1e-6) > 1, g is unchanged
    //         w = w1 - [0.3, 0.4]                                          (≈ [0.1, -3.2])
    let mut cfg = opt(OptimKind::Sgd { momentum: 0.0 }, 1.0, 0.0);
    cfg.clip.norm = Some(1.0);
    cfg.validate().unwrap();
    let w1 = [1.0 - 3.0 / (5.0 + 1e-6), -2.0 - 4.0 / (5.0 + 1e-6)];
    let w2 = [w1[0] - 0.3, w1[1] - 0.4];
    check(
        "clip norm",
        &cfg,
        &[1.0, -2.0],
        [&[3.0, 4.0], &[0.3, 0.4]],
        [&w1, &w2],
        &[],
    );

    // The returned value is the norm before clipping.
    let mut g = vec![3.0f64, 4.0];
    assert_eq!(clip(&cfg.clip, &mut g), 5.0);
    assert_eq!(g, [3.0 / (5.0 + 1e-6), 4.0 / (5.0 + 1e-6)]);
}

#[test]
fn clip_value_then_norm() {
    // Both: value first, then global norm (SPEC §4, wgrnn's order).
    // g = [3, -4, 0.5] → by value 1: [1, -1, 0.5], norm sqrt(1 + 1 + 0.25) = 1.5
    // → by norm 1: [1, -1, 0.5] / (1.5 + 1e-6)
    let c = Clip {
        norm: Some(1.0),
        value: Some(1.0),
    };
    let mut g = vec![3.0f64, -4.0, 0.5];
    assert_eq!(clip(&c, &mut g), 1.5);
    let f = 1.0 / (1.5 + 1e-6);
    assert_close("value then norm", &g, &[1.0 * f, -f, 0.5 * f], F64_TOL, F64_TOL);
    // No clipping configured: g untouched, the norm still returned (sqrt(9 + 16) = 5).
    let mut g = vec![3.0f64, -4.0];
    assert_eq!(clip(&Clip::default(), &mut g), 5.0);
    assert_eq!(g, [3.0, -4.0]);
}

/// One CpuEngine sanity check in f32: training a tiny char model on one fixed batch changes
/// the weights, lowers the loss, and keeps the padding at zero.
#[test]
fn cpu_engine_train_step_lowers_the_loss() {
    // V = 4, H = 8, L = 1; B = 3, T = 5
    let cfg = ModelConfig::char_lm(4, 8, 1);
    let layout = ParamLayout::new(&cfg);
    let p0 = layout.init(&cfg, 7);
    let batch = random_batch(&cfg, 3, 5, false, 8);
    for kind in [
        OptimKind::Sgd { momentum: 0.9 },
        OptimKind::parse("adam", 0.0).unwrap(),
        OptimKind::parse("adagrad", 0.0).unwrap(),
    ] {
        let lr = if matches!(kind, OptimKind::Adam { .. }) {
            0.02
        } else {
            0.1
        };
        let mut eng = CpuEngine::new(cfg, OptimConfig::new(kind, lr), p0.clone()).unwrap();
        let first = eng.train_step(&batch, true).unwrap().unwrap();
        let p1 = eng.params().unwrap();
        assert_ne!(p1, p0, "{}: the weights did not move", kind.name());
        let mut last = first;
        for _ in 0..49 {
            last = eng.train_step(&batch, true).unwrap().unwrap();
        }
        // 50 steps on one batch: the model memorises it. Uniform guessing is ln 4 ≈ 1.39.
        assert!(
            last < 0.5 * first,
            "{}: loss {first} -> {last} did not halve",
            kind.name()
        );
        assert_eq!(eng.optim_state().unwrap().step, 50);
        assert_eq!(eng.last_state().unwrap().len(), 3 * 8, "(L, B, H)");
        let p = eng.params().unwrap();
        assert!(p.iter().all(|v| v.is_finite()));
        // Padding between tensors stays exactly zero under every optimiser.
        let mut real = vec![false; layout.total];
        for spec in &layout.tensors {
            real[spec.range()].iter_mut().for_each(|r| *r = true);
        }
        assert!(p.iter().zip(&real).all(|(v, r)| *r || *v == 0.0));
        println!("{:8} loss {first:.4} -> {last:.4} in 50 steps", kind.name());
    }
}
