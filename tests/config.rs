//! Bad configurations and bad shapes return errors, never panic; every message names the
//! field, tensor or operation involved (asserted on substrings, so wording may evolve).
//!
//! Dimension letters: B batch, T steps, I input width, H hidden, O outputs, V vocabulary,
//! E embedding width, L layers.

use std::str::FromStr;

use wgrnn::{
    random_batch, Activation, Batch, Clip, CpuEngine, Engine, Error, Head, Init, Input, Inputs, ModelConfig,
    OptimConfig, OptimKind, OptimState, ParamLayout, Reduction, SeqShape, Targets, Want,
};

/// Dense I = 3 → H = 4, L = 1 → linear O = 2, many-to-many: a valid base to break one field of.
fn dense_cfg() -> ModelConfig {
    ModelConfig {
        input: Input::Dense { size: 3 },
        hidden: 4,
        layers: 1,
        activation: Activation::Tanh,
        output: 2,
        head: Head::Linear,
        reduction: Reduction::Mean,
        seq: SeqShape::ManyToMany,
        init: Init::Default,
        bias: true,
        head_bias: true,
        bidirectional: false,
        dropout: Default::default(),
        loss: Default::default(),
    }
}

/// The error's message, after checking it contains every `needles` substring.
fn expect_err<T: std::fmt::Debug>(what: &str, r: Result<T, Error>, needles: &[&str]) -> String {
    let msg = match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(msg.contains(n), "{what}: message {msg:?} does not mention {n:?}");
    }
    msg
}

#[test]
fn model_config_rejects_bad_fields() {
    let with = |f: &dyn Fn(&mut ModelConfig)| {
        let mut c = dense_cfg();
        f(&mut c);
        c
    };
    dense_cfg().validate().unwrap();
    ModelConfig::char_lm(65, 128, 2).validate().unwrap();

    let cases: Vec<(&str, ModelConfig, &[&str])> = vec![
        ("H = 0", with(&|c| c.hidden = 0), &["hidden", "= 0", "H"]),
        ("L = 0", with(&|c| c.layers = 0), &["layers", "= 0", "L"]),
        ("O = 0", with(&|c| c.output = 0), &["output", "= 0"]),
        (
            "softmax with O = 1",
            with(&|c| {
                c.head = Head::Softmax;
                c.output = 1
            }),
            &["output", "= 1", "softmax", "at least 2"],
        ),
        (
            "tokens with V = 0",
            with(&|c| c.input = Input::Tokens { vocab: 0, embed: None }),
            &["vocab", "= 0", "V"],
        ),
        (
            "embed Some(0)",
            with(&|c| {
                c.input = Input::Tokens {
                    vocab: 5,
                    embed: Some(0),
                }
            }),
            &["embed", "= 0", "E"],
        ),
        (
            "dense I = 0",
            with(&|c| c.input = Input::Dense { size: 0 }),
            &["input_size", "= 0", "I"],
        ),
        // Absurd sizes: typos that would only fail later in an allocation.
        (
            "H = usize::MAX",
            with(&|c| c.hidden = usize::MAX),
            &["hidden", "must be in 1..="],
        ),
        ("L = 1000", with(&|c| c.layers = 1000), &["layers", "1000"]),
        ("O = 2^40", with(&|c| c.output = 1 << 40), &["output"]),
        (
            "I = 2^40",
            with(&|c| c.input = Input::Dense { size: 1 << 40 }),
            &["input_size"],
        ),
        (
            "V = 2^40",
            with(&|c| {
                c.input = Input::Tokens {
                    vocab: 1 << 40,
                    embed: None,
                }
            }),
            &["vocab"],
        ),
        // Every width is allowed on its own, but H² · L floats would need ~2^53 bytes: the
        // parameter count itself is bounded, before anything tries to allocate it.
        (
            "H = 2^24, L = 8",
            with(&|c| {
                c.hidden = 1 << 24;
                c.layers = 8
            }),
            &["parameters", "hidden"],
        ),
        (
            "V·E = 2^46",
            with(&|c| {
                c.input = Input::Tokens {
                    vocab: 1 << 23,
                    embed: Some(1 << 23),
                }
            }),
            &["parameters"],
        ),
    ];
    for (what, cfg, needles) in cases {
        let msg = expect_err(what, cfg.validate(), needles);
        assert!(msg.starts_with("invalid config: "), "{what}: {msg}");
        // The engine refuses the same configuration (with any params vector) without panicking.
        expect_err(
            what,
            CpuEngine::new(cfg, OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1), vec![]).map(|_| ()),
            &["invalid config"],
        );
        println!("{what:22} -> {msg}");
    }
}

