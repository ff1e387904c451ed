//! Runs the `wgrnn` binary for the CLI tests.
#![allow(dead_code)]

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wgrnn"));
    // wgpu's Vulkan loader wants a runtime dir; CI machines often lack one
    let xdg = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into());
    c.env("XDG_RUNTIME_DIR", xdg);
    // the GPU kernel tuner's cache (the CLI tunes by default): the tests', not the user's
    if std::env::var_os("WGRNN_CACHE_DIR").is_none() {
        c.env(
            "WGRNN_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("tune-cache"),
        );
    }
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the wgrnn binary runs")
}

/// A fresh directory for one test.
pub fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the test directory");
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Asserts success; returns stdout.
pub fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wgrnn failed ({:?}):\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a clean failure: non-zero exit, no panic, one line on stderr containing every
/// needle. Returns that line.
pub fn fails(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a failure, got success; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{stderr}");
    }
    lines[0].to_string()
}

/// The text of a small corpus with a learnable pattern.
pub fn small_text() -> String {
    "the quick brown fox jumps over the lazy dog.\n".repeat(60)
}

/// Trains a tiny text model into `dir/model.safetensors` and returns its path.
pub fn tiny_text_model(dir: &Path, extra: &[&str]) -> PathBuf {
    let data = dir.join("text.txt");
    std::fs::write(&data, small_text()).expect("write the corpus");
    let out = dir.join("model.safetensors");
    let mut args = vec![
        "train",
        "--data",
        s(&data),
        "--hidden",
        "16",
        "--steps",
        "20",
        "--batch",
        "4",
        "--seq-len",
        "16",
        "--eval-every",
        "10",
        "--sample-every",
        "0",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        s(&out),
    ];
    args.extend_from_slice(extra);
    ok(&run(&args));
    out
}

/// Parses the JSON summary a command printed on stdout.
pub fn json(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {stdout}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line}: {e}"))
}

/// Losses of the `train` records of a --log file, in step order.
pub fn logged_losses(log: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(log)
        .expect("read the log")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON object per line"))
        .filter(|v| v["type"] == "train")
        .map(|v| (v["step"].as_u64().expect("step"), v["loss"].as_f64().expect("loss")))
        .collect()
}

/// Flags of a tiny, fast CPU training run on `data` writing `out`; `extra` comes last, so it
/// overrides (a flag given twice takes its last value).
pub fn train_args<'a>(data: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--data",
        s(data),
        "--steps",
        "2",
        "--hidden",
        "8",
        "--batch",
        "2",
        "--seq-len",
        "4",
        "--sample-every",
        "0",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        s(out),
    ];
    a.extend_from_slice(extra);
    a
}

/// Rewrites a checkpoint with `edit` applied to its tensors and metadata.
pub fn rewrite(
    bytes: &[u8],
    out: &Path,
    edit: impl Fn(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, &mut HashMap<String, String>),
) {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
    let mut ts: Vec<_> = st
        .iter()
        .map(|(n, t)| (n.to_string(), t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    let mut meta = meta.metadata().clone().unwrap_or_default();
    edit(&mut ts, &mut meta);
    let views: Vec<_> = ts
        .iter()
        .map(|(n, dt, sh, d)| (n.clone(), TensorView::new(*dt, sh.clone(), d).unwrap()))
        .collect();
    std::fs::write(out, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

/// Rewrites a checkpoint's metadata with `edit` and signs the result with a valid checksum
/// (the library's writer computes it), so that only the loader's own checks can refuse it.
pub fn resign(path: &Path, edit: impl FnOnce(&mut std::collections::BTreeMap<String, String>)) {
    resign_tensors(path, |_| {}, edit);
}

/// `resign` with an edit of the (f32) tensors too.
pub fn resign_tensors(
    path: &Path,
    edit_tensors: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<u8>)>),
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut ts: Vec<_> = st
        .iter()
        .map(|(n, t)| (n.to_string(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    let mut meta: std::collections::BTreeMap<_, _> = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    meta.remove("checksum");
    edit_tensors(&mut ts);
    edit(&mut meta);
    wgrnn::tensor_file::write_tensors(path, &ts, meta).unwrap();
}

/// Edits the JSON of metadata value `key`.
pub fn edit_json(
    meta: &mut std::collections::BTreeMap<String, String>,
    key: &str,
    f: impl FnOnce(&mut serde_json::Value),
) {
    let mut v: serde_json::Value = serde_json::from_str(&meta[key]).unwrap();
    f(&mut v);
    meta.insert(key.into(), v.to_string());
}

/// Runs the recipe script `examples/<name>.sh` from the repository root with this build's
/// binary, writing into a fresh directory, for `steps` training steps; returns its stdout,
/// the training summary (the JSON object `train --json` printed) and the directory.
pub fn recipe(name: &str, steps: u64) -> (String, serde_json::Value, PathBuf) {
    let out = dir(&format!("recipe-{name}"));
    let o = Command::new("sh")
        .arg(format!("examples/{name}.sh"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("WGRNN", env!("CARGO_BIN_EXE_wgrnn"))
        .env("OUT", &out)
        .env("STEPS", steps.to_string())
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()),
        )
        .output()
        .expect("sh runs the recipe");
    let stdout = ok(&o);
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("{\"engine\""))
        .unwrap_or_else(|| panic!("no training summary in {stdout}"));
    let v = serde_json::from_str(summary).expect("the summary is JSON");
    (stdout, v, out)
}

/// Column `col` of the last `n` data rows of a numeric CSV of the repository (after a
/// header when it has one).
pub fn csv_tail(path: &str, col: usize, n: usize) -> Vec<f64> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("read the data");
    let rows: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split(',').nth(col)?.trim().parse().ok())
        .collect();
    rows[rows.len() - n..].to_vec()
}
