//! Issue 6 cases that tests/cli_errors.rs does not cover: unreadable paths, absurd sizes,
//! adapter limits, more checkpoint damage, read-only and full file systems, a NaN in the
//! middle of a run, a second Ctrl-C and the `--device auto` fallback. Each runs the binary
//! and expects one error line naming the file / flag / value with a hint, and no panic.

mod cli_util;
use cli_util::*;
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wgrnn::checkpoint::Checkpoint;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Every file in `d` with its bytes, to show that a failed write touched nothing.
fn snapshot(d: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn unreadable_paths() {
    let d = dir("rel-unreadable");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let out = d.join("m.safetensors");
    // Root reads a chmod 000 file anyway, so the unreadable path that works for every user is
    // one that runs through a regular file: opening it fails with ENOTDIR.
    let through = text.join("x.txt");
    fails(
        &run(&train_args(&through, &out, &[])),
        &["t.txt/x.txt", "cannot read", "Not a directory", "hint"],
    );
    fails(
        &run(&["sample", "--checkpoint", s(&through), "--device", "cpu"]),
        &["t.txt/x.txt", "cannot read"],
    );
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        let locked = d.join("locked.txt");
        std::fs::write(&locked, small_text()).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        fails(
            &run(&train_args(&locked, &out, &[])),
            &["locked.txt", "Permission denied", "permissions"],
        );
    }
    let m = tiny_text_model(&d, &[]);
    fails(
        &run(&["eval", "--checkpoint", s(&m), "--data", s(&through), "--device", "cpu"]),
        &["t.txt/x.txt", "cannot read"],
    );
}

#[test]
fn absurd_sizes_and_values() {
    let d = dir("rel-sizes");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let out = d.join("m.safetensors");
    for (extra, needles) in [
        (
            &["--batch", "10000000000000"][..],
            &["batch = 10000000000000", "1..="][..],
        ),
        (
            &["--seq-len", "18446744073709551615"],
            &["seq-len = 18446744073709551615"],
        ),
        // fits the flag bounds, not the machine: refused before anything is allocated
        (
            &["--batch", "16000000"],
            &["batch = 16000000", "host memory", "largest batch that fits"],
        ),
        (&["--hidden", "20000000"], &["hidden = 20000000"]),
        (&["--layers", "0"], &["layers = 0"]),
        (&["--lr", "inf"], &["lr = inf"]),
        (&["--clip-norm", "-1"], &["clip_norm = -1"]),
        (&["--momentum", "0.9"], &["momentum = 0.9", "--optimizer sgd"]),
        (&["--optimizer", "sgd", "--momentum", "nan"], &["momentum = NaN"]),
        (&["--val-fraction", "-0.1"], &["val-fraction"]),
    ] {
        fails(&run(&train_args(&text, &out, extra)), needles);
    }
    assert!(!out.exists(), "no checkpoint is written by a refused run");
    let csv = d.join("rows.csv");
    std::fs::write(&csv, "1,2,0\n3,4,1\n").unwrap();
    fails(
        &run(&train_args(
            &csv,
            &out,
            &["--input-size", "4611686018427387904", "--seq-len", "4"],
        )),
        &["rows.csv", "too few columns"],
    );
    fails(
        &run(&["check", "--batch", "100000000", "--hidden", "8"]),
        &["batch = 100000000"],
    );
}

/// A batch whose buffers exceed every adapter's binding limit: the error names the buffer,
/// the limit and the largest batch that fits. (A missing adapter fails the test, as in
/// tests/cli_commands.rs.)
#[test]
fn gpu_buffer_limits() {
    let d = dir("rel-gpu-limits");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let out = d.join("m.safetensors");
    let mut args = train_args(
        &text,
        &out,
        &["--batch", "100000", "--hidden", "4096", "--seq-len", "64"],
    );
    let dev = args.iter().position(|a| *a == "cpu").unwrap();
    args[dev] = "gpu";
    let line = fails(
        &run(&args),
        &[
            "gpu:",
            "needs",
            "adapter allows",
            "max_",
            "largest batch that fits is B = ",
        ],
    );
    // Which buffer hits the limit first depends on how the engine splits a batch; the line
    // must name one of the (L or T+1, B, H) state buffers.
    assert!(line.contains("states"), "{line}");
    assert!(!out.exists());
}