#[test]
fn names_parse_and_unknown_names_list_the_allowed_values() {
    // Round trip of every allowed name.
    for &s in Activation::ALL {
        assert_eq!(Activation::from_str(s).unwrap().as_str(), s);
    }
    for &s in Head::ALL {
        assert_eq!(Head::from_str(s).unwrap().as_str(), s);
    }
    for &s in Reduction::ALL {
        assert_eq!(Reduction::from_str(s).unwrap().as_str(), s);
    }
    for &s in SeqShape::ALL {
        assert_eq!(SeqShape::from_str(s).unwrap().as_str(), s);
    }
    for &s in Init::ALL {
        assert_eq!(Init::from_str(s).unwrap().as_str(), s);
    }
    for &s in OptimKind::NAMES {
        assert_eq!(OptimKind::parse(s, 0.0).unwrap().name(), s);
    }

    expect_err(
        "activation gelu",
        Activation::from_str("gelu"),
        &["gelu", "tanh | sigmoid | relu"],
    );
    // Names are exact: no case folding, no trimming.
    expect_err("activation Tanh", Activation::from_str("Tanh"), &["Tanh", "tanh"]);
    expect_err("activation empty", Activation::from_str(""), &["tanh | sigmoid | relu"]);
    expect_err(
        "head",
        Head::from_str("logsoftmax"),
        &["logsoftmax", "softmax | linear | sigmoid"],
    );
    expect_err("reduction", Reduction::from_str("avg"), &["avg", "mean | sum"]);
    expect_err(
        "seq",
        SeqShape::from_str("many_to_many"),
        &["many_to_many", "many-to-many | many-to-one | one-to-many"],
    );
    expect_err("init", Init::from_str("xavier"), &["xavier", "default | irnn"]);
    expect_err(
        "optimizer",
        OptimKind::parse("rmsprop", 0.0),
        &["optimizer", "rmsprop", "sgd | adam | adagrad"],
    );
}

