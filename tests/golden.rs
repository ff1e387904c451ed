//! The CPU reference against PyTorch autograd (an independent implementation of SPEC §1–§4).
//!
//! tests/golden/make_golden.py builds the same models from nn.Embedding + nn.RNN + nn.Linear
//! (a hand-written loop for the sigmoid cell, which nn.RNN lacks; pack_padded_sequence for
//! ragged batches; bias-free and bidirectional modules), in float64, and stores the
//! weights under the SPEC §3 names, the batch (batch-first, as PyTorch takes it), the loss,
//! every gradient (and dx, dh0), and the weights after two steps of torch.optim's SGD, Adam
//! and Adagrad with clipping. CI does not need torch: it only reads those files.
//!
//! Dimension letters: B batch, T steps, I input width, H hidden, O outputs, V vocabulary,
//! E embedding width, L layers.

use std::collections::HashSet;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use wgrnn::batch::to_time_major;
use wgrnn::cpu::optim::{clip, update};
use wgrnn::cpu::{backward, forward};
use wgrnn::{
    Batch, CpuEngine, Engine, Input, Inputs, ModelConfig, OptimConfig, OptimKind, OptimState, ParamLayout, SeqShape,
    Targets, Want,
};

/// f64 against f64: the two sides differ only in summation order (a few dozen terms per sum
/// here), i.e. by a few ulps ~ 1e-16 relative. 1e-12 keeps a wide margin for that and still
/// catches any real mistake (a wrong term moves results by ≥ 1e-4 at these sizes).
const F64_ATOL: f64 = 1e-12;
const F64_RTOL: f64 = 1e-10;
/// Two optimiser steps amplify those ulps a little (Adam divides by sqrt(v̂), ~|g|), so
/// the weights after the steps get a slightly wider bound.
const OPT_ATOL: f64 = 1e-11;
const OPT_RTOL: f64 = 1e-9;
/// The f32 CPU engine on the same (f32-representable) weights and batch: f32 rounding
/// (~6e-8 per operation, a few dozen operations deep) against the f64 truth. Same form as
/// SPEC §5's GPU-vs-CPU bounds, tightened tenfold since this is one f32 path, not two.
const F32_LOSS_REL: f64 = 1e-6;
const F32_GRAD_REL: f64 = 1e-5;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn manifest() -> Value {
    let path = golden_dir().join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn read_bytes(file: &str) -> Vec<u8> {
    let path = golden_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A float64 tensor and its shape.
fn f64s(st: &SafeTensors, name: &str) -> (Vec<f64>, Vec<usize>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("tensor {name}: {e}"));
    assert_eq!(t.dtype(), Dtype::F64, "{name}");
    let v = t
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (v, t.shape().to_vec())
}

/// An int64 tensor of class ids.
fn ids(st: &SafeTensors, name: &str) -> (Vec<u32>, Vec<usize>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("tensor {name}: {e}"));
    assert_eq!(t.dtype(), Dtype::I64, "{name}");
    let v = t
        .data()
        .chunks_exact(8)
        .map(|c| u32::try_from(i64::from_le_bytes(c.try_into().unwrap())).unwrap())
        .collect();
    (v, t.shape().to_vec())
}

/// Largest |got - want|, after asserting every element is within atol + rtol·|want|.
fn check(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut max_diff = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        assert!(
            d <= atol + rtol * w.abs(),
            "{what}[{i}]: wgrnn {g:e} vs torch {w:e}, diff {d:e} > {atol:e} + {rtol:e}·|ref|"
        );
        max_diff = max_diff.max(d);
    }
    max_diff
}

/// ‖got - want‖ / ‖want‖
fn rel_norm(got: &[f64], want: &[f64]) -> f64 {
    let d: f64 = got.iter().zip(want).map(|(g, w)| (g - w) * (g - w)).sum::<f64>().sqrt();
    let n: f64 = want.iter().map(|w| w * w).sum::<f64>().sqrt();
    d / n.max(f64::MIN_POSITIVE)
}

