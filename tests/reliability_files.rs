//! Issue 10's file and process cases: outputs that would replace an input or another output
//! (also through symlinks and hard links), outputs and inputs that are not regular files,
//! unwritable outputs found before the first step, a full disk under the log, a closed
//! stdout, SIGTERM, and two runs writing one checkpoint. Every refused command leaves every
//! file as it was, within seconds (no hang), with one error line and no panic.

mod cli_util;
use cli_util::*;
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use wgrnn::checkpoint::Checkpoint;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Every entry of `d` (following no links) with the bytes of the regular files, to show that
/// a refused command touched nothing and left nothing behind.
fn snapshot(d: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let b = m.is_file().then(|| std::fs::read(&p).unwrap());
            (p, b)
        })
        .collect();
    v.sort();
    v
}

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
fn outputs_never_replace_inputs_or_each_other() {
    let d = dir("files-overwrite");
    let (text, model, batch) = setup(&d);
    let other = d.join("other.svg");
    let before = snapshot(&d);
    let t = |extra: &[&str]| {
        let base = [
            "train",
            "--steps",
            "30",
            "--hidden",
            "16",
            "--batch",
            "4",
            "--seq-len",
            "16",
        ];
        let args = [&base[..], &["--quiet", "--device", "cpu"], extra].concat();
        run_within(&args, 30)
    };
    let (tx, m) = (s(&text), s(&model));
    for (extra, a, b) in [
        (vec!["--data", tx, "--out", tx], "--out", "--data"),
        (vec!["--data", tx, "--out", s(&other), "--log", tx], "--log", "--data"),
        (vec!["--data", tx, "--out", s(&other), "--plot", tx], "--plot", "--data"),
        (vec!["--data", tx, "--out", m, "--plot", m], "--plot", "--out"),
        (vec!["--data", tx, "--out", m, "--log", m], "--log", "--out"),
        (
            vec!["--data", tx, "--out", s(&other), "--log", m, "--plot", m],
            "--plot",
            "--log",
        ),
        (vec!["--resume", m, "--out", s(&other), "--log", m], "--log", "--resume"),
        (
            vec!["--resume", m, "--out", s(&other), "--plot", m],
            "--plot",
            "--resume",
        ),
        // the data a resumed checkpoint names is an input too
        (
            vec!["--resume", m, "--out", s(&other), "--log", tx],
            "--log",
            "the data the checkpoint names",
        ),
    ] {
        fails(&t(&extra), &[a, b, "same file", "hint"]);
    }
    let g = |out: &Path| {
        let args = [
            "grad",
            "--checkpoint",
            m,
            "--batch",
            s(&batch),
            "--out",
            s(out),
            "--device",
            "cpu",
        ];
        run_within(&args, 30)
    };
    fails(&g(&model), &["--out", "--checkpoint", "same file"]);
    fails(&g(&batch), &["--out", "--batch", "same file"]);
    assert!(snapshot(&d) == before, "every file is as it was");
    // a resumed run updating its own checkpoint is the one replacement allowed
    ok(&t(&["--resume", m, "--out", m, "--steps", "40"]));
    assert_eq!(Checkpoint::load(&model).unwrap().step, 40);
}

#[test]
fn aliases_through_symlinks_and_hard_links() {
    let d = dir("files-links");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let sym = d.join("sym.txt");
    std::os::unix::fs::symlink("t.txt", &sym).unwrap();
    let hard = d.join("hard.txt");
    std::fs::hard_link(&text, &hard).unwrap();
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    // two spellings of one file that does not exist yet, and a dangling link to it
    let new = d.join("new.safetensors");
    let dotted = sub.join("..").join("new.safetensors");
    let dangling = d.join("dangling");
    std::os::unix::fs::symlink("new.safetensors", &dangling).unwrap();
    let before = snapshot(&d);
    for (data, out, extra) in [
        (&text, &sym, vec![]),
        (&sym, &hard, vec![]),
        (&hard, &text, vec![]),
        (&text, &new, vec!["--log", s(&dotted)]),
        (&text, &new, vec!["--plot", s(&dangling)]),
    ] {
        fails(&run_within(&train_args(data, out, &extra), 30), &["same file", "hint"]);
    }
    assert!(snapshot(&d) == before, "every file is as it was");
}

