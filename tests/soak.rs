//! Long runs: train for minutes on each path with frequent checkpointing, validation and
//! sampling, and check that resident memory stays flat and that every checkpoint written
//! loads. Not part of the default test run:
//!
//!     cargo test --release --test soak -- --ignored --nocapture
//!
//! WGRNN_SOAK_SECS sets the seconds per path (default 300: ten minutes in all).

mod cli_util;
use cli_util::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use wgrnn::checkpoint::Checkpoint;

/// VmRSS and VmHWM of a process in KiB.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

struct Report {
    steps: u64,
    checkpoints: usize,
    rss_start: u64,
    rss_end: u64,
    hwm_end: u64,
}

/// `every`: validate and checkpoint every this many steps (the software GPU adapter is slow).
fn soak(device: &str, secs: u64, every: u64) -> Report {
    let d = dir(&format!("soak-{device}"));
    let (out, log) = (d.join("m.safetensors"), d.join("log.jsonl"));
    let mut child = bin()
        .args([
            "train",
            "--steps",
            "100000000",
            "--hidden",
            "128",
            "--batch",
            "16",
            "--seq-len",
            "32",
            "--eval-every",
            &every.to_string(),
            "--val-batches",
            "4",
            "--sample-every",
            &(every * 5).to_string(),
            "--sample-len",
            "50",
            "--quiet",
            "--device",
            device,
            "--out",
            s(&out),
            "--log",
            s(&log),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wgrnn");
    let pid = child.id();
    let start = Instant::now();
    let mut rss = Vec::new();
    let mut hwm = 0;
    let mut last_seen: Option<SystemTime> = None;
    let mut steps_loaded: Vec<u64> = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(status) = child.try_wait().expect("poll wgrnn") {
            panic!("wgrnn stopped early ({status})");
        }
        if let Some((r, h)) = memory(pid) {
            rss.push(r);
            hwm = h;
        }
        // every new version of the checkpoint must load (writes are atomic renames, so any
        // moment is a fair one to read)
        let modified = std::fs::metadata(&out).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified != last_seen {
            last_seen = modified;
            let ck = Checkpoint::load(&out).unwrap_or_else(|e| panic!("checkpoint after {:?}: {e}", start.elapsed()));
            assert!(steps_loaded.last().is_none_or(|&s| ck.step > s), "steps go forward");
            steps_loaded.push(ck.step);
        }
    }
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    let o = child.wait_with_output().expect("wait for wgrnn");
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    let ck = Checkpoint::load(&out).expect("the final checkpoint loads");
    let logged = std::fs::read_to_string(&log).expect("the log").lines().count();
    assert!(logged as u64 >= ck.step, "one log line per step at least");

    // flat: after a warm-up of a fifth of the run, the last fifth's median RSS may exceed
    // the second fifth's by allocator noise only
    let n = rss.len();
    assert!(n >= 20, "too few samples ({n}); raise WGRNN_SOAK_SECS");
    let early = median(&rss[n / 5..2 * n / 5]);
    let late = median(&rss[4 * n / 5..]);
    let report = Report {
        steps: ck.step,
        checkpoints: steps_loaded.len(),
        rss_start: early,
        rss_end: late,
        hwm_end: hwm,
    };
    println!(
        "soak {device}: {secs} s, {} steps, {} checkpoints written, {} of them loaded (each new one seen by a \
         poll every 0.5 s), RSS {} KiB after warm-up -> {} KiB at the end, peak {} KiB",
        report.steps,
        report.steps / every,
        report.checkpoints,
        report.rss_start,
        report.rss_end,
        report.hwm_end
    );
    let allowed = early / 20 + 8 * 1024;
    assert!(
        late <= early + allowed,
        "{device}: RSS grew from {early} KiB to {late} KiB"
    );
    assert!(
        report.checkpoints >= 5,
        "{device}: only {} checkpoints seen",
        report.checkpoints
    );
    report
}

fn seconds() -> u64 {
    std::env::var("WGRNN_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[test]
#[ignore = "soak: ~10 min; run with cargo test --release --test soak -- --ignored --nocapture"]
fn soak_cpu_and_gpu() {
    let secs = seconds();
    soak("cpu", secs, 20);
    soak("gpu", secs, 5);
}
