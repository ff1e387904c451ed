//! `wgrnn export` for every model variant (#11): the file holds the model tensors alone, it
//! loads into PyTorch with `load_state_dict(strict=True)` through the README's snippet, run
//! as written, and PyTorch's loss on a batch (pack_padded_sequence for ragged lengths) is
//! wgrnn's within 1e-5. The same batch through `wgrnn grad` (lengths in the batch file)
//! gives wgrnn's loss too. And `export` never replaces a file without --force.

mod cli_util;

use cli_util::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::path::{Path, PathBuf};
use wgrnn::batch::to_batch_major;
use wgrnn::checkpoint::Checkpoint;
use wgrnn::{
    random_batch, Activation, Batch, CpuEngine, Dropout, Engine, Head, Input, Inputs, ModelConfig, OptimConfig,
    OptimKind, OptimState, ParamLayout, Reduction, SeqShape, Targets,
};

/// PyTorch in float32 against the f32 engine: a few ulps of a loss near 1.
const LOSS_TOL: f64 = 1e-5;

/// (name, model, B, T, lengths, with h0)
type Variant = (&'static str, ModelConfig, usize, usize, Option<Vec<u32>>, bool);

fn variants() -> Vec<Variant> {
    let base = ModelConfig::char_lm(7, 5, 1);
    let dense = |size, output, head, seq| ModelConfig {
        input: Input::Dense { size },
        output,
        head,
        seq,
        ..base
    };
    vec![
        ("plain", base, 3, 6, None, false),
        (
            "nobias_bi_l2_dropout_ragged",
            ModelConfig {
                input: Input::Tokens {
                    vocab: 7,
                    embed: Some(4),
                },
                layers: 2,
                bias: false,
                head_bias: false,
                bidirectional: true,
                dropout: Dropout { p: 0.3, seed: 2 },
                ..base
            },
            4,
            6,
            Some(vec![6, 1, 4, 2]),
            true,
        ),
        (
            "bi_l2_relu_m2o_ragged",
            ModelConfig {
                layers: 2,
                activation: Activation::Relu,
                bidirectional: true,
                ..dense(3, 2, Head::Linear, SeqShape::ManyToOne)
            },
            3,
            5,
            Some(vec![2, 5, 1]),
            true,
        ),
        (
            "noheadbias_l3_o2m_sum_ragged",
            ModelConfig {
                layers: 3,
                head_bias: false,
                reduction: Reduction::Sum,
                ..dense(2, 3, Head::Sigmoid, SeqShape::OneToMany)
            },
            3,
            4,
            Some(vec![4, 1, 3]),
            false,
        ),
        (
            "bi_tokens_m2o_softmax",
            ModelConfig {
                bidirectional: true,
                seq: SeqShape::ManyToOne,
                ..base
            },
            2,
            5,
            None,
            true,
        ),
    ]
}

fn le_bytes<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

/// The batch as a `grad` batch file, batch-major: inputs of all T steps (one-to-many pads
/// the steps after the first), targets, h0, lengths.
fn write_batch_file(path: &Path, cfg: &ModelConfig, batch: &Batch<f32>) {
    let (b, t) = (batch.batch, batch.steps);
    let t_in = cfg.input_steps(t);
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    match &batch.inputs {
        Inputs::Tokens(x) => {
            let mut x: Vec<i64> = x.iter().map(|&v| v as i64).collect();
            x.resize(t * b, 0);
            tensors.push((
                "inputs".into(),
                Dtype::I64,
                vec![b, t],
                le_bytes(&to_batch_major(&x, b, t, 1), i64::to_le_bytes),
            ));
        }
        Inputs::Dense(x) => {
            let i = x.len() / (t_in * b);
            let mut x = x.clone();
            x.resize(t * b * i, 0.0);
            let x = to_batch_major(&x, b, t, i);
            tensors.push((
                "inputs".into(),
                Dtype::F32,
                vec![b, t, i],
                le_bytes(&x, f32::to_le_bytes),
            ));
        }
    }
    let t_out = cfg.target_steps(t);
    let lead = |w: Vec<usize>| {
        if cfg.seq == SeqShape::ManyToOne {
            [vec![b], w].concat()
        } else {
            [vec![b, t], w].concat()
        }
    };
    match &batch.targets {
        Targets::Classes(y) => {
            let y: Vec<i64> = to_batch_major(y, b, t_out, 1).iter().map(|&v| v as i64).collect();
            tensors.push((
                "targets".into(),
                Dtype::I64,
                lead(vec![]),
                le_bytes(&y, i64::to_le_bytes),
            ));
        }
        Targets::Values(y) => {
            let y = to_batch_major(y, b, t_out, cfg.output);
            tensors.push((
                "targets".into(),
                Dtype::F32,
                lead(vec![cfg.output]),
                le_bytes(&y, f32::to_le_bytes),
            ));
        }
    }
    if let Some(h0) = &batch.h0 {
        let shape = vec![cfg.state_rows(), b, cfg.hidden];
        tensors.push(("h0".into(), Dtype::F32, shape, le_bytes(h0, f32::to_le_bytes)));
    }
    if let Some(l) = &batch.lengths {
        let l: Vec<i64> = l.iter().map(|&v| v as i64).collect();
        tensors.push(("lengths".into(), Dtype::I64, vec![b], le_bytes(&l, i64::to_le_bytes)));
    }
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, dt, sh, d)| (n.clone(), TensorView::new(*dt, sh.clone(), d).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// The README's PyTorch block, without its last line (the example call).
fn readme_snippet() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = readme
        .split("<!-- pytorch-snippet")
        .nth(1)
        .expect("the README has the PyTorch snippet");
    let block = after.split("```python\n").nth(1).unwrap().split("```").next().unwrap();
    let lines: Vec<&str> = block.trim_end().lines().collect();
    assert!(
        lines.last().unwrap().contains("load_wgrnn("),
        "the snippet ends with its example call"
    );
    lines[..lines.len() - 1].join("\n")
}

fn has_torch() -> bool {
    let out = std::process::Command::new("python3")
        .args(["-c", "import torch, safetensors"])
        .output();
    out.expect("python3 is needed for this test (apt-get install python3)")
        .status
        .success()
}

/// PyTorch's loss for each (exported model, batch file), by the README's code, in one
/// Python process (importing torch takes seconds).
fn torch_losses(pairs: &[(PathBuf, PathBuf)]) -> Vec<f64> {
    let script = format!(
        "{}\n\nimport sys\nargs = sys.argv[1:]\nfor m, bf in zip(args[::2], args[1::2]):\n    \
         model, cfg = load_wgrnn(m)\n    b = load_file(bf)\n    with torch.no_grad():\n        \
         loss = wgrnn_loss(model, cfg, b['inputs'], b['targets'], b.get('lengths'), b.get('h0'))\n    \
         print(repr(loss.item()))\n",
        readme_snippet()
    );
    let args = pairs.iter().flat_map(|(m, b)| [s(m), s(b)]);
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "PyTorch failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

fn checkpoint(cfg: ModelConfig, seed: u64) -> Checkpoint {
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1);
    let layout = ParamLayout::new(&cfg);
    Checkpoint {
        config: cfg,
        optim: opt,
        params: layout.init(&cfg, seed),
        optim_state: OptimState::new(&opt.kind, layout.total),
        vocab: None,
        step: 0,
        train: None,
        carried: None,
    }
}

#[test]
fn exported_models_load_in_pytorch_strictly_and_give_wgrnn_loss() {
    let d = dir("export-pytorch");
    let mut runs = Vec::new();
    for (i, (name, cfg, b, t, lengths, h0)) in variants().into_iter().enumerate() {
        let ck = checkpoint(cfg, 10 + i as u64);
        let (ck_path, model, batch_path) = (
            d.join(format!("{name}.ck.safetensors")),
            d.join(format!("{name}.safetensors")),
            d.join(format!("{name}.batch.safetensors")),
        );
        ck.save(&ck_path).unwrap();
        ok(&run(&["export", "--checkpoint", s(&ck_path), "--out", s(&model)]));

        // only the model's tensors, under its PyTorch names and shapes
        let bytes = std::fs::read(&model).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
        names.sort();
        let layout = ParamLayout::new(&cfg);
        let mut want: Vec<String> = layout.tensors.iter().map(|t| t.name.clone()).collect();
        want.sort();
        assert_eq!(names, want, "{name}: exported tensors");
        for t in &layout.tensors {
            assert_eq!(st.tensor(&t.name).unwrap().shape(), t.shape, "{name}: {}", t.name);
        }

        let mut batch = random_batch(&cfg, b, t, h0, 20 + i as u64);
        batch.lengths = lengths;
        write_batch_file(&batch_path, &cfg, &batch);
        let mut engine = CpuEngine::new(cfg, ck.optim, ck.params.clone()).unwrap();
        let loss = engine.forward(&batch).unwrap().loss as f64;
        if !cfg.dropout.is_active() {
            // the batch file (lengths and all) read by `grad`: the same loss
            let g = d.join(format!("{name}.grads.safetensors"));
            let stdout = ok(&run(&[
                "grad",
                "--checkpoint",
                s(&ck_path),
                "--batch",
                s(&batch_path),
                "--out",
                s(&g),
                "--device",
                "cpu",
            ]));
            let got: f64 = stdout
                .split_whitespace()
                .nth(1)
                .unwrap()
                .trim_end_matches(';')
                .parse()
                .unwrap();
            assert_eq!(got as f32, loss as f32, "{name}: grad's loss");
        }
        runs.push((name, cfg, loss, (model, batch_path)));
    }
    if !has_torch() {
        println!("torch not installed: load_state_dict and the losses not tried");
        return;
    }
    let pairs: Vec<_> = runs.iter().map(|r| r.3.clone()).collect();
    let theirs = torch_losses(&pairs);
    assert_eq!(theirs.len(), runs.len());
    for ((name, cfg, loss, _), theirs) in runs.iter().zip(theirs) {
        let diff = (theirs - loss).abs();
        assert!(
            diff <= LOSS_TOL * loss.abs().max(1.0),
            "{name}: PyTorch {theirs} vs wgrnn {loss}"
        );
        println!("{name:30} {cfg}: wgrnn {loss:.7} PyTorch {theirs:.7} |Δ| {diff:.1e}");
    }
}

#[test]
fn export_never_replaces_a_file_without_force() {
    let d = dir("export-force");
    let ck_path = d.join("m.ck.safetensors");
    checkpoint(ModelConfig::char_lm(5, 4, 1), 1).save(&ck_path).unwrap();
    let out = d.join("m.safetensors");
    std::fs::write(&out, "precious").unwrap();
    let line = fails(
        &run(&["export", "--checkpoint", s(&ck_path), "--out", s(&out)]),
        &["--out exists already", "--force"],
    );
    assert!(line.contains("m.safetensors"), "{line}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
    // a dangling symlink is something too: writing through it would create its target
    let link = d.join("link.safetensors");
    std::os::unix::fs::symlink(d.join("nowhere"), &link).unwrap();
    fails(
        &run(&["export", "--checkpoint", s(&ck_path), "--out", s(&link)]),
        &["exists already"],
    );
    assert!(!d.join("nowhere").exists());

    ok(&run(&[
        "export",
        "--checkpoint",
        s(&ck_path),
        "--out",
        s(&out),
        "--force",
    ]));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(SafeTensors::deserialize(&bytes).unwrap().names().len(), 6);
    fails(
        &run(&["export", "--checkpoint", s(&ck_path), "--out", s(&ck_path), "--force"]),
        &["--out and --checkpoint name the same file"],
    );
    // no temporary or lock file left behind
    let mut left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["link.safetensors", "m.ck.safetensors", "m.safetensors"]);
}