#[test]
fn optim_config_rejects_bad_values() {
    let sgd = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1);
    sgd.validate().unwrap();
    let adam = OptimConfig::new(OptimKind::parse("adam", 0.0).unwrap(), 0.001);
    adam.validate().unwrap();
    let with = |base: OptimConfig, f: &dyn Fn(&mut OptimConfig)| {
        let mut o = base;
        f(&mut o);
        o
    };
    let cases: Vec<(&str, OptimConfig, &[&str])> = vec![
        ("lr = 0", with(sgd, &|o| o.lr = 0.0), &["lr", "> 0"]),
        ("lr < 0", with(sgd, &|o| o.lr = -0.1), &["lr", "-0.1"]),
        ("lr NaN", with(sgd, &|o| o.lr = f32::NAN), &["lr", "NaN"]),
        ("lr inf", with(sgd, &|o| o.lr = f32::INFINITY), &["lr", "finite"]),
        (
            "weight decay < 0",
            with(sgd, &|o| o.weight_decay = -0.01),
            &["weight_decay", ">= 0"],
        ),
        (
            "weight decay NaN",
            with(sgd, &|o| o.weight_decay = f32::NAN),
            &["weight_decay"],
        ),
        (
            "momentum = 1",
            with(sgd, &|o| o.kind = OptimKind::Sgd { momentum: 1.0 }),
            &["momentum", "[0, 1)"],
        ),
        (
            "momentum > 1",
            with(sgd, &|o| o.kind = OptimKind::Sgd { momentum: 1.5 }),
            &["momentum"],
        ),
        (
            "momentum < 0",
            with(sgd, &|o| o.kind = OptimKind::Sgd { momentum: -0.5 }),
            &["momentum"],
        ),
        (
            "momentum NaN",
            with(sgd, &|o| o.kind = OptimKind::Sgd { momentum: f32::NAN }),
            &["momentum"],
        ),
        (
            "beta1 = 1",
            with(adam, &|o| {
                o.kind = OptimKind::Adam {
                    beta1: 1.0,
                    beta2: 0.999,
                    eps: 1e-8,
                }
            }),
            &["betas", "[0, 1)"],
        ),
        (
            "beta2 < 0",
            with(adam, &|o| {
                o.kind = OptimKind::Adam {
                    beta1: 0.9,
                    beta2: -0.1,
                    eps: 1e-8,
                }
            }),
            &["betas"],
        ),
        (
            "beta2 NaN",
            with(adam, &|o| {
                o.kind = OptimKind::Adam {
                    beta1: 0.9,
                    beta2: f32::NAN,
                    eps: 1e-8,
                }
            }),
            &["betas"],
        ),
        (
            "adam eps = 0",
            with(adam, &|o| {
                o.kind = OptimKind::Adam {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 0.0,
                }
            }),
            &["eps"],
        ),
        (
            "adagrad eps < 0",
            with(sgd, &|o| o.kind = OptimKind::Adagrad { eps: -1e-8 }),
            &["eps"],
        ),
        (
            "clip norm = 0",
            with(sgd, &|o| {
                o.clip = Clip {
                    norm: Some(0.0),
                    value: None,
                }
            }),
            &["clip_norm"],
        ),
        (
            "clip value NaN",
            with(sgd, &|o| {
                o.clip = Clip {
                    norm: None,
                    value: Some(f32::NAN),
                }
            }),
            &["clip_value"],
        ),
    ];
    let cfg = dense_cfg();
    let p = ParamLayout::new(&cfg).init(&cfg, 1);
    for (what, o, needles) in cases {
        let msg = expect_err(what, o.validate(), needles);
        expect_err(what, CpuEngine::new(cfg, o, p.clone()).map(|_| ()), needles);
        println!("{what:18} -> {msg}");
    }
}

/// A valid batch for `cfg` (B = 2, T = 3), to break one part of.
fn good(cfg: &ModelConfig) -> Batch<f32> {
    let b = random_batch(cfg, 2, 3, true, 5);
    b.validate(cfg).unwrap();
    b
}

/// Checks the batch is rejected by `validate` and by every CpuEngine entry point.
fn reject(what: &str, cfg: &ModelConfig, batch: &Batch<f32>, needles: &[&str]) {
    let msg = expect_err(what, batch.validate(cfg), needles);
    let p = ParamLayout::new(cfg).init(cfg, 1);
    let mut eng = CpuEngine::new(*cfg, OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1), p.clone()).unwrap();
    expect_err(what, eng.train_step(batch, true), needles);
    expect_err(what, eng.forward(batch).map(|o| o.loss), needles);
    expect_err(
        what,
        eng.loss_and_grads(batch, Want { dx: true, dh0: true }).map(|r| r.0),
        needles,
    );
    // Nothing was updated by the failed calls.
    assert_eq!(eng.params().unwrap(), p, "{what}");
    assert_eq!(eng.optim_state().unwrap().step, 0, "{what}");
    println!("{what:34} -> {msg}");
}

