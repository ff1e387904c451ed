//! benches/gpu-suite.sh at its smoke size, so the suite meant for real GPUs never rots: every
//! part runs, every line it writes is JSON of the expected shape, and the summary is printed.

use std::path::Path;
use std::process::Command;

#[test]
fn gpu_suite_smoke_runs_every_part() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpu-suite-smoke");
    let _ = std::fs::remove_dir_all(&out);
    let xdg = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into());
    let run = Command::new("bash")
        .arg(root.join("benches/gpu-suite.sh"))
        .arg("--smoke")
        .arg("--out")
        .arg(&out)
        .env("WGRNN", env!("CARGO_BIN_EXE_wgrnn"))
        .env("WGRNN_CACHE_DIR", out.join("cache"))
        .env("XDG_RUNTIME_DIR", xdg)
        .env_remove("WGRNN_TUNE")
        .env_remove("WGRNN_MATMUL")
        .output()
        .expect("bash runs the suite");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the suite failed:\n{stdout}\n{stderr}");
    for needle in ["kernels on", "best GEMM", "tuned/off", "configurations within bounds"] {
        assert!(stdout.contains(needle), "the summary lacks {needle:?}:\n{stdout}");
    }
    let lines = std::fs::read_to_string(out.join("suite.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let count = |part: &str| rows.iter().filter(|r| r["part"] == part).count();
    assert_eq!((count("check"), count("gemm"), count("workload")), (1, 1, 8), "{lines}");
    for r in &rows {
        match r["part"].as_str().unwrap() {
            "check" => assert_eq!(r["result"]["ok"], true, "{r}"),
            // every kernel the adapter runs, the naive reference first
            "gemm" => assert_eq!(r["result"][0]["kernel"], "naive", "{r}"),
            _ => {
                let res = &r["result"];
                assert!(res["tokens_per_s"].as_f64().unwrap() > 0.0, "{r}");
                assert!(res["dispatches_per_step"].as_u64().unwrap() > 0, "{r}");
                assert_eq!(res["kernels"]["tune"], r["tune"], "{r}");
            }
        }
    }
}