/// A safetensors file from a raw JSON header and data.
fn raw_file(path: &Path, header: &str, data: &[u8]) {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

#[test]
fn damaged_checkpoints() {
    let d = dir("rel-ckpt");
    let m = tiny_text_model(&d, &[]);
    let bytes = std::fs::read(&m).unwrap();
    let bad = d.join("bad.safetensors");
    let sample = |p: &Path| run(&["sample", "--checkpoint", s(p), "--len", "5", "--device", "cpu"]);

    // a tensor whose offsets run past the end of the file
    raw_file(
        &bad,
        r#"{"head.bias":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}"#,
        &[0; 8],
    );
    fails(&sample(&bad), &["bad.safetensors", "not a valid safetensors", "hint"]);
    // a header length one byte past the file
    let mut b = bytes.clone();
    let n = (b.len() - 7) as u64;
    b[..8].copy_from_slice(&n.to_le_bytes());
    std::fs::write(&bad, &b).unwrap();
    fails(&sample(&bad), &["bad.safetensors", "not a valid safetensors"]);
    // a config claiming a model far larger than the tensors in the file
    rewrite(&bytes, &bad, |_, meta| {
        let c = meta["config"].replace("\"hidden\":16", "\"hidden\":4096");
        meta.insert("config".into(), c);
    });
    fails(
        &sample(&bad),
        &["bad.safetensors", "the config needs", "bytes of tensors"],
    );
    // a config a little off: the tensors' shapes disagree with it
    rewrite(&bytes, &bad, |_, meta| {
        let c = meta["config"].replace("\"hidden\":16", "\"hidden\":15");
        meta.insert("config".into(), c);
    });
    fails(&sample(&bad), &["bad.safetensors", "has shape", "expected"]);
    // the optimiser state: wrong dtype, then missing
    rewrite(&bytes, &bad, |ts, _| {
        for t in ts.iter_mut().filter(|t| t.0 == "optim.m.rnn.weight_hh_l0") {
            t.1 = Dtype::I32;
        }
    });
    fails(&sample(&bad), &["\"optim.m.rnn.weight_hh_l0\"", "dtype I32", "float32"]);
    rewrite(&bytes, &bad, |ts, _| ts.retain(|t| t.0 != "optim.v.head.bias"));
    fails(&sample(&bad), &["missing tensor \"optim.v.head.bias\""]);
    // metadata
    for (key, value, needle) in [
        ("format", "something-else", "unsupported checkpoint format"),
        ("step", "-3", "\"step\" is not a number"),
        ("vocab", "ba", "vocab"),
        ("config", "{\"hidden\":", "metadata \"config\""),
        ("optim", "{}", "metadata \"optim\""),
    ] {
        rewrite(&bytes, &bad, |_, meta| {
            meta.insert(key.into(), value.into());
        });
        fails(&sample(&bad), &["bad.safetensors", needle, "hint"]);
    }
    rewrite(&bytes, &bad, |_, meta| {
        meta.remove("format");
    });
    fails(&sample(&bad), &["\"format\" is missing"]);

    // flags that disagree with the checkpoint being resumed
    let out = d.join("resumed.safetensors");
    for (flag, value) in [
        ("--layers", "2"),
        ("--optimizer", "sgd"),
        ("--lr", "0.5"),
        ("--batch", "3"),
        ("--activation", "relu"),
    ] {
        let o = run(&[
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
            flag,
            value,
        ]);
        fails(
            &o,
            &[
                "model.safetensors",
                &format!("{flag} does not match the checkpoint"),
                "hint",
            ],
        );
    }
    assert!(!out.exists());
}

/// A tmpfs mounted for one test (root with CAP_SYS_ADMIN, as on the CI machines); unmounted
/// on drop. None where mounting is not allowed.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", s(at)])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    fn remount(&self, opt: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opt}"), s(&self.0)])
            .status()
            .unwrap();
        assert!(st.success(), "remount {opt}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Writing into a read-only directory reports the path and leaves the earlier checkpoint,
/// log and plot untouched.
#[test]
fn read_only_directory() {
    let d = dir("rel-readonly");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    // Permission bits do not stop root, and the tests run as root on CI; a read-only mount
    // does. Without one, a path whose parent is a regular file is the directory nobody can
    // write into.
    let Some(fs) = Tmpfs::mount(&d.join("mnt"), "4m") else {
        let out = text.join("m.safetensors");
        fails(
            &run(&train_args(&text, &out, &[])),
            &["t.txt/m.safetensors", "cannot write", "hint"],
        );
        return;
    };
    let out = fs.0.join("m.safetensors");
    let (log, plot) = (fs.0.join("log.jsonl"), fs.0.join("loss.svg"));
    let extra = ["--log", s(&log), "--plot", s(&plot)];
    ok(&run(&train_args(&text, &out, &extra)));
    let before = snapshot(&fs.0);
    assert_eq!(before.len(), 3);
    fs.remount("ro");
    fails(
        &run(&train_args(&text, &out, &["--steps", "4"])),
        &["m.safetensors", "cannot write", "Read-only file system", "hint"],
    );
    // every output is checked before the first step, not only --out
    fails(
        &run(&train_args(&text, &d.join("elsewhere.safetensors"), &extra)),
        &["log.jsonl", "Read-only file system"],
    );
    fails(
        &run(&train_args(&text, &out, &["--resume", s(&out), "--steps", "4"])),
        &["m.safetensors", "Read-only file system"],
    );
    let batch = d.join("batch.safetensors");
    let ids: Vec<u8> = (0..6i64).flat_map(|i| i.to_le_bytes()).collect();
    let views = [("inputs", &ids), ("targets", &ids)]
        .map(|(n, b)| (n.to_string(), TensorView::new(Dtype::I64, vec![2, 3], b).unwrap()));
    std::fs::write(&batch, safetensors::serialize(views, None).unwrap()).unwrap();
    let grads = fs.0.join("grads.safetensors");
    let g = run(&[
        "grad",
        "--checkpoint",
        s(&out),
        "--batch",
        s(&batch),
        "--out",
        s(&grads),
        "--device",
        "cpu",
    ]);
    fails(&g, &["grads.safetensors", "Read-only file system"]);
    assert_eq!(snapshot(&fs.0), before, "the read-only directory is unchanged");
    fs.remount("rw");
}

/// A full file system: the error names the path, the earlier checkpoint stays as it was and
/// no temporary file is left behind.
#[test]
fn full_disk() {
    let d = dir("rel-full");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    // outputs are regular files: /dev/full is refused before the run starts (a log on a
    // full disk only costs a warning: tests/reliability_files.rs)
    let out = d.join("m.safetensors");
    fails(
        &run(&train_args(&text, &out, &["--log", "/dev/full"])),
        &["/dev/full", "--log", "not a regular file"],
    );
    // checkpoints are written to a temporary sibling and renamed, so /dev/full cannot stand
    // in for their directory: that needs a small file system, filled up
    let Some(fs) = Tmpfs::mount(&d.join("mnt"), "256k") else {
        return;
    };
    let out = fs.0.join("m.safetensors");
    ok(&run(&train_args(&text, &out, &[])));
    let mut filler = std::fs::File::create(fs.0.join("filler")).unwrap();
    let chunk = vec![7u8; 4096];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    drop(filler);
    let before = snapshot(&fs.0);
    fails(
        &run(&train_args(&text, &out, &["--resume", s(&out), "--steps", "4"])),
        &["m.safetensors", "cannot write", "No space left on device", "free space"],
    );
    fails(
        &run(&train_args(&text, &fs.0.join("new.safetensors"), &["--hidden", "32"])),
        &["new.safetensors", "No space left on device"],
    );
    assert_eq!(
        snapshot(&fs.0),
        before,
        "the earlier files are untouched, no temporary file is left"
    );
    let ck = Checkpoint::load(&out).expect("the earlier checkpoint still loads");
    assert_eq!(ck.step, 2);
}

/// A loss that turns non-finite after some good steps: the run stops naming the step, and
/// the checkpoint of the step before is kept and loads with finite weights.
#[test]
fn nan_mid_run_keeps_last_good_checkpoint() {
    let d = dir("rel-nan");
    let out = d.join("m.safetensors");
    // plain SGD with a learning rate far too large for this regression diverges
    // geometrically: finite for a dozen steps, then an overflow
    let o = run(&[
        "train",
        "--task",
        "sine",
        "--head",
        "linear",
        "--hidden",
        "8",
        "--activation",
        "relu",
        "--batch",
        "2",
        "--seq-len",
        "8",
        "--optimizer",
        "sgd",
        "--lr",
        "0.5",
        "--clip-norm",
        "0",
        "--reduction",
        "sum",
        "--steps",
        "300",
        "--eval-every",
        "1",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        s(&out),
    ]);
    let line = fails(
        &o,
        &[
            "non-finite",
            "hint",
            "--lr",
            "--clip-norm",
            "last good checkpoint",
            "m.safetensors",
        ],
    );
    let step_of = |key: &str| -> u64 {
        let at = line.find(key).unwrap_or_else(|| panic!("{line}")) + key.len();
        line[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("{line}"))
    };
    let (bad, kept) = (step_of("at step "), step_of("(step "));
    assert!(bad > 2 && kept == bad - 1, "{line}");
    let ck = Checkpoint::load(&out).expect("the last good checkpoint loads");
    assert_eq!(ck.step, kept);
    assert!(ck.params.iter().all(|v| v.is_finite()));
}

/// The first Ctrl-C lets the step finish and saves; a second one exits at once with 130,
/// and the checkpoint on disk is still a whole one (old or new).
#[test]
fn second_interrupt_exits_at_once() {
    let d = dir("rel-sigint2");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let out = d.join("m.safetensors");
    // steps (and saves) of about a second and a half on two cores, so the second signal
    // lands while the first one is still waiting for the step to end
    let mut child = bin()
        .args([
            "train",
            "--data",
            s(&text),
            "--steps",
            "1000000",
            "--hidden",
            "1536",
            "--batch",
            "64",
            "--seq-len",
            "64",
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
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !out.exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = Checkpoint::load(&out).expect("first checkpoint").step;
    let kill = |sig: &str| {
        let st = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    kill("-INT");
    std::thread::sleep(Duration::from_millis(50));
    let sent = Instant::now();
    kill("-INT");
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "no exit after the second Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let waited = sent.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // one step of this model takes far longer than the exit
    assert!(waited < Duration::from_millis(500), "exit took {waited:?}");
    let ck = Checkpoint::load(&out).expect("the checkpoint is whole after two Ctrl-C");
    assert!(ck.step >= first);
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
}

/// `--device auto` falls back to the CPU path with one warning only when no adapter can be
/// opened; `--device gpu` then fails with the reason.
#[test]
fn auto_falls_back_only_without_adapter() {
    let d = dir("rel-auto");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let out = d.join("m.safetensors");
    let mut args = train_args(&text, &out, &["--json"]);
    let dev = args.iter().position(|a| *a == "cpu").unwrap();
    args[dev] = "auto";
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let o = bin()
        .args(&args)
        .env("WGRNN_ADAPTER", "no-such-adapter")
        .output()
        .unwrap();
    let stdout = ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(json(&stdout)["engine"].as_str().unwrap().starts_with("cpu"), "{stdout}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("no GPU adapter could be opened") && warnings[0].contains("CPU path"));
    let o = bin()
        .args(args.iter().map(|a| if a == "auto" { "gpu" } else { a.as_str() }))
        .env("WGRNN_ADAPTER", "no-such-adapter")
        .output()
        .unwrap();
    fails(&o, &["gpu:", "no-such-adapter"]);
    // with an adapter that opens, auto never warns
    let o = bin().args(&args).output().unwrap();
    ok(&o);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"), "{:?}", o);
}