/// One model case: the wgrnn config, the flat f64 weights, the time-major batch.
struct Case {
    name: String,
    cfg: ModelConfig,
    layout: ParamLayout,
    params: Vec<f64>,
    batch: Batch<f64>,
    loss: f64,
    file: Vec<u8>,
}

impl Case {
    fn load(entry: &Value) -> Case {
        let name = entry["name"].as_str().unwrap().to_string();
        let cfg: ModelConfig = serde_json::from_value(entry["config"].clone()).unwrap();
        cfg.validate().unwrap();
        let (b, t) = (
            entry["batch"].as_u64().unwrap() as usize,
            entry["steps"].as_u64().unwrap() as usize,
        );
        let file = read_bytes(entry["file"].as_str().unwrap());
        let st = SafeTensors::deserialize(&file).unwrap();

        let layout = ParamLayout::new(&cfg);
        let params = flat_params(&st, &layout, "");
        // The file holds exactly the layout's tensors: no PyTorch parameter is left out.
        let file_params: HashSet<&str> = st
            .names()
            .into_iter()
            .filter(|n| !n.starts_with("batch.") && !n.starts_with("grad."))
            .collect();
        let layout_names: HashSet<&str> = layout.tensors.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(file_params, layout_names, "{name}: parameter names");

        // PyTorch's batch-first (B, T, W) → wgrnn's time-major (T, B, W).
        let (t_in, t_out) = (cfg.input_steps(t), cfg.target_steps(t));
        let inputs = match cfg.input {
            Input::Dense { size } => {
                let (x, shape) = f64s(&st, "batch.inputs");
                assert_eq!(shape, [b, t_in, size], "{name}: inputs");
                Inputs::Dense(to_time_major(&x, b, t_in, size))
            }
            Input::Tokens { .. } => {
                let (x, shape) = ids(&st, "batch.inputs");
                assert_eq!(shape, [b, t_in], "{name}: inputs");
                Inputs::Tokens(to_time_major(&x, b, t_in, 1))
            }
        };
        let targets = if cfg.head == wgrnn::Head::Softmax {
            let (y, shape) = ids(&st, "batch.targets");
            assert_eq!(shape, [b, t_out], "{name}: targets");
            Targets::Classes(to_time_major(&y, b, t_out, 1))
        } else {
            let (y, shape) = f64s(&st, "batch.targets");
            assert_eq!(shape, [b, t_out, cfg.output], "{name}: targets");
            Targets::Values(to_time_major(&y, b, t_out, cfg.output))
        };
        let h0 = entry["h0"].as_bool().unwrap().then(|| {
            let (h0, shape) = f64s(&st, "batch.h0");
            assert_eq!(shape, [cfg.state_rows(), b, cfg.hidden], "{name}: h0");
            h0 // (L·dirs, B, H) in both
        });
        let lengths = st.names().contains(&"batch.lengths").then(|| {
            let (lens, shape) = ids(&st, "batch.lengths");
            assert_eq!(shape, [b], "{name}: lengths");
            lens
        });
        let batch = Batch {
            batch: b,
            steps: t,
            inputs,
            targets,
            h0,
            lengths,
        };
        batch.validate(&cfg).unwrap();
        let loss = entry["loss"].as_f64().unwrap();
        drop(st);
        Case {
            name,
            cfg,
            layout,
            params,
            batch,
            loss,
            file,
        }
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.file).unwrap()
    }
}

/// The flat parameter buffer from tensors named `<prefix><SPEC §3 name>`; padding stays 0.
fn flat_params(st: &SafeTensors, layout: &ParamLayout, prefix: &str) -> Vec<f64> {
    let mut p = vec![0.0f64; layout.total];
    for spec in &layout.tensors {
        let (v, shape) = f64s(st, &format!("{prefix}{}", spec.name));
        assert_eq!(shape, spec.shape, "{prefix}{}", spec.name);
        p[spec.range()].copy_from_slice(&v);
    }
    p
}

fn cases() -> Vec<Case> {
    manifest()["cases"].as_array().unwrap().iter().map(Case::load).collect()
}

