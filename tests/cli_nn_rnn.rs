//! The nn.RNN options (#11) on the command line: flag combinations that cannot work and
//! commands a bidirectional model cannot serve give one error line each; the options round
//! trip through checkpoints and resumed runs. (The flags' values: cli_errors; exact resume
//! with dropout: cli_train; export: export_pytorch.)

mod cli_util;
use cli_util::*;
use std::path::Path;

fn train_on(d: &Path, data: &Path, extra: &[&str]) -> std::process::Output {
    run(&train_args(data, &d.join("m.safetensors"), extra))
}

/// The nn.RNN options (#11): flag combinations that cannot work, and commands a
/// bidirectional model cannot serve.
#[test]
fn nn_rnn_option_errors() {
    let d = dir("err-nn-rnn");
    let data = d.join("t.txt");
    std::fs::write(&data, small_text()).unwrap();
    fails(
        &train_on(&d, &data, &["--dropout", "0.3"]),
        &["dropout = 0.3", "does nothing with --layers 1", "--layers 2"],
    );
    fails(
        &train_on(&d, &data, &["--bidirectional", "--stateful"]),
        &["bidirectional model cannot carry its state", "--stateful"],
    );
    let m = tiny_text_model(&d, &["--bidirectional", "--layers", "2", "--dropout", "0.2"]);
    fails(
        &run(&["sample", "--checkpoint", s(&m), "--device", "cpu"]),
        &["bidirectional", "cannot generate text"],
    );
    let resume = |extra: &[&str]| {
        let out = d.join("r.safetensors");
        let mut a = vec![
            "train",
            "--resume",
            s(&m),
            "--steps",
            "30",
            "--quiet",
            "--device",
            "cpu",
            "--out",
            s(&out),
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    fails(
        &resume(&["--dropout", "0.5"]),
        &["--dropout does not match the checkpoint"],
    );
    fails(&resume(&["--no-bias"]), &["--no-bias does not match the checkpoint"]);
    fails(&resume(&["--stateful"]), &["--stateful does not match the checkpoint"]);
    ok(&resume(&["--bidirectional", "--dropout", "0.2"]));
}

/// A model trained with every option: the progress line names them, the checkpoint holds
/// them (and the tensors PyTorch's modules would have), eval runs it without dropout.
#[test]
fn options_reach_the_checkpoint_and_eval() {
    let d = dir("nn-rnn-options");
    let opts = [
        "--layers",
        "2",
        "--bidirectional",
        "--no-bias",
        "--no-head-bias",
        "--dropout",
        "0.25",
    ];
    let data = d.join("text.txt");
    std::fs::write(&data, small_text()).unwrap();
    let out = d.join("m.safetensors");
    // samples every step: a bidirectional text model skips them, saying so
    let mut args = train_args(&data, &out, &[&opts[..], &["--sample-every", "1"]].concat());
    args.retain(|a| *a != "--quiet");
    let o = run(&args);
    ok(&o);
    // the progress output (stderr) names the model
    let progress = String::from_utf8_lossy(&o.stderr);
    let model = "bidirectional tanh rnn H=8 L=2 no-bias dropout=0.25 -> softmax head O=29 no-bias";
    assert!(progress.contains(model), "{progress}");
    assert!(progress.contains("no samples: a bidirectional model"), "{progress}");
    let ck = wgrnn::checkpoint::Checkpoint::load(&out).unwrap();
    let c = ck.config;
    assert!(c.bidirectional && !c.bias && !c.head_bias && c.layers == 2);
    assert_eq!(
        c.dropout,
        wgrnn::Dropout { p: 0.25, seed: 1 },
        "seeded by --seed (default 1)"
    );
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut model: Vec<&str> = st.names().into_iter().filter(|n| !n.starts_with("optim.")).collect();
    model.sort();
    assert_eq!(
        model,
        [
            "head.weight",
            "rnn.weight_hh_l0",
            "rnn.weight_hh_l0_reverse",
            "rnn.weight_hh_l1",
            "rnn.weight_hh_l1_reverse",
            "rnn.weight_ih_l0",
            "rnn.weight_ih_l0_reverse",
            "rnn.weight_ih_l1",
            "rnn.weight_ih_l1_reverse",
        ]
    );
    let eval = ok(&run(&["eval", "--checkpoint", s(&out), "--device", "cpu", "--json"]));
    assert!(json(&eval)["loss"].as_f64().unwrap().is_finite());
}