#[test]
fn outputs_that_are_not_regular_files() {
    let d = dir("files-special-out");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let null = d.join("null.safetensors");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let folder = d.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let mut specials = vec![(null.clone(), "character device"), (fifo.clone(), "FIFO")];
    let dev = d.join("dev");
    if is_root()
        && Command::new("mknod")
            .args([s(&dev), "c", "1", "3"])
            .status()
            .unwrap()
            .success()
    {
        specials.push((dev.clone(), "character device"));
    }
    let out = d.join("m.safetensors");
    let before = snapshot(&d);
    for (p, kind) in &specials {
        fails(
            &run_within(&train_args(&text, p, &[]), 30),
            &["--out", kind, "not a regular file"],
        );
        fails(
            &run_within(&train_args(&text, &out, &["--log", s(p)]), 30),
            &["--log", kind],
        );
        fails(
            &run_within(&train_args(&text, &out, &["--plot", s(p)]), 30),
            &["--plot", kind],
        );
        assert!(wgrnn::fsio::write_atomic(p, b"x").is_err(), "{p:?}");
    }
    fails(
        &run_within(&train_args(&text, &folder, &[]), 30),
        &["--out is a directory", "hint"],
    );
    for (p, _) in &specials {
        let m = std::fs::metadata(p).unwrap();
        assert!(!m.is_file(), "{p:?} is still what it was");
    }
    assert!(std::fs::symlink_metadata(&null).unwrap().file_type().is_symlink());
    assert!(snapshot(&d) == before, "every entry is as it was, nothing was added");
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

/// A tmpfs mounted for one test (root with CAP_SYS_ADMIN, as on the CI machines); unmounted
/// on drop. None where mounting is not allowed.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str, opts: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}{opts}"), "tmpfs", s(at)])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A million steps would take many minutes: each failure must come before the first.
#[test]
fn unwritable_outputs_found_before_the_first_step() {
    let d = dir("files-preflight");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let (out, missing) = (d.join("m.safetensors"), d.join("missing").join("x"));
    let long = ["--steps", "1000000", "--eval-every", "0"];
    fn with<'a>(long: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [long, extra].concat()
    }
    let ro = Tmpfs::mount(&d.join("ro"), "1m", ",ro");
    let before = snapshot(&d);
    let t0 = Instant::now();
    fails(
        &run_within(&train_args(&text, &missing, &long), 20),
        &["--out", "does not exist", "mkdir"],
    );
    fails(
        &run_within(&train_args(&text, &d, &long), 20),
        &["--out is a directory"],
    );
    fails(
        &run_within(&train_args(&text, &out, &with(&long, &["--log", s(&missing)])), 20),
        &["--log", "does not exist"],
    );
    fails(
        &run_within(&train_args(&text, &out, &with(&long, &["--plot", s(&missing)])), 20),
        &["--plot", "does not exist"],
    );
    if let Some(fs) = &ro {
        let ro = fs.0.join("m.safetensors");
        fails(
            &run_within(&train_args(&text, &ro, &long), 20),
            &["--out", "Read-only file system", "hint"],
        );
        let log = fs.0.join("log.jsonl");
        fails(
            &run_within(&train_args(&text, &out, &with(&long, &["--log", s(&log)])), 20),
            &["--log", "Read-only"],
        );
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(snapshot(&d) == before, "every file is as it was");
}

/// A log or plot that cannot be written costs one warning each, never the checkpoint.
#[test]
fn full_disk_under_log_and_plot_keeps_the_checkpoint() {
    let d = dir("files-full-log");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let Some(fs) = Tmpfs::mount(&d.join("mnt"), "64k", "") else {
        return;
    };
    let mut filler = std::fs::File::create(fs.0.join("filler")).unwrap();
    while std::io::Write::write_all(&mut filler, &[7u8; 4096]).is_ok() {}
    drop(filler);
    let out = d.join("m.safetensors");
    let (log, plot) = (fs.0.join("log.jsonl"), fs.0.join("loss.svg"));
    let o = run_within(
        &train_args(&text, &out, &["--steps", "300", "--log", s(&log), "--plot", s(&plot)]),
        120,
    );
    ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].contains("log.jsonl") && warnings[0].contains("No space left"),
        "{stderr}"
    );
    assert!(
        warnings[1].contains("loss.svg") && warnings[1].contains("cannot write the plot"),
        "{stderr}"
    );
    assert_eq!(Checkpoint::load(&out).unwrap().step, 300);
    assert!(!plot.exists());
}

#[test]
fn closed_or_full_stdout() {
    let d = dir("files-stdout");
    let (_, model, _) = setup(&d);
    let m = s(&model);
    for args in [
        vec!["info"],
        vec!["sample", "--checkpoint", m, "--len", "5", "--device", "cpu"],
    ] {
        let mut child = bin()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = bin()
        .args(["sample", "--checkpoint", m, "--len", "5", "--device", "cpu"])
        .stdout(full)
        .output()
        .unwrap();
    fails(&o, &["standard output", "No space left", "hint"]);
}

/// A long CPU run on `out` that checkpoints every step; returns once it has written one.
fn long_run(text: &Path, out: &Path) -> Child {
    let _ = std::fs::remove_file(out);
    let mut args = train_args(
        text,
        out,
        &["--steps", "1000000", "--eval-every", "1", "--val-batches", "1"],
    );
    args.extend_from_slice(&["--hidden", "256", "--batch", "16", "--seq-len", "32"]);
    let child = bin()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !out.exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint written");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn wait(child: &mut Child) -> (ExitStatus, String) {
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (st, stderr)
}

#[test]
fn sigterm_saves_like_ctrl_c() {
    let d = dir("files-sigterm");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let out = d.join("m.safetensors");
    let mut child = long_run(&text, &out);
    signal(&child, "-TERM");
    let (st, stderr) = wait(&mut child);
    assert_eq!(st.code(), Some(130), "{stderr}");
    assert!(Checkpoint::load(&out).unwrap().step >= 1);
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "no temporary or lock file is left: {names:?}");
}

#[test]
fn one_writer_per_output() {
    let d = dir("files-lock");
    let text = d.join("t.txt");
    std::fs::write(&text, small_text()).unwrap();
    let out = d.join("m.safetensors");
    let mut first = long_run(&text, &out);
    let pid = format!("pid {}", first.id());
    let second = run_within(&train_args(&text, &out, &[]), 20);
    fails(
        &second,
        &["m.safetensors", "--out is being written by another run", &pid, "hint"],
    );
    let g = run_within(
        &["grad", "--checkpoint", s(&text), "--batch", s(&text), "--out", s(&out)],
        20,
    );
    fails(&g, &["being written by another run"]);
    signal(&first, "-INT");
    assert_eq!(wait(&mut first).0.code(), Some(130));
    assert!(!d.join("m.safetensors.lock").exists());
    // a run killed outright leaves its lock file behind, which blocks nobody
    let mut killed = long_run(&text, &out);
    signal(&killed, "-KILL");
    let _ = wait(&mut killed);
    assert!(d.join("m.safetensors.lock").exists());
    ok(&run_within(&train_args(&text, &out, &[]), 60));
    assert!(!d.join("m.safetensors.lock").exists());
}