#[test]
fn golden_loss_and_gradients_match_pytorch_f64() {
    let (mut worst_loss, mut worst_grad) = (0.0f64, 0.0f64);
    let all = cases();
    assert!(all.len() >= 4);
    for c in &all {
        let want = Want {
            dx: true,
            dh0: c.batch.h0.is_some(),
        };
        let act = forward(&c.cfg, &c.layout, &c.params, &c.batch);
        let g = backward(&c.cfg, &c.layout, &c.params, &c.batch, &act, want);
        let dl = check(&format!("{}: loss", c.name), &[act.loss], &[c.loss], F64_ATOL, F64_RTOL);
        worst_loss = worst_loss.max(dl);

        let st = c.tensors();
        let mut case_max = 0.0f64;
        for spec in &c.layout.tensors {
            let (want, _) = f64s(&st, &format!("grad.{}", spec.name));
            let what = format!("{}: d{}", c.name, spec.name);
            case_max = case_max.max(check(&what, &g.params[spec.range()], &want, F64_ATOL, F64_RTOL));
        }
        // Padding between tensors gets no gradient.
        let real: usize = c.layout.tensors.iter().map(|s| s.len()).sum();
        let nonzero = g.params.iter().filter(|v| **v != 0.0).count();
        assert!(nonzero <= real, "{}: gradient in the padding", c.name);

        // dx: PyTorch (B, T_in, in_0) → time-major.
        let (t_in, inw) = (c.cfg.input_steps(c.batch.steps), c.cfg.in_width(0));
        let (dx, shape) = f64s(&st, "grad.dx");
        assert_eq!(shape, [c.batch.batch, t_in, inw], "{}: dx", c.name);
        let dx = to_time_major(&dx, c.batch.batch, t_in, inw);
        case_max = case_max.max(check(
            &format!("{}: dx", c.name),
            g.dx.as_ref().unwrap(),
            &dx,
            F64_ATOL,
            F64_RTOL,
        ));
        if want.dh0 {
            let (dh0, _) = f64s(&st, "grad.dh0");
            case_max = case_max.max(check(
                &format!("{}: dh0", c.name),
                g.dh0.as_ref().unwrap(),
                &dh0,
                F64_ATOL,
                F64_RTOL,
            ));
        }
        println!(
            "{:32} {}  loss {:.9} |Δloss| {dl:.1e}  max |Δgrad| {case_max:.1e}",
            c.name, c.cfg, act.loss
        );
        worst_grad = worst_grad.max(case_max);
    }
    println!(
        "golden vs torch (f64): {} cases, max |Δloss| {worst_loss:.2e}, max |Δgrad| {worst_grad:.2e}",
        all.len()
    );
}

/// The f32 engine (what the GPU is checked against) on the same cases.
#[test]
fn golden_cpu_engine_f32_matches_pytorch() {
    let mut worst = (0.0f64, 0.0f64);
    for c in &cases() {
        let p32: Vec<f32> = c.params.iter().map(|&v| v as f32).collect();
        // The weights were generated f32-representable, so nothing is lost here.
        assert!(p32.iter().zip(&c.params).all(|(&a, &b)| a as f64 == b), "{}", c.name);
        let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1);
        let mut eng = CpuEngine::new(c.cfg, opt, p32).unwrap();
        let want = Want {
            dx: true,
            dh0: c.batch.h0.is_some(),
        };
        let (loss, g) = eng.loss_and_grads(&c.batch.cast::<f32>(), want).unwrap();
        let dl = (loss as f64 - c.loss).abs() / c.loss.abs();
        assert!(
            dl < F32_LOSS_REL,
            "{}: f32 loss {loss} vs torch {} (rel {dl:e})",
            c.name,
            c.loss
        );
        let st = c.tensors();
        for spec in &c.layout.tensors {
            let (want, _) = f64s(&st, &format!("grad.{}", spec.name));
            let got: Vec<f64> = g.params[spec.range()].iter().map(|&v| v as f64).collect();
            let e = rel_norm(&got, &want);
            assert!(e < F32_GRAD_REL, "{}: f32 d{} relative error {e:e}", c.name, spec.name);
            worst.1 = worst.1.max(e);
        }
        worst.0 = worst.0.max(dl);
    }
    println!(
        "golden vs torch (f32 engine): max loss rel diff {:.2e}, max grad ‖Δ‖/‖ref‖ {:.2e}",
        worst.0, worst.1
    );
}

