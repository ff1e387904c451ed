//! Every bad input of issues 4 and 6 gives one error line naming the problem, a non-zero
//! exit and no panic; interrupts and kills never leave a broken checkpoint.

mod cli_util;
use cli_util::*;
use safetensors::tensor::TensorView;
use std::path::{Path, PathBuf};

fn train_on(data: &Path, extra: &[&str]) -> std::process::Output {
    let out = data.with_extension("safetensors");
    run(&train_args(data, &out, extra))
}

#[test]
fn bad_text_files() {
    let d = dir("err-text");
    let missing = d.join("missing.txt");
    fails(&train_on(&missing, &[]), &["missing.txt", "cannot read", "hint"]);
    let empty = d.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    fails(&train_on(&empty, &[]), &["empty.txt", "is empty"]);
    fails(&train_on(&d, &[]), &["is a directory"]);
    let bin = d.join("binary.txt");
    std::fs::write(&bin, [0x7fu8, b'E', b'L', b'F', 0, 0, 1, 2]).unwrap();
    fails(&train_on(&bin, &[]), &["binary.txt", "binary"]);
    let latin1 = d.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait\n".repeat(10)).unwrap();
    fails(&train_on(&latin1, &[]), &["latin1.txt", "UTF-8"]);
    let short = d.join("short.txt");
    std::fs::write(&short, "abc").unwrap();
    fails(&train_on(&short, &[]), &["short.txt", "--seq-len"]);
}

#[test]
fn bad_flag_values() {
    let d = dir("err-flags");
    let data = d.join("t.txt");
    std::fs::write(&data, small_text()).unwrap();
    for (flag, value, needle) in [
        ("--activation", "swish", "tanh"),
        ("--head", "tanh", "softmax"),
        ("--optimizer", "lbfgs", "adam"),
        ("--device", "tpu", "auto"),
        ("--task", "copy", "adding"),
        ("--seq-len", "0", "seq-len"),
        ("--batch", "0", "batch"),
        ("--hidden", "0", "hidden"),
        ("--lr", "-1", "lr"),
        ("--lr", "nan", "lr"),
        ("--val-fraction", "0.9", "val-fraction"),
        ("--steps", "many", "steps"),
        ("--dropout", "1.5", "drop probability P must be in [0, 1)"),
        ("--dropout", "1", "drop probability P must be in [0, 1)"),
        ("--dropout", "-0.1", "drop probability P must be in [0, 1)"),
        ("--dropout", "nan", "drop probability P must be in [0, 1)"),
    ] {
        fails(&train_on(&data, &[flag, value]), &[needle]);
    }
    fails(&run(&["train", "--no-such-flag"]), &["--no-such-flag"]);
}

#[test]
fn bad_csv_files() {
    let d = dir("err-csv");
    let cases: [(&str, &str, &[&str], &[&str]); 8] = [
        (
            "ragged.csv",
            "1,2,3\n4,5\n",
            &["--seq-len", "2"],
            &["line 2", "columns"],
        ),
        (
            "word.csv",
            "a,b,c\n1,2,0\n3,x,1\n",
            &["--seq-len", "2"],
            &["line 3", "column 2", "not a number"],
        ),
        (
            "nan.csv",
            "1,2,0\n3,NaN,1\n",
            &["--seq-len", "2"],
            &["line 2", "finite"],
        ),
        ("inf.csv", "1,inf,0\n", &["--seq-len", "2"], &["line 1", "finite"]),
        (
            "class.csv",
            "1,2,0\n3,4,7\n",
            &["--seq-len", "2", "--output-size", "3"],
            &["line 2", "class id 7", "out of range"],
        ),
        (
            "few.csv",
            "1,2,0\n3,4,1\n",
            &["--seq-len", "4", "--input-size", "2"],
            &["too few columns"],
        ),
        (
            "shortseries.csv",
            "a,b\n1,2\n3,4\n",
            &["--target-cols", "a", "--head", "linear"],
            &["shorter than one window"],
        ),
        (
            "unknown.csv",
            "a,b\n1,2\n3,4\n",
            &["--target-cols", "c", "--head", "linear"],
            &["unknown target column \"c\"", "a, b"],
        ),
    ];
    for (name, body, flags, needles) in cases {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        let mut args = vec![
            "train",
            "--data",
            s(&p),
            "--steps",
            "2",
            "--hidden",
            "8",
            "--batch",
            "2",
            "--quiet",
            "--device",
            "cpu",
            "--val-fraction",
            "0",
        ];
        args.extend_from_slice(flags);
        let line = fails(&run(&args), needles);
        assert!(line.contains(name), "{line}");
    }
}

/// A tiny checkpoint and the path of a scratch copy to damage.
fn checkpoint(d: &Path) -> (PathBuf, Vec<u8>) {
    let m = tiny_text_model(d, &[]);
    let bytes = std::fs::read(&m).unwrap();
    (m, bytes)
}