#[test]
fn batch_shapes_and_values_are_checked() {
    let dense = dense_cfg();
    let tokens = ModelConfig::char_lm(5, 4, 2); // V = 5 in and out, H = 4, L = 2
    let m2o = ModelConfig {
        seq: SeqShape::ManyToOne,
        ..dense
    };
    let o2m = ModelConfig {
        seq: SeqShape::OneToMany,
        ..dense
    };
    let set_x = |b: &mut Batch<f32>, x: Inputs<f32>| b.inputs = x;

    // Wrong lengths. Dense (T, B, I) = (3, 2, 3): 18 inputs; targets (T, B, O) = 12.
    let mut b = good(&dense);
    set_x(&mut b, Inputs::Dense(vec![0.0; 17]));
    reject(
        "dense inputs too short",
        &dense,
        &b,
        &["batch", "inputs (T_in, B, I)", "17", "expected 18"],
    );
    let mut b = good(&dense);
    b.targets = Targets::Values(vec![0.5; 13]);
    reject(
        "targets too long",
        &dense,
        &b,
        &["batch", "targets (T_out, B, O)", "13", "expected 12"],
    );
    let mut b = good(&tokens);
    set_x(&mut b, Inputs::Tokens(vec![0; 5]));
    reject(
        "token inputs too short",
        &tokens,
        &b,
        &["inputs (T_in, B)", "expected 6"],
    );
    let mut b = good(&tokens);
    b.targets = Targets::Classes(vec![0; 7]);
    reject(
        "class targets too long",
        &tokens,
        &b,
        &["targets (T_out, B)", "expected 6"],
    );
    // h0 is (L, B, H) = (2, 2, 4) for the token model: 16.
    let mut b = good(&tokens);
    b.h0 = Some(vec![0.0; 8]);
    reject(
        "h0 of one layer for L = 2",
        &tokens,
        &b,
        &["h0 (L·dirs, B, H)", "8", "expected 16"],
    );
    // many-to-one takes one target row per sequence (T_out = 1), one-to-many one input row.
    let mut b = good(&m2o);
    b.targets = Targets::Values(vec![0.5; 3 * 2 * 2]);
    reject(
        "many-to-one with a target per step",
        &m2o,
        &b,
        &["targets (T_out, B, O)", "expected 4"],
    );
    let mut b = good(&o2m);
    set_x(&mut b, Inputs::Dense(vec![0.0; 3 * 2 * 3]));
    reject(
        "one-to-many with an input per step",
        &o2m,
        &b,
        &["inputs (T_in, B, I)", "expected 6"],
    );
    // B and T themselves.
    let mut b = good(&dense);
    b.batch = 0;
    reject("B = 0", &dense, &b, &["batch", "= 0", "B"]);
    let mut b = good(&dense);
    b.steps = 0;
    reject("T = 0", &dense, &b, &["seq_len", "= 0", "T"]);
    // B·T·I overflows usize: it must not wrap around to the length of the (empty) vectors.
    let huge = Batch::<f32> {
        batch: 1 << 32,
        steps: 1 << 32,
        inputs: Inputs::Dense(vec![]),
        targets: Targets::Values(vec![]),
        h0: None,
        lengths: None,
    };
    expect_err(
        "B·T overflowing usize",
        huge.validate(&dense),
        &["inputs (T_in, B, I)", "has 0 elements"],
    );
    let huge_tokens = Batch::<f32> {
        batch: 1 << 32,
        steps: 1 << 32,
        inputs: Inputs::Tokens(vec![]),
        targets: Targets::Classes(vec![]),
        h0: None,
        lengths: None,
    };
    expect_err(
        "B·T overflowing usize (tokens)",
        huge_tokens.validate(&tokens),
        &["inputs (T_in, B)"],
    );

    // Bad values.
    let mut b = good(&tokens);
    set_x(&mut b, Inputs::Tokens(vec![0, 1, 2, 5, 3, 4]));
    reject("token id = V", &tokens, &b, &["input token id 5", "position 3", "0..5"]);
    let mut b = good(&tokens);
    b.targets = Targets::Classes(vec![0, 1, 2, 3, 4, 99]);
    reject(
        "class id >= O",
        &tokens,
        &b,
        &["target class id 99", "position 5", "0..5"],
    );
    let mut b = good(&dense);
    if let Inputs::Dense(x) = &mut b.inputs {
        x[2] = f32::NAN;
    }
    reject("NaN input", &dense, &b, &["inputs value at position 2", "not finite"]);
    let mut b = good(&dense);
    if let Targets::Values(y) = &mut b.targets {
        y[0] = f32::INFINITY;
    }
    reject(
        "infinite target",
        &dense,
        &b,
        &["targets value at position 0", "not finite"],
    );
    let mut b = good(&dense);
    b.h0.as_mut().unwrap()[7] = f32::NAN;
    reject("NaN h0", &dense, &b, &["h0 value at position 7", "not finite"]);

    // Kinds that do not fit the model.
    let mut b = good(&tokens);
    set_x(&mut b, Inputs::Dense(vec![0.0; 6]));
    reject(
        "dense inputs to a token model",
        &tokens,
        &b,
        &["dense inputs given to a token model"],
    );
    let mut b = good(&dense);
    set_x(&mut b, Inputs::Tokens(vec![0; 6]));
    reject(
        "token inputs to a dense model",
        &dense,
        &b,
        &["token inputs given to a dense model"],
    );
    let mut b = good(&dense);
    b.targets = Targets::Classes(vec![0; 6]);
    reject(
        "class targets to an MSE head",
        &dense,
        &b,
        &["class targets given to an MSE head"],
    );
    let sigmoid_head = ModelConfig {
        head: Head::Sigmoid,
        ..dense
    };
    reject(
        "class targets to a sigmoid head",
        &sigmoid_head,
        &b,
        &["class targets given to an MSE head"],
    );
    let mut b = good(&tokens);
    b.targets = Targets::Values(vec![0.5; 6 * 5]);
    reject(
        "value targets to a softmax head",
        &tokens,
        &b,
        &["value targets given to a softmax head"],
    );
}