#[test]
fn golden_optimiser_steps_match_torch_optim() {
    let m = manifest();
    let all = cases();
    let mut worst = 0.0f64;
    let opts = m["optim"].as_array().unwrap();
    assert_eq!(opts.len(), 3);
    for entry in opts {
        let name = entry["name"].as_str().unwrap();
        let base = entry["base"].as_str().unwrap();
        let c = all.iter().find(|c| c.name == base).unwrap();
        let opt: OptimConfig = serde_json::from_value(entry["optim"].clone()).unwrap();
        opt.validate().unwrap();
        let file = read_bytes(entry["file"].as_str().unwrap());
        let st = SafeTensors::deserialize(&file).unwrap();
        let losses: Vec<f64> = entry["losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();

        let mut p = c.params.clone();
        let mut state = OptimState::<f64>::new(&opt.kind, c.layout.total);
        let mut case_max = 0.0f64;
        for k in 1..=2 {
            // The same steps as torch: forward, backward, clip, update, on the same batch.
            let act = forward(&c.cfg, &c.layout, &p, &c.batch);
            check(
                &format!("{name}: loss before step {k}"),
                &[act.loss],
                &[losses[k - 1]],
                OPT_ATOL,
                OPT_RTOL,
            );
            let mut g = backward(&c.cfg, &c.layout, &p, &c.batch, &act, Want::default());
            clip(&opt.clip, &mut g.params);
            update(&opt, &mut state, &mut p, &g.params);
            let want = flat_params(&st, &c.layout, &format!("step{k}."));
            // Padding is 0 in `want` and must stay 0 in `p`.
            case_max = case_max.max(check(
                &format!("{name}: weights after step {k}"),
                &p,
                &want,
                OPT_ATOL,
                OPT_RTOL,
            ));
        }
        assert_eq!(state.step, 2);
        println!("{name:20} on {base}: max |Δw| after 2 steps {case_max:.1e}");
        worst = worst.max(case_max);
    }
    println!("optimisers vs torch.optim: max |Δw| {worst:.2e}");
}

/// The sequence shapes the golden cases cover, so a change of the case list cannot silently
/// drop one.
#[test]
fn golden_cases_cover_every_shape_head_and_cell() {
    let all = cases();
    let has = |f: &dyn Fn(&ModelConfig) -> bool| all.iter().any(|c| f(&c.cfg));
    assert!(has(&|c| c.seq == SeqShape::ManyToMany
        && c.head == wgrnn::Head::Softmax
        && c.layers == 2));
    assert!(has(&|c| c.seq == SeqShape::ManyToOne && c.head == wgrnn::Head::Linear));
    assert!(has(&|c| c.seq == SeqShape::OneToMany
        && c.head == wgrnn::Head::Sigmoid
        && c.embed().is_some()));
    assert!(has(&|c| c.activation == wgrnn::Activation::Sigmoid));
    assert!(has(&|c| c.activation == wgrnn::Activation::Relu));
    assert!(has(&|c| c.reduction == wgrnn::Reduction::Sum));
    // the nn.RNN options (#11)
    assert!(has(&|c| !c.bias && c.bidirectional));
    assert!(has(&|c| c.bias && c.bidirectional && c.seq == SeqShape::ManyToOne));
    assert!(has(&|c| !c.head_bias));
    let ragged = |f: &dyn Fn(&ModelConfig) -> bool| all.iter().any(|c| c.batch.is_ragged() && f(&c.cfg));
    assert!(ragged(&|c| c.bidirectional && !c.bias));
    assert!(ragged(&|c| c.bidirectional && c.seq == SeqShape::ManyToOne));
    assert!(ragged(&|c| c.seq == SeqShape::OneToMany));
}