#[test]
fn bad_checkpoints() {
    let d = dir("err-ckpt");
    let (m, bytes) = checkpoint(&d);
    let bad = d.join("bad.safetensors");
    let sample = |p: &Path| run(&["sample", "--checkpoint", s(p), "--len", "5", "--device", "cpu"]);

    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    fails(&sample(&bad), &["bad.safetensors", "not a valid safetensors"]);
    let mut b = bytes.clone();
    b[0..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&bad, &b).unwrap();
    fails(&sample(&bad), &["bad.safetensors", "not a valid safetensors"]);
    let mut b = bytes.clone();
    b[10] = b'#';
    std::fs::write(&bad, &b).unwrap();
    fails(&sample(&bad), &["bad.safetensors"]);
    let mut b = bytes.clone();
    let n = b.len();
    b[n - 3] ^= 0x40;
    std::fs::write(&bad, &b).unwrap();
    fails(&sample(&bad), &["checksum mismatch"]);
    std::fs::write(&bad, b"not a checkpoint at all").unwrap();
    fails(&sample(&bad), &["bad.safetensors"]);

    rewrite(&bytes, &bad, |ts, _| ts.retain(|t| t.0 != "rnn.weight_hh_l0"));
    fails(&sample(&bad), &["missing tensor \"rnn.weight_hh_l0\""]);
    rewrite(&bytes, &bad, |ts, _| {
        for t in ts.iter_mut().filter(|t| t.0 == "head.bias") {
            t.1 = safetensors::Dtype::I32;
        }
    });
    fails(&sample(&bad), &["head.bias", "dtype"]);
    rewrite(&bytes, &bad, |ts, _| {
        for t in ts.iter_mut().filter(|t| t.0 == "head.weight") {
            t.2 = vec![t.2[1], t.2[0]];
        }
    });
    fails(&sample(&bad), &["head.weight", "shape"]);

    // a checkpoint of another model: the flags and the data disagree with it
    let data = d.join("text.txt");
    let resume = |extra: &[&str]| {
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
            s(&bad),
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    fails(
        &resume(&["--hidden", "32"]),
        &["--hidden does not match the checkpoint"],
    );
    let other = d.join("other.txt");
    std::fs::write(
        &other,
        "completely different text with UPPER CASE letters!\n".repeat(20),
    )
    .unwrap();
    fails(&resume(&["--data", s(&other)]), &["other.txt", "vocabulary"]);
    let _ = data;
}

#[test]
fn tokens_outside_vocabulary() {
    let d = dir("err-vocab");
    let (m, _) = checkpoint(&d);
    let foreign = d.join("foreign.txt");
    std::fs::write(&foreign, "the quick brown fox\nZebra!\n").unwrap();
    fails(
        &run(&["eval", "--checkpoint", s(&m), "--data", s(&foreign), "--device", "cpu"]),
        &["foreign.txt", "line 2", "'Z'", "vocabulary"],
    );
    fails(
        &run(&[
            "sample",
            "--checkpoint",
            s(&m),
            "--prime",
            "Xylophone",
            "--device",
            "cpu",
        ]),
        &["--prime", "'X'"],
    );
}

#[test]
fn bad_batch_files() {
    let d = dir("err-batch");
    let (m, _) = checkpoint(&d);
    let grad = |batch: &Path| {
        run(&[
            "grad",
            "--checkpoint",
            s(&m),
            "--batch",
            s(batch),
            "--out",
            s(&d.join("g.safetensors")),
            "--device",
            "cpu",
        ])
    };
    let write = |name: &str, tensors: Vec<(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)>| {
        let p = d.join(name);
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, dt, sh, b)| (n.to_string(), TensorView::new(*dt, sh.clone(), b).unwrap()))
            .collect();
        std::fs::write(&p, safetensors::serialize(views, None).unwrap()).unwrap();
        p
    };
    let ids = |n: usize, v: i64| (0..n as i64).flat_map(|i| (i % v).to_le_bytes()).collect::<Vec<u8>>();
    use safetensors::Dtype::{F32, I64};
    let p = write(
        "names.safetensors",
        vec![
            ("input", I64, vec![2, 3], ids(6, 5)),
            ("targets", I64, vec![2, 3], ids(6, 5)),
        ],
    );
    fails(&grad(&p), &["names.safetensors", "\"input\""]);
    let p = write("notargets.safetensors", vec![("inputs", I64, vec![2, 3], ids(6, 5))]);
    fails(&grad(&p), &["missing tensor \"targets\""]);
    let p = write(
        "shape.safetensors",
        vec![
            ("inputs", I64, vec![2, 3], ids(6, 5)),
            ("targets", I64, vec![3, 2], ids(6, 5)),
        ],
    );
    fails(&grad(&p), &["\"targets\"", "[3, 2]"]);
    let p = write(
        "dtype.safetensors",
        vec![
            ("inputs", F32, vec![2, 3], vec![0; 24]),
            ("targets", I64, vec![2, 3], ids(6, 5)),
        ],
    );
    fails(&grad(&p), &["\"inputs\"", "int64"]);
    let far: Vec<u8> = (0..6i64).flat_map(|i| (100 + i).to_le_bytes()).collect();
    let p = write(
        "vocab.safetensors",
        vec![
            ("inputs", I64, vec![2, 3], far),
            ("targets", I64, vec![2, 3], ids(6, 5)),
        ],
    );
    fails(&grad(&p), &["token ids outside"]);
    let p = write(
        "h0.safetensors",
        vec![
            ("inputs", I64, vec![2, 3], ids(6, 5)),
            ("targets", I64, vec![2, 3], ids(6, 5)),
            ("h0", F32, vec![1, 2, 5], vec![0; 40]),
        ],
    );
    fails(&grad(&p), &["\"h0\"", "shape"]);
    // lengths (B) int64, each in 1..=T
    let lengths = |name: &str, dt, shape: Vec<usize>, bytes: Vec<u8>| {
        let p = write(
            name,
            vec![
                ("inputs", I64, vec![2, 3], ids(6, 5)),
                ("targets", I64, vec![2, 3], ids(6, 5)),
                ("lengths", dt, shape, bytes),
            ],
        );
        grad(&p)
    };
    let le = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    fails(
        &lengths("len0.safetensors", I64, vec![2], le(&[3, 0])),
        &["\"lengths\"", "outside 1..=3"],
    );
    fails(
        &lengths("len4.safetensors", I64, vec![2], le(&[4, 1])),
        &["\"lengths\"", "outside 1..=3"],
    );
    fails(
        &lengths("lenneg.safetensors", I64, vec![2], le(&[-1, 1])),
        &["outside 1..=3"],
    );
    fails(
        &lengths("lenf32.safetensors", F32, vec![2], vec![0; 8]),
        &["\"lengths\"", "int64 (2)"],
    );
    fails(
        &lengths("lenshape.safetensors", I64, vec![3], le(&[1, 2, 3])),
        &["\"lengths\"", "[3]"],
    );
    ok(&lengths("lenok.safetensors", I64, vec![2], le(&[3, 1])));
}