#[test]
fn engine_buffers_of_the_wrong_length_are_refused() {
    let cfg = ModelConfig::char_lm(5, 4, 2);
    let layout = ParamLayout::new(&cfg);
    let p = layout.init(&cfg, 3);
    let sgd = OptimConfig::new(OptimKind::Sgd { momentum: 0.9 }, 0.1);

    // Only the unpadded count, or one too many.
    for len in [layout.count(), layout.total + 1, 0] {
        expect_err(
            "CpuEngine::new",
            CpuEngine::new(cfg, sgd, vec![0.0; len]).map(|_| ()),
            &[
                "CpuEngine::new",
                "params",
                &format!("has {len} elements"),
                &format!("expected {}", layout.total),
            ],
        );
    }
    // Parameters of another model. The check is on the length only: V = 6 instead of 5 would
    // pass, since every tensor is padded to 64 floats; H = 40 changes the padded total.
    let other = ModelConfig::char_lm(5, 40, 2);
    expect_err(
        "CpuEngine::new with another model's params",
        CpuEngine::new(cfg, sgd, ParamLayout::new(&other).init(&other, 3)).map(|_| ()),
        &["CpuEngine::new", "params"],
    );

    let mut eng = CpuEngine::new(cfg, sgd, p.clone()).unwrap();
    expect_err(
        "set_params",
        eng.set_params(&p[1..]),
        &["set_params", "params", "expected"],
    );
    expect_err("set_params empty", eng.set_params(&[]), &["set_params"]);
    assert_eq!(eng.params().unwrap(), p, "a refused set_params changes nothing");

    // SGD with momentum has one state buffer of the layout's size.
    let n = layout.total;
    let bad_states = [
        ("no buffers", OptimState::<f32> { step: 0, slots: vec![] }),
        (
            "Adam's two buffers",
            OptimState {
                step: 0,
                slots: vec![vec![0.0; n]; 2],
            },
        ),
        (
            "a short buffer",
            OptimState {
                step: 0,
                slots: vec![vec![0.0; n - 1]],
            },
        ),
    ];
    for (what, s) in &bad_states {
        expect_err(what, eng.set_optim_state(s), &["set_optim_state", "optimiser state"]);
    }
    let good_state = OptimState {
        step: 4,
        slots: vec![vec![0.0; n]],
    };
    eng.set_optim_state(&good_state).unwrap();
    assert_eq!(eng.optim_state().unwrap(), good_state);
}

#[test]
fn non_finite_weights_give_an_error_not_a_panic() {
    let cfg = ModelConfig::char_lm(5, 4, 1);
    let layout = ParamLayout::new(&cfg);
    let mut p = layout.init(&cfg, 3);
    let batch = random_batch(&cfg, 2, 3, false, 4);
    let mut eng = CpuEngine::new(cfg, OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1), p.clone()).unwrap();
    p[layout.range(layout.head_w).start] = f32::NAN;
    eng.set_params(&p).unwrap();
    expect_err(
        "NaN weight",
        eng.train_step(&batch, true),
        &["non-finite", "loss", "step 1"],
    );
    expect_err(
        "NaN weight",
        eng.loss_and_grads(&batch, Want::default()).map(|r| r.0),
        &["non-finite"],
    );
}
