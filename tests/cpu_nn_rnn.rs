//! The nn.RNN options (#11) on the CPU engine: dropout is deterministic and keyed by the
//! update count (a resumed run draws the masks the uninterrupted one would), inference never
//! drops, a ragged batch's final state is each sequence's state at its own last step, and a
//! bidirectional model refuses to carry its state.

use wgrnn::checkpoint::Checkpoint;
use wgrnn::{
    random_batch, Batch, CpuEngine, Dropout, Engine, Inputs, ModelConfig, OptimConfig, OptimKind, ParamLayout, Targets,
    Want,
};

fn model() -> ModelConfig {
    let mut cfg = ModelConfig::char_lm(9, 12, 3);
    cfg.bidirectional = true;
    cfg.bias = false;
    cfg.dropout = Dropout { p: 0.3, seed: 5 };
    cfg
}

fn adam() -> OptimConfig {
    OptimConfig::new(
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        1e-2,
    )
}

/// A batch whose sequences have lengths 1..=T (cycling).
fn ragged(cfg: &ModelConfig, b: usize, t: usize, seed: u64) -> Batch<f32> {
    let mut batch = random_batch(cfg, b, t, false, seed);
    batch.lengths = Some((0..b).map(|i| (i % t + 1) as u32).collect());
    batch
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Losses of `steps` training steps from update `from` on, and the weights after them.
fn train(e: &mut CpuEngine, from: u64, steps: u64) -> (Vec<u32>, Vec<u32>) {
    let cfg = *e.config();
    let losses = (from..from + steps)
        .map(|k| e.train_step(&ragged(&cfg, 5, 7, k), true).unwrap().unwrap().to_bits())
        .collect();
    (losses, bits(&e.params().unwrap()))
}

#[test]
fn dropout_runs_are_bitwise_identical() {
    let cfg = model();
    let p = ParamLayout::new(&cfg).init(&cfg, 3);
    let a = train(&mut CpuEngine::new(cfg, adam(), p.clone()).unwrap(), 0, 6);
    let b = train(&mut CpuEngine::new(cfg, adam(), p).unwrap(), 0, 6);
    assert_eq!(a, b);
}

/// Checkpoint after k steps, load it into a fresh engine, continue: the same losses and
/// weights as the uninterrupted run, so the masks after the resume are the ones it drew.
#[test]
fn resumed_dropout_draws_the_uninterrupted_masks() {
    let cfg = model();
    let p = ParamLayout::new(&cfg).init(&cfg, 3);
    let (whole, w_whole) = train(&mut CpuEngine::new(cfg, adam(), p.clone()).unwrap(), 0, 8);

    let mut first = CpuEngine::new(cfg, adam(), p).unwrap();
    let (head, _) = train(&mut first, 0, 4);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cpu-nn-rnn");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k4.safetensors");
    Checkpoint {
        config: cfg,
        optim: adam(),
        params: first.params().unwrap(),
        optim_state: first.optim_state().unwrap(),
        vocab: None,
        step: 4,
        train: None,
        carried: None,
    }
    .save(&path)
    .unwrap();
    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.config, cfg, "the options survive the checkpoint");
    let mut resumed = CpuEngine::new(ck.config, ck.optim, ck.params).unwrap();
    resumed.set_optim_state(&ck.optim_state).unwrap();
    let (tail, w_resumed) = train(&mut resumed, 4, 4);

    assert_eq!([head, tail].concat(), whole, "losses");
    assert_eq!(w_resumed, w_whole, "weights");

    // the masks do depend on the update count: without the optimiser state (update 0
    // again) the same weights and batch give another loss
    let mut fresh = CpuEngine::new(cfg, adam(), first.params().unwrap()).unwrap();
    let batch = ragged(&cfg, 5, 7, 4);
    let (l0, _) = fresh.loss_and_grads(&batch, Want::default()).unwrap();
    let (l4, _) = first.loss_and_grads(&batch, Want::default()).unwrap();
    assert_ne!(l0, l4);
}

/// forward (evaluation, sampling) never drops; training steps do.
#[test]
fn inference_does_not_drop() {
    let cfg = model();
    let p = ParamLayout::new(&cfg).init(&cfg, 3);
    let plain = ModelConfig {
        dropout: Dropout::default(),
        ..cfg
    };
    let batch = ragged(&cfg, 4, 6, 1);
    let mut with = CpuEngine::new(cfg, adam(), p.clone()).unwrap();
    let mut without = CpuEngine::new(plain, adam(), p).unwrap();
    let (a, b) = (with.forward(&batch).unwrap(), without.forward(&batch).unwrap());
    assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    assert_eq!(bits(&a.final_state), bits(&b.final_state));
    let (dropped, _) = with.loss_and_grads(&batch, Want::default()).unwrap();
    let (kept, _) = without.loss_and_grads(&batch, Want::default()).unwrap();
    assert_ne!(dropped, kept);
}

/// A ragged batch's final state (forward and after a training step) is, per sequence, the
/// state of that sequence run alone for its own length: (L·dirs, B, H), PyTorch's h_n.
#[test]
fn final_state_is_each_sequence_at_its_own_length() {
    for bidirectional in [false, true] {
        let mut cfg = ModelConfig::char_lm(9, 6, 2);
        cfg.bidirectional = bidirectional;
        let p = ParamLayout::new(&cfg).init(&cfg, 8);
        let (b, t, hd) = (4, 6, cfg.hidden);
        let batch = ragged(&cfg, b, t, 2);
        let mut e = CpuEngine::new(cfg, adam(), p.clone()).unwrap();
        let whole = e.forward(&batch).unwrap().final_state;
        let Inputs::Tokens(tok) = &batch.inputs else {
            unreachable!()
        };
        for s in 0..b {
            let n = batch.len_of(s);
            let alone = Batch {
                batch: 1,
                steps: n,
                inputs: Inputs::Tokens((0..n).map(|k| tok[k * b + s]).collect()),
                targets: Targets::Classes(vec![0; n]),
                h0: None,
                lengths: None,
            };
            let own = e.forward(&alone).unwrap().final_state; // (L·dirs, 1, H)
            for row in 0..cfg.state_rows() {
                let got = &whole[(row * b + s) * hd..(row * b + s + 1) * hd];
                let want = &own[row * hd..(row + 1) * hd];
                let close = got.iter().zip(want).all(|(x, y)| (x - y).abs() <= 1e-6);
                assert!(
                    close,
                    "bidirectional={bidirectional} sequence {s} row {row}: {got:?} vs {want:?}"
                );
            }
        }
        if !bidirectional {
            // the state a stateful run carries into its next window
            let mut t = CpuEngine::new(cfg, adam(), p).unwrap();
            let out = t.forward(&batch).unwrap().final_state;
            t.train_step(&batch, false).unwrap();
            assert_eq!(bits(&t.last_state().unwrap()), bits(&out));
        }
    }
}

#[test]
fn bidirectional_models_refuse_to_carry_their_state() {
    let cfg = model();
    let mut e = CpuEngine::new(cfg, adam(), ParamLayout::new(&cfg).init(&cfg, 1)).unwrap();
    let batch = random_batch(&cfg, 2, 4, false, 1);
    e.train_step(&batch, false).unwrap();
    let err = e.train_step_carried(&batch, false).unwrap_err().to_string();
    assert!(err.contains("bidirectional") && !err.contains('\n'), "{err}");
}
