//! Issue #12 end to end on the CPU path: word and id language models with sampling and
//! `eval`, token-id CSV rows with an embedding table, series with chosen columns and
//! same-step targets under half-MSE, one-to-many rows, labelled lines, and `predict` in both
//! formats. Runs that need the engines to honour per-sequence lengths are in
//! tests/cli_workloads.rs.

mod cli_util;
use cli_util::*;
use std::path::{Path, PathBuf};

fn write(d: &Path, name: &str, body: &str) -> PathBuf {
    let p = d.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// `train_args` with more steps and a validation at the end.
fn train(data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut a = train_args(data, out, &["--steps", "30", "--eval-every", "30", "--json"]);
    a.extend_from_slice(extra);
    ok(&run(&a))
}

fn cmd(args: &[&str]) -> String {
    let mut a = args.to_vec();
    a.extend_from_slice(&["--device", "cpu"]);
    ok(&run(&a))
}

fn metadata(path: &Path) -> std::collections::HashMap<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    meta.metadata().clone().unwrap()
}

#[test]
fn word_language_model() {
    let d = dir("fmt-words");
    let text = write(&d, "w.txt", &"The cat sat. The dog ran!\nA cat, a dog.\n".repeat(40));
    let out = d.join("w.safetensors");
    let v = json(&train(
        &text,
        &out,
        &["--tokens", "word", "--embed", "4", "--seq-len", "8"],
    ));
    assert!(v["unigram_baseline"].as_f64().is_some());
    let meta = metadata(&out);
    assert_eq!(meta["tokens"], "word");
    let words: Vec<String> = serde_json::from_str(&meta["words"]).unwrap();
    assert_eq!(words[0], "<unk>");
    assert!(words.contains(&"cat".to_string()) && words.contains(&"\n".to_string()));
    let ck = s(&out);
    let greedy = cmd(&[
        "sample",
        "--checkpoint",
        ck,
        "--prime",
        "The",
        "--len",
        "12",
        "--temperature",
        "0",
    ]);
    assert!(greedy.starts_with("The "), "{greedy:?}");
    // a tiny temperature is the argmax, never a wrong token by underflow
    let tiny = cmd(&[
        "sample",
        "--checkpoint",
        ck,
        "--prime",
        "The",
        "--len",
        "12",
        "--temperature",
        "1e-30",
    ]);
    let top1 = cmd(&[
        "sample",
        "--checkpoint",
        ck,
        "--prime",
        "The",
        "--len",
        "12",
        "--top-k",
        "1",
    ]);
    assert_eq!((&tiny, &top1), (&greedy, &greedy));
    let unknown = cmd(&[
        "sample",
        "--checkpoint",
        ck,
        "--prime",
        "Zebras",
        "--len",
        "3",
        "--top-k",
        "3",
    ]);
    assert!(
        unknown.starts_with("Zebras"),
        "an unknown word primes as <unk>: {unknown:?}"
    );
    let e = cmd(&["eval", "--checkpoint", ck]);
    assert!(e.contains("nats/word") && e.contains("bits/word"), "{e}");
    let e = json(&cmd(&["eval", "--checkpoint", ck, "--data", s(&text), "--json"]));
    assert!(e["bits_per_char"].is_null() && e["bits_per_token"].as_f64().is_some());
}

#[test]
fn char_sampling_greedy_and_top_k() {
    let d = dir("fmt-chars");
    let model = tiny_text_model(&d, &[]);
    let ck = s(&model);
    let greedy = cmd(&["sample", "--checkpoint", ck, "--len", "40", "--temperature", "0"]);
    for t in ["1e-6", "1e-300"] {
        assert_eq!(
            cmd(&["sample", "--checkpoint", ck, "--len", "40", "--temperature", t]),
            greedy
        );
    }
    let seeded = |seed: &str| {
        cmd(&[
            "sample",
            "--checkpoint",
            ck,
            "--len",
            "40",
            "--top-k",
            "3",
            "--seed",
            seed,
        ])
    };
    assert_eq!(seeded("4"), seeded("4"));
}

#[test]
fn token_id_streams_and_rows() {
    let d = dir("fmt-ids");
    let ids: Vec<String> = (0..600).map(|i| ((i * 7) % 11).to_string()).collect();
    let stream = write(
        &d,
        "stream.csv",
        &ids.chunks(10).map(|c| c.join(",") + "\n").collect::<String>(),
    );
    let out = d.join("stream.safetensors");
    train(&stream, &out, &["--tokens", "ids", "--embed", "3"]);
    assert_eq!(metadata(&out)["tokens"], "ids");
    let sample = cmd(&[
        "sample",
        "--checkpoint",
        s(&out),
        "--prime",
        "0 7",
        "--len",
        "5",
        "--temperature",
        "0",
    ]);
    assert_eq!(sample.split_whitespace().count(), 7, "{sample:?}");
    // one sequence of 4 ids per row, then the class: is the first id even
    let mut rows = String::new();
    for i in 0..200u64 {
        let x: Vec<u64> = (0..4).map(|k| (i * 31 + k * 17) % 9).collect();
        rows += &format!("{},{},{},{},{}\n", x[0], x[1], x[2], x[3], x[0] % 2);
    }
    let rows = write(&d, "rows.csv", &rows);
    let out = d.join("rows.safetensors");
    let flags = [
        "--tokens",
        "ids",
        "--seq",
        "many-to-one",
        "--embed",
        "3",
        "--seq-len",
        "4",
    ];
    let v = json(&train(&rows, &out, &flags));
    assert!(v["val_accuracy"].as_f64().is_some());
    let p = cmd(&["predict", "--checkpoint", s(&out), "--data", s(&rows)]);
    let lines: Vec<&str> = p.lines().collect();
    assert_eq!((lines[0], lines.len()), ("row,class,p_0,p_1", 201));
}

