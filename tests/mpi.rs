//! Data-parallel training under `mpirun` (cargo feature `mpi`): N ranks with B/N sequences
//! each train the same model as one process with batch B (SPEC §5), bitwise repeatably, with
//! identical weights on every rank, and a dying rank ends the whole job promptly.
//!
//! Run with `cargo test --release --features mpi --test mpi`; Open MPI must be installed
//! (`.ci/run` installs it and, since CI runs as root, sets Open MPI's allow-run-as-root
//! variables).
#![cfg(feature = "mpi")]

mod cli_util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli_util::{dir, fails, ok, s, small_text};
use wgrnn::checkpoint::Checkpoint;
use wgrnn::compare;
use wgrnn::ParamLayout;

fn mpirun(np: usize, args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    // --quiet: no launcher banners, so a failing rank's stderr is its own one line
    c.args(["-np", &np.to_string(), "--oversubscribe", "--quiet"]);
    c.arg(env!("CARGO_BIN_EXE_wgrnn")).args(args);
    let xdg = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into());
    c.env("XDG_RUNTIME_DIR", xdg);
    c
}

fn run(np: usize, args: &[&str]) -> Output {
    mpirun(np, args).output().expect("mpirun runs (install openmpi-bin)")
}

/// Train arguments of a small character model on `dir/text.txt`, writing `out` and `log`.
fn train_args(dir: &Path, device: &str, out: &Path, log: &Path, steps: &str) -> Vec<String> {
    let data = dir.join("text.txt");
    if !data.exists() {
        std::fs::write(&data, small_text()).expect("write the corpus");
    }
    [
        "train",
        "--data",
        s(&data),
        "--hidden",
        "24",
        "--layers",
        "2",
        "--steps",
        steps,
        "--batch",
        "8",
        "--seq-len",
        "12",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--eval-every",
        "5",
        "--val-batches",
        "2",
        "--sample-every",
        "0",
        "--device",
        device,
        "--quiet",
        "--out",
        s(out),
        "--log",
        s(log),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn train(np: usize, dir: &Path, device: &str, tag: &str) -> (PathBuf, Vec<f64>) {
    let (out, log) = (dir.join(format!("{tag}.safetensors")), dir.join(format!("{tag}.jsonl")));
    let args = train_args(dir, device, &out, &log, "20");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&run(np, &args));
    let losses = std::fs::read_to_string(&log)
        .expect("rank 0 writes the log")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["type"] == "train")
        .map(|v| v["loss"].as_f64().expect("a loss"))
        .collect();
    (out, losses)
}

/// The loss curve and the weights of -np 2 against -np 1 with the same global batch.
fn two_ranks_match_one(device: &str) {
    let d = dir(&format!("mpi-match-{device}"));
    let (one, l1) = train(1, &d, device, "np1");
    let (two, l2) = train(2, &d, device, "np2");
    assert_eq!(l1.len(), 20, "a loss per step");
    assert_eq!(l1.len(), l2.len());
    for (k, (a, b)) in l2.iter().zip(&l1).enumerate() {
        let diff = compare::loss(format!("loss at step {}", k + 1), *a as f32, *b as f32);
        assert!(diff.ok, "{device}: {diff}");
    }
    let (c1, c2) = (Checkpoint::load(&one).unwrap(), Checkpoint::load(&two).unwrap());
    assert_eq!(c1.step, 20);
    assert_eq!(c2.step, 20);
    let layout = ParamLayout::new(&c1.config);
    for diff in compare::buffer("weight", &layout, &c2.params, &c1.params) {
        assert!(diff.ok, "{device}: {diff}");
    }
}

#[test]
fn cpu_two_ranks_match_one_big_batch() {
    two_ranks_match_one("cpu");
}

#[test]
fn gpu_two_ranks_match_one_big_batch() {
    two_ranks_match_one("gpu");
}

#[test]
fn two_ranks_are_bitwise_repeatable_and_agree_every_step() {
    let d = dir("mpi-repeat");
    let out = |tag: &str| d.join(format!("{tag}.safetensors"));
    for tag in ["a", "b"] {
        let args = train_args(&d, "cpu", &out(tag), &d.join(format!("{tag}.jsonl")), "12");
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        // a validation every step: the ranks compare parameter checksums at each one
        let at = args.iter().position(|a| *a == "--eval-every").unwrap();
        args[at + 1] = "1";
        ok(&run(2, &args));
    }
    let (a, b) = (std::fs::read(out("a")).unwrap(), std::fs::read(out("b")).unwrap());
    assert!(a == b, "two identical -np 2 runs wrote different checkpoints");
}