/// The nn.RNN options (#11): flag combinations that cannot work, and commands a
/// bidirectional model cannot serve.
#[test]
fn nn_rnn_option_errors() {
    let d = dir("err-nn-rnn");
    let data = d.join("t.txt");
    std::fs::write(&data, small_text()).unwrap();
    fails(
        &train_on(&data, &["--dropout", "0.3"]),
        &["dropout = 0.3", "does nothing with --layers 1", "--layers 2"],
    );
    fails(
        &train_on(&data, &["--bidirectional", "--stateful"]),
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

#[test]
fn unwritable_output_and_nan_loss() {
    let d = dir("err-write");
    let data = d.join("t.txt");
    std::fs::write(&data, small_text()).unwrap();
    let out = d.join("no-such-dir").join("m.safetensors");
    fails(
        &train_on(&data, &["--out", s(&out)]),
        &["m.safetensors", "cannot write"],
    );
    let out = d.join("m.safetensors");
    ok(&train_on(&data, &["--out", s(&out)]));
    let good = std::fs::read(&out).unwrap();
    let line = fails(
        &train_on(
            &data,
            &[
                "--out",
                s(&out),
                "--optimizer",
                "sgd",
                "--lr",
                "3e38",
                "--reduction",
                "sum",
                "--clip-norm",
                "0",
                "--steps",
                "50",
                "--eval-every",
                "1",
            ],
        ),
        &["non-finite", "at step 1", "--lr", "last good checkpoint"],
    );
    // broken weights are never saved: the earlier run's checkpoint is untouched
    assert!(line.contains("none written yet"), "{line}");
    assert_eq!(std::fs::read(&out).unwrap(), good);
}

/// SIGINT: finish the step, save, exit 130. SIGKILL at any moment: the previous checkpoint
/// stays loadable.
#[test]
fn interrupt_and_kill_keep_checkpoints() {
    let d = dir("signals");
    let data = d.join("t.txt");
    std::fs::write(&data, small_text()).unwrap();
    let out = d.join("m.safetensors");
    let spawn = || {
        bin()
            .args([
                "train",
                "--data",
                s(&data),
                "--steps",
                "1000000",
                "--hidden",
                "32",
                "--batch",
                "4",
                "--seq-len",
                "16",
                "--eval-every",
                "1",
                "--val-batches",
                "1",
                "--sample-every",
                "0",
                "--quiet",
                "--device",
                "cpu",
                "--out",
                s(&out),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_for_file = || {
        for _ in 0..200 {
            if out.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no checkpoint written");
    };
    let child = spawn();
    wait_for_file();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    wgrnn::checkpoint::Checkpoint::load(&out).expect("checkpoint after Ctrl-C loads");

    for k in 0..6 {
        let child = spawn();
        std::thread::sleep(std::time::Duration::from_millis(150 + 37 * k));
        std::process::Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap();
        let _ = child.wait_with_output();
        wgrnn::checkpoint::Checkpoint::load(&out).unwrap_or_else(|e| panic!("checkpoint after SIGKILL {k}: {e}"));
    }
}
