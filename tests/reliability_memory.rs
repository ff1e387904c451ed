//! Sizes that cannot work (issue classes 3, 6, 9): wrapped size products, allocations beyond
//! the memory available, a header of very many tensors, unbounded sample lengths. Each
//! oversized command fails with one line and a hint, no signal death, and its peak resident
//! memory stays under 100 MB: the refusal happens before the allocation.

mod cli_util;
use cli_util::*;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const PEAK_LIMIT_MB: f64 = 100.0;

/// Runs the binary to completion and returns its output and peak resident memory in MiB,
/// from the rusage the kernel reports for exactly this child in wait4.
// the child is reaped by wait4 below, which clippy does not see
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&str]) -> (Output, f64) {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the wgrnn binary runs");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).expect("read the child's output");
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain out-parameters for one known child of this process; `child` is not waited
    // on elsewhere, so its pid cannot have been reused.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    // ru_maxrss is in KiB on Linux
    (output, usage.ru_maxrss as f64 / 1024.0)
}

/// One line, no signal, and a small peak.
fn refused(args: &[&str], needles: &[&str]) {
    let (o, peak) = run_measured(args);
    assert!(
        o.status.signal().is_none(),
        "{args:?} died of signal {:?}",
        o.status.signal()
    );
    fails(&o, needles);
    assert!(peak < PEAK_LIMIT_MB, "{args:?} peaked at {peak:.0} MiB before refusing");
}

#[test]
fn wrapped_size_products() {
    refused(
        &["bench", "--gemm", "4294967296", "--device", "cpu"],
        &["4294967296 × 4294967296", "use smaller sizes"],
    );
    refused(
        &["bench", "--gemm", "18446744073709551615", "--device", "cpu"],
        &["--gemm", "use smaller sizes"],
    );
    refused(
        &["bench", "--gemm", "4294967296", "--device", "gpu"],
        &["4294967296", "use smaller sizes"],
    );
}

#[test]
fn allocations_beyond_memory() {
    let d = dir("mem-sizes");
    let out = d.join("m.safetensors");
    let out = s(&out);
    refused(
        &["bench", "--gemm", "1000000", "--device", "cpu"],
        &["host memory", "--gemm"],
    );
    refused(
        &["bench", "--batch", "16000000", "--device", "cpu"],
        &["host memory", "--batch"],
    );
    refused(
        &["bench", "--steps", "4611686018427387904", "--device", "cpu"],
        &["host memory", "--steps"],
    );
    refused(
        &[
            "train", "--hidden", "40000", "--steps", "1", "--device", "cpu", "--out", out,
        ],
        &["host memory", "--hidden"],
    );
    refused(
        &[
            "train",
            "--sample-len",
            "1000000000000",
            "--sample-every",
            "1",
            "--steps",
            "1",
            "--device",
            "cpu",
            "--out",
            out,
        ],
        &["host memory", "--sample-len"],
    );
    refused(&["check", "--steps", "1000000000000"], &["host memory", "--steps"]);
}

/// A 48 MB header of 800k zero-size tensors is refused at the first tensor past what a
/// checkpoint can hold, without parsing the rest.
#[test]
fn many_tensor_checkpoint_rejected_fast() {
    let d = dir("mem-tensors");
    let mut header = String::from("{");
    for i in 0..800_000 {
        header += &format!("\"t{i}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}},");
    }
    header += "\"__metadata__\":{\"format\":\"wgrnn-checkpoint-1\"}}";
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    let ck = d.join("many.safetensors");
    std::fs::write(&ck, &bytes).unwrap();
    let start = Instant::now();
    refused(
        &["eval", "--checkpoint", s(&ck), "--device", "cpu"],
        &["more than", "tensors", "hint"],
    );
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
}

/// `sample --len N` writes characters as it draws them: output arrives at once and memory
/// does not grow with N (1e12 and 2^62 used to abort or panic allocating N up front).
#[test]
fn sample_streams_any_length() {
    let d = dir("mem-sample");
    let m = tiny_text_model(&d, &[]);
    for len in ["1000000000000", "4611686018427387904"] {
        let mut child = bin()
            .args(["sample", "--checkpoint", s(&m), "--len", len, "--device", "cpu"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = vec![0u8; 2000];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .expect("characters arrive as drawn");
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let rss_kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(rss_kb / 1024.0 < PEAK_LIMIT_MB, "--len {len}: {rss_kb} KiB");
    }
}