#[test]
fn series_columns_half_mse_and_predict() {
    let d = dir("fmt-series");
    let mut body = String::from("x,noise,y\n");
    for t in 0..300 {
        let x = ((t as f64) * 0.3).sin();
        body += &format!("{x:.4},{:.4},{:.4}\n", ((t * 13) % 7) as f64 / 7.0, 0.5 * x);
    }
    let data = write(&d, "s.csv", &body);
    let out = d.join("s.safetensors");
    let flags = [
        "--target-cols",
        "y",
        "--input-cols",
        "x",
        "--target-shift",
        "0",
        "--head",
        "linear",
        "--loss",
        "half-mse",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--seq-len",
        "10",
    ];
    let v = json(&train(&data, &out, &flags));
    assert!(v["val_loss"].as_f64().unwrap() < 0.5 * 0.5 * 0.25, "{v}");
    let config: serde_json::Value = serde_json::from_str(&metadata(&out)["config"]).unwrap();
    assert_eq!(
        (config["loss"].as_str(), config["input"]["size"].as_u64()),
        (Some("half-mse"), Some(1))
    );
    let e = cmd(&["eval", "--checkpoint", s(&out)]);
    assert!(e.contains("half-MSE"), "{e}");
    let p = cmd(&["predict", "--checkpoint", s(&out), "--data", s(&data)]);
    assert_eq!(p.lines().count(), 301, "a header, then one prediction per row");
    assert!(p.starts_with("row,y_2\n0,"), "{}", &p[..20]);
}

#[test]
fn one_to_many_rows_and_predict_to_a_file() {
    let d = dir("fmt-o2m");
    let mut body = String::new();
    for i in 0..120 {
        let a = (i % 10) as f64 / 10.0;
        let ys: Vec<String> = (0..5).map(|s| format!("{:.3}", a * (s as f64 * 0.5).cos())).collect();
        body += &format!("{a},{}\n", ys.join(","));
    }
    let data = write(&d, "w.csv", &body);
    let out = d.join("w.safetensors");
    let flags = [
        "--seq",
        "one-to-many",
        "--seq-len",
        "5",
        "--head",
        "linear",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
    ];
    json(&train(&data, &out, &flags));
    let preds = d.join("p.jsonl");
    let args = [
        "predict",
        "--checkpoint",
        s(&out),
        "--data",
        s(&data),
        "--format",
        "jsonl",
        "--out",
        s(&preds),
    ];
    assert_eq!(cmd(&args), "", "records go to --out only");
    let text = std::fs::read_to_string(&preds).unwrap();
    assert_eq!(text.lines().count(), 120 * 5);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!((first["row"].as_u64(), first["step"].as_u64()), (Some(0), Some(0)));
    assert!(first["y"]["0"].as_f64().is_some());
    // a second run replaces the file whole (atomically), like a checkpoint
    cmd(&args);
    assert_eq!(std::fs::read_to_string(&preds).unwrap(), text);
    // rows without their targets are read too
    let inputs = write(&d, "in.csv", "0.5\n0.25\n");
    let p = cmd(&["predict", "--checkpoint", s(&out), "--data", s(&inputs)]);
    assert_eq!(p.lines().count(), 1 + 2 * 5);
}

#[test]
fn labelled_lines_train_eval_and_predict() {
    let d = dir("fmt-labels");
    let mut body = String::new();
    for i in 0..120 {
        let (label, word) = if i % 3 == 0 { ("good", "fine") } else { ("bad", "awful") };
        body += &format!("{label}\tthe film was {word}{}\n", " indeed".repeat(i % 4));
    }
    let data = write(&d, "l.tsv", &body);
    let out = d.join("l.safetensors");
    let v = json(&train(
        &data,
        &out,
        &["--seq", "many-to-one", "--tokens", "word", "--seq-len", "6"],
    ));
    assert!(v["val_accuracy"].as_f64().is_some());
    let e = cmd(&["eval", "--checkpoint", s(&out), "--data", s(&data)]);
    assert!(e.contains("accuracy") && e.contains("over 120 sequences"), "{e}");
    let p = cmd(&["predict", "--checkpoint", s(&out), "--data", s(&data)]);
    let lines: Vec<&str> = p.lines().collect();
    assert_eq!(lines[0], "line,label,p_bad,p_good");
    assert!(
        lines[1].starts_with("1,bad,") || lines[1].starts_with("1,good,"),
        "{}",
        lines[1]
    );
    assert_eq!(lines.len(), 121);
    // unlabelled lines are predicted too
    let plain = write(&d, "plain.txt", "the film was fine\nawful\n");
    let p = cmd(&[
        "predict",
        "--checkpoint",
        s(&out),
        "--data",
        s(&plain),
        "--format",
        "jsonl",
    ]);
    let rec: serde_json::Value = serde_json::from_str(p.lines().nth(1).unwrap()).unwrap();
    assert_eq!(rec["line"], 2);
    let total = rec["p"]["bad"].as_f64().unwrap() + rec["p"]["good"].as_f64().unwrap();
    assert!((total - 1.0).abs() < 1e-5);
    // a labelled CSV with quoted text
    let csv = write(
        &d,
        "l.csv",
        "text,label\n\"the film, was fine\",good\n\"awful, really\",bad\n",
    );
    let out = d.join("c.safetensors");
    let flags = ["--text-col", "text", "--label-col", "label", "--val-fraction", "0"];
    train(&csv, &out, &flags);
}
