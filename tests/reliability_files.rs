//! Issue 10's file cases: inputs that are not regular files fail at once (no hang), with one
//! error line and no panic.

mod cli_util;
use cli_util::*;
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs the binary, killing it (and failing the test) if it has not ended after `secs`.
fn run_within(args: &[&str], secs: u64) -> Output {
    let child = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            panic!("wgrnn {args:?} still running after {secs} s");
        }
    }
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

/// A tiny text model in `d`, its corpus and a batch file for `grad`.
fn setup(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let model = tiny_text_model(d, &[]);
    let batch = d.join("batch.safetensors");
    let ids: Vec<u8> = (0..6i64).flat_map(|i| i.to_le_bytes()).collect();
    let views = [("inputs", &ids), ("targets", &ids)]
        .map(|(n, b)| (n.to_string(), TensorView::new(Dtype::I64, vec![2, 3], b).unwrap()));
    std::fs::write(&batch, safetensors::serialize(views, None).unwrap()).unwrap();
    (d.join("text.txt"), model, batch)
}

#[test]
fn inputs_that_are_not_regular_files_fail_at_once() {
    let d = dir("files-special-in");
    let (text, model, batch) = setup(&d);
    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let out = d.join("out.safetensors");
    let (f, m) = (s(&fifo), s(&model));
    let checks: Vec<Vec<&str>> = vec![
        train_args(&fifo, &out, &[]),
        train_args(Path::new("/dev/zero"), &out, &[]),
        vec!["train", "--resume", f, "--out", s(&out), "--quiet", "--device", "cpu"],
        vec!["sample", "--checkpoint", f, "--device", "cpu"],
        vec!["eval", "--checkpoint", f, "--device", "cpu"],
        vec!["eval", "--checkpoint", m, "--data", f, "--device", "cpu"],
        vec![
            "grad",
            "--checkpoint",
            f,
            "--batch",
            s(&batch),
            "--out",
            s(&out),
            "--device",
            "cpu",
        ],
        vec![
            "grad",
            "--checkpoint",
            m,
            "--batch",
            f,
            "--out",
            s(&out),
            "--device",
            "cpu",
        ],
    ];
    for args in &checks {
        let line = fails(&run_within(args, 20), &["not a regular file", "hint"]);
        assert!(line.contains("FIFO") || line.contains("character device"), "{line}");
    }
    // the data a checkpoint names, replaced by a FIFO after training
    std::fs::remove_file(&text).unwrap();
    mkfifo(&text);
    for args in [
        vec!["eval", "--checkpoint", m, "--device", "cpu"],
        vec![
            "train",
            "--resume",
            m,
            "--steps",
            "30",
            "--out",
            s(&out),
            "--quiet",
            "--device",
            "cpu",
        ],
    ] {
        fails(&run_within(&args, 20), &["text.txt", "FIFO", "not a regular file"]);
    }
    assert!(!out.exists());
}
