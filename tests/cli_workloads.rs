//! End-to-end workloads that need the engines of issue #11 (bias-free cells, per-sequence
//! lengths): they fail until that work is merged, and must all pass after it. Each names
//! what it needs.
//! - recipe_1_regression: --no-bias / --no-head-bias;
//! - recipe_3_word_lm: --no-bias / --no-head-bias;
//! - recipe_5a_classify, labelled_predictions_ignore_padding: many-to-one over
//!   `Batch::lengths` (each line's output at its own last token);
//! - labelled_gpu_matches_cpu passes before the merge too (both engines ignore the lengths
//!   alike) but only tests the GPU path's lengths after it.

mod cli_util;
use cli_util::*;
use std::path::Path;

fn val_loss(v: &serde_json::Value) -> f64 {
    v["val_loss"].as_f64().expect("a validation loss")
}

/// Recipe 1 (#11: bias-free): y_t from x_t and the state, tanh, no biases, half-MSE, SGD;
/// below a fifth of the half-MSE of predicting 0 on the validation window.
#[test]
fn recipe_1_regression() {
    let (_, v, out) = recipe("1-regression", 800);
    // validation: the last 30 of 600 rows, one window of T = 25 of them
    let y = csv_tail("examples/data/series.csv", 1, 30);
    let zero = 0.5 * y[..25].iter().map(|y| y * y).sum::<f64>() / 25.0;
    assert!(
        val_loss(&v) < zero / 5.0,
        "val half-MSE {} vs predicting 0: {zero}",
        val_loss(&v)
    );
    let preds = std::fs::read_to_string(out.join("regression-predictions.csv")).unwrap();
    assert_eq!(preds.lines().count(), 601, "a header and one prediction per row");
}

/// Recipe 3 (#11: bias-free): sigmoid word-level model with embeddings, H = 256; below the
/// unigram baseline of words.
#[test]
fn recipe_3_word_lm() {
    let (stdout, v, _) = recipe("3-word-lm", 120);
    let (val, uni) = (val_loss(&v), v["unigram_baseline"].as_f64().unwrap());
    assert!(val < uni, "val loss {val}, unigram baseline {uni}");
    assert!(stdout.contains("KING"), "the sample follows its prime:\n{stdout}");
}

/// Recipe 5a (#11: lengths): labelled lines, sigmoid RNN, Adam; accuracy well above chance
/// (one half) and a loss below the class prior's (ln 2).
#[test]
fn recipe_5a_classify() {
    let (stdout, v, out) = recipe("5a-classify", 1500);
    let acc = v["val_accuracy"].as_f64().unwrap();
    assert!(acc > 0.75, "val accuracy {acc}");
    assert!(val_loss(&v) < 0.6, "val loss {}", val_loss(&v));
    assert!(stdout.contains("accuracy"), "eval reports accuracy:\n{stdout}");
    let preds = std::fs::read_to_string(out.join("classify-predictions.jsonl")).unwrap();
    assert_eq!(preds.lines().count(), 500);
}

fn labelled_model(d: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut body = String::new();
    for i in 0..200 {
        let label = if i % 2 == 0 { "even" } else { "odd" };
        body += &format!(
            "{label}\t{}{}\n",
            "a b ".repeat(i % 5),
            if i % 2 == 0 { "x" } else { "y" }
        );
    }
    let data = d.join("l.tsv");
    std::fs::write(&data, body).unwrap();
    let out = d.join("l.safetensors");
    let flags = [
        "--seq",
        "many-to-one",
        "--tokens",
        "word",
        "--seq-len",
        "16",
        "--steps",
        "200",
        "--lr",
        "0.01",
    ];
    let v = json(&ok(&run(&train_args(
        &data,
        &out,
        &[&flags[..], &["--json", "--eval-every", "200"]].concat(),
    ))));
    // the label is the last word: reading each line at its own end makes this easy
    assert!(v["val_accuracy"].as_f64().unwrap() > 0.9, "{v}");
    (data, out)
}

/// (#11: lengths) A line's prediction does not depend on the lines batched with it: alone
/// in a file it is read in T = its own length steps, among longer lines it is padded to
/// theirs, and the padding must never be read.
#[test]
fn labelled_predictions_ignore_padding() {
    let d = dir("work-padding");
    let (data, model) = labelled_model(&d);
    let alone = d.join("alone.tsv");
    std::fs::write(&alone, "a b a b x\n").unwrap();
    let predict = |file: &Path| {
        let args = [
            "predict",
            "--checkpoint",
            s(&model),
            "--data",
            s(file),
            "--device",
            "cpu",
        ];
        ok(&run(&args))
    };
    let p = |l: &str| l.split(',').nth(2).unwrap().parse::<f64>().unwrap();
    let single = predict(&alone);
    let in_file = predict(&data);
    // line 3 of the training file is "even<TAB>a b a b x" (i = 2), padded there to T = 9
    let (a, b) = (single.lines().nth(1).unwrap(), in_file.lines().nth(3).unwrap());
    assert!(b.starts_with("3,"), "{b}");
    assert!((p(a) - p(b)).abs() < 1e-5, "alone: {a}; in the file: {b}");
}

/// (#11: lengths, GPU path) Labelled evaluation agrees on both paths.
#[test]
fn labelled_gpu_matches_cpu() {
    let d = dir("work-gpu");
    let (data, model) = labelled_model(&d);
    let eval = |device: &str| {
        let args = [
            "eval",
            "--checkpoint",
            s(&model),
            "--data",
            s(&data),
            "--json",
            "--device",
            device,
        ];
        json(&ok(&run(&args)))["loss"].as_f64().unwrap()
    };
    let (cpu, gpu) = (eval("cpu"), eval("gpu"));
    assert!((cpu - gpu).abs() <= 1e-5 * cpu.abs(), "cpu {cpu} gpu {gpu}");
}