#[test]
fn a_batch_that_does_not_divide_is_one_error() {
    let d = dir("mpi-divide");
    let args = train_args(&d, "cpu", &d.join("m.safetensors"), &d.join("m.jsonl"), "4");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let at = args.iter().position(|a| *a == "--batch").unwrap();
    args[at + 1] = "7";
    fails(&run(2, &args), &["batch", "7", "2 MPI ranks"]);
    assert!(!d.join("m.safetensors").exists());
}

#[test]
fn stateful_training_is_refused() {
    let d = dir("mpi-stateful");
    let args = train_args(&d, "cpu", &d.join("m.safetensors"), &d.join("m.jsonl"), "4");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--stateful");
    fails(&run(2, &args), &["stateful", "MPI"]);
}

/// The rank processes mpirun started, with their world rank.
fn ranks(mpirun: u32) -> Vec<(u32, usize)> {
    let children = std::fs::read_to_string(format!("/proc/{mpirun}/task/{mpirun}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let rank = env
                .split(|&b| b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok())
                .find_map(|kv| kv.strip_prefix("OMPI_COMM_WORLD_RANK="))?
                .parse()
                .ok()?;
            Some((pid, rank))
        })
        .collect()
}

#[test]
fn a_killed_rank_ends_the_job_and_the_checkpoint_survives() {
    let d = dir("mpi-kill");
    let out = d.join("m.safetensors");
    let args = train_args(&d, "cpu", &out, &d.join("m.jsonl"), "100000000");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut job = mpirun(2, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mpirun starts");
    let start = Instant::now();
    while !out.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint after 120 s");
        assert!(
            job.try_wait().unwrap().is_none(),
            "the job ended before its first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let victim = ranks(job.id())
        .into_iter()
        .find(|&(_, r)| r == 1)
        .expect("rank 1 is a child of mpirun");
    Command::new("kill")
        .args(["-KILL", &victim.0.to_string()])
        .status()
        .unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(st) = job.try_wait().unwrap() {
            break st;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the job outlived a dead rank by 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "mpirun reported success after a rank died");
    let ck = Checkpoint::load(&out).expect("the last checkpoint still loads");
    assert!(ck.step >= 5);
}

#[test]
fn ctrl_c_on_mpirun_saves_once_from_rank_0() {
    let d = dir("mpi-interrupt");
    let (out, log) = (d.join("m.safetensors"), d.join("m.jsonl"));
    let args = train_args(&d, "cpu", &out, &log, "100000000");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    // no validation before the interrupt: the only checkpoint is the one Ctrl-C writes
    let at = args.iter().position(|a| *a == "--eval-every").unwrap();
    args[at + 1] = "100000000";
    let mut job = mpirun(2, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mpirun starts");
    let start = Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |l| l.lines().count()) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no training steps after 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!out.exists(), "a checkpoint before the interrupt");
    Command::new("kill")
        .args(["-INT", &job.id().to_string()])
        .status()
        .unwrap();
    let sent = Instant::now();
    while job.try_wait().unwrap().is_none() {
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "the job outlived Ctrl-C by 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ck = Checkpoint::load(&out).expect("rank 0 saved on the interrupt");
    assert!(ck.step >= 5, "saved at step {}", ck.step);
}

#[test]
fn one_ranks_own_failure_is_reported_by_that_rank() {
    // each rank in its own directory; the data exists only in rank 0's, as a file missing
    // on one node would be
    let d = dir("mpi-local-failure");
    for r in ["r0", "r1"] {
        std::fs::create_dir_all(d.join(r)).unwrap();
    }
    std::fs::write(d.join("r0/d.txt"), small_text()).unwrap();
    let wrap = d.join("wrap.sh");
    std::fs::write(
        &wrap,
        format!(
            "cd {}/r$OMPI_COMM_WORLD_RANK && exec {} \"$@\"\n",
            s(&d),
            env!("CARGO_BIN_EXE_wgrnn")
        ),
    )
    .unwrap();
    let out = d.join("m.safetensors");
    let mut c = Command::new("mpirun");
    c.args(["-np", "2", "--oversubscribe", "--quiet", "sh", s(&wrap)]);
    c.args([
        "train",
        "--data",
        "d.txt",
        "--steps",
        "4",
        "--hidden",
        "8",
        "--batch",
        "4",
        "--seq-len",
        "8",
    ]);
    c.args(["--device", "cpu", "--quiet", "--out", s(&out)]);
    let o = c.output().expect("mpirun runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("error: rank 1:") && stderr.contains("d.txt"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn inference_benchmarks_are_refused_once() {
    let out = run(
        2,
        &[
            "bench",
            "--device",
            "cpu",
            "--hidden",
            "8",
            "--batch",
            "4",
            "--seq-len",
            "8",
            "--steps",
            "1",
            "--infer",
        ],
    );
    fails(&out, &["--infer is not split", "2 MPI ranks"]);
}
