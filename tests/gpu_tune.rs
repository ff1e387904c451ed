//! The matrix-product candidates and the autotuner (issue 10): every candidate, forced for
//! every product, trains like the CPU path and bit for bit like every other candidate; the
//! tuner's cache survives corruption, another adapter and concurrent writers; `--tune off`
//! times nothing and writes nothing.

mod cli_util;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cli_util::{bin, fails, ok, s};
use wgrnn::compare::cross_check;
use wgrnn::gpu::kernels::params::MatmulP;
use wgrnn::gpu::kernels::{mat, matmul, Acc, MatmulKernel};
use wgrnn::gpu::tune::{median_time, Clock, ShapeClass, TuneMode, Tuner};
use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{random_batch, CpuEngine, Engine, Input, ModelConfig, OptimConfig, OptimKind, ParamLayout, SeqShape};

fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tune-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tuner of the shared device with its cache in `cache`.
fn tuner(mode: TuneMode, cache: &Path) -> Tuner {
    let c = ctx();
    let opts = GpuOptions {
        tune: Some(mode.to_string()),
        cache_dir: Some(cache.to_path_buf()),
        ..GpuOptions::default()
    };
    Tuner::new(&c, &c.kernels().unwrap(), &opts).unwrap()
}

/// A small product of sizes (m, n, k), B stored transposed.
fn product(m: u32, n: u32, k: u32) -> MatmulP {
    MatmulP {
        m,
        n,
        k,
        tb: 1,
        ..MatmulP::default()
    }
}

fn pick(t: &Tuner, p: &MatmulP) -> MatmulKernel {
    let c = ctx();
    t.pick(&c, &c.kernels().unwrap(), p).unwrap()
}

fn cache_json(d: &Path) -> serde_json::Value {
    let bytes = std::fs::read(d.join("tune.json")).expect("the cache file exists");
    serde_json::from_slice(&bytes).expect("the cache file is whole JSON")
}

/// This adapter's entries in the cache file.
fn entries(d: &Path) -> serde_json::Map<String, serde_json::Value> {
    let v = cache_json(d);
    let ours = v["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"]["adapter"] == ctx().info.name.as_str())
        .expect("an entry for this adapter");
    ours["matmul"].as_object().unwrap().clone()
}

/// Two configurations that use every kind of product the schedule has (input projection
/// and its weight gradient, head, dh through W_ih and W_hh, dx, stacked layers), with sizes
/// that fill no tile: per candidate, the CPU comparison of `wgrnn check` and the bits of
/// every other candidate.
#[test]
fn every_candidate_trains_like_the_cpu_and_like_the_others() {
    let mut lm = ModelConfig::char_lm(13, 37, 2);
    lm.input = Input::Tokens {
        vocab: 13,
        embed: Some(6),
    };
    let mut dense = ModelConfig::char_lm(1, 19, 1);
    dense.input = Input::Dense { size: 5 };
    dense.output = 3;
    dense.head = wgrnn::Head::Linear;
    dense.seq = SeqShape::ManyToOne;
    let opt = OptimConfig::new(
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        1e-2,
    );
    for (cfg, b, t) in [(lm, 5, 7), (dense, 9, 4)] {
        let params = ParamLayout::new(&cfg).init(&cfg, 3);
        let batches: Vec<_> = (0..3).map(|k| random_batch(&cfg, b, t, false, 10 + k)).collect();
        let mut first: Option<(MatmulKernel, Vec<f32>)> = None;
        for k in ctx().kernels().unwrap().matmuls() {
            let forced = GpuContext::new(&GpuOptions {
                matmul: Some(k.to_string()),
                ..GpuOptions::from_env()
            })
            .unwrap();
            let mut gpu = GpuEngine::new(forced, cfg, opt, params.clone()).unwrap();
            let mut cpu = CpuEngine::new(cfg, opt, params.clone()).unwrap();
            for d in cross_check(&mut cpu, &mut gpu, &batches).unwrap() {
                assert!(d.ok, "{cfg} on {k}: {d}");
            }
            let report = gpu.kernel_report();
            assert!(
                !report.matmul.is_empty() && report.matmul.values().all(|&used| used == k),
                "{k}: {:?}",
                report.matmul
            );
            let w = gpu.params().unwrap();
            match &first {
                None => first = Some((k, w)),
                Some((k0, w0)) => assert!(*w0 == w, "{cfg}: the weights after {k0} and {k} differ"),
            }
        }
    }
}

#[test]
fn an_unknown_or_unavailable_forced_kernel_is_an_error() {
    let c = ctx();
    let opts = GpuOptions {
        matmul: Some("tile7".into()),
        ..GpuOptions::default()
    };
    let err = Tuner::new(&c, &c.kernels().unwrap(), &opts)
        .err()
        .expect("not a kernel");
    assert!(
        err.to_string().contains("tile7") && err.to_string().contains("tile64"),
        "{err}"
    );
    let opts = GpuOptions {
        tune: Some("fast".into()),
        ..GpuOptions::default()
    };
    let err = Tuner::new(&c, &c.kernels().unwrap(), &opts).err().expect("not a mode");
    assert!(err.to_string().contains("off | quick | full"), "{err}");
}

#[test]
fn a_class_is_timed_once_then_read_from_the_cache() {
    let d = dir("once");
    let p = product(40, 24, 33);
    let t = tuner(TuneMode::Quick, &d);
    let k = pick(&t, &p);
    // the same class again, and another product of the same class: no timing
    assert_eq!(pick(&t, &p), k);
    assert_eq!(pick(&t, &product(33, 17, 35)), k);
    assert_eq!(t.timed(), 1);
    let class = ShapeClass::of(&p).name();
    let e = &entries(&d)[&class];
    assert_eq!(e["kernel"], k.to_string());
    assert_eq!(e["mode"], "quick");
    assert!(e["us"].as_object().unwrap().len() >= 4, "{e}");
    // a new process (a new tuner) finds it
    let again = tuner(TuneMode::Quick, &d);
    assert_eq!(pick(&again, &p), k);
    assert_eq!(again.timed(), 0);
    // a full run does not take a quick run's choice, and its own then serves quick runs
    let full = tuner(TuneMode::Full, &d);
    pick(&full, &p);
    assert_eq!(full.timed(), 1);
    assert_eq!(entries(&d)[&class]["mode"], "full");
    let quick = tuner(TuneMode::Quick, &d);
    pick(&quick, &p);
    assert_eq!(quick.timed(), 0);
}

#[test]
fn a_corrupt_cache_is_timed_again_and_rewritten() {
    let d = dir("corrupt");
    let p = product(8, 8, 8);
    for junk in [
        &b"{\"format\": 1, \"adapters\": [{\"key\""[..],
        b"\xff\xfe not json",
        b"[]",
        b"",
    ] {
        std::fs::write(d.join("tune.json"), junk).unwrap();
        let t = tuner(TuneMode::Quick, &d);
        pick(&t, &p);
        assert_eq!(t.timed(), 1, "after {junk:?}");
        assert!(entries(&d).contains_key(&ShapeClass::of(&p).name()));
    }
    // a directory where the file should be: timed, not written, no error
    std::fs::remove_file(d.join("tune.json")).unwrap();
    std::fs::create_dir(d.join("tune.json")).unwrap();
    let t = tuner(TuneMode::Quick, &d);
    pick(&t, &p);
    assert_eq!(t.timed(), 1);
}

#[test]
fn another_adapter_or_version_is_timed_again() {
    let d = dir("adapter");
    let p = product(16, 16, 16);
    pick(&tuner(TuneMode::Quick, &d), &p);
    // the same file as written on another adapter, and by another wgrnn version
    let mut v = cache_json(&d);
    let ours = v["adapters"][0].clone();
    let mut other = ours.clone();
    other["key"]["adapter"] = "Some Other GPU".into();
    let mut old = ours.clone();
    old["key"]["wgrnn"] = "0.0.1".into();
    v["adapters"] = serde_json::json!([other, old]);
    std::fs::write(d.join("tune.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let t = tuner(TuneMode::Quick, &d);
    pick(&t, &p);
    assert_eq!(t.timed(), 1, "another adapter's choice was used");
    // the other adapter keeps its entry; the other version's is dropped
    let keys: Vec<_> = cache_json(&d)["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["key"]["adapter"].clone(), a["key"]["wgrnn"].clone()))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.0 == "Some Other GPU"), "{keys:?}");
    assert!(keys.iter().all(|k| k.1 != "0.0.1"), "{keys:?}");
}

#[test]
fn concurrent_writers_leave_a_whole_file() {
    let d = dir("concurrent");
    std::thread::scope(|sc| {
        for i in 0..6u32 {
            let d = &d;
            sc.spawn(move || {
                // each thread a process of its own: its own tuner, its own classes
                let t = tuner(TuneMode::Quick, d);
                for j in 0..3u32 {
                    pick(&t, &product(4 << i, 4 << j, 8));
                }
            });
        }
    });
    let e = entries(&d);
    assert!(!e.is_empty());
    for v in e.values() {
        assert!(v["kernel"].as_str().unwrap().parse::<MatmulKernel>().is_ok(), "{v}");
    }
    // no temporary file left behind
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["tune.json"], "{names:?}");
}

#[test]
fn off_and_forced_kernels_time_nothing_and_write_nothing() {
    let d = dir("off");
    let p = product(64, 64, 64);
    let c = ctx();
    let kernels = c.kernels().unwrap();
    let t = tuner(TuneMode::Off, &d);
    assert_eq!(pick(&t, &p).kernel(), kernels.matmul);
    let forced = Tuner::new(
        &c,
        &kernels,
        &GpuOptions {
            tune: Some("full".into()),
            matmul: Some("tile32".into()),
            cache_dir: Some(d.clone()),
            ..GpuOptions::default()
        },
    )
    .unwrap();
    assert_eq!(pick(&forced, &p), MatmulKernel::Tile32);
    assert_eq!(t.timed() + forced.timed(), 0);
    assert!(std::fs::read_dir(&d).unwrap().next().is_none(), "a file was written");
}

#[test]
fn both_clocks_time_a_product() {
    let c = ctx();
    let kernels = c.kernels().unwrap();
    let buf = |n| wgrnn::gpu::buffers::tensor(&c, "t", n, wgrnn::gpu::buffers::Scale::Model).unwrap();
    let (a, b, out) = (buf(64 * 64), buf(64 * 64), buf(64 * 64));
    let d = matmul(
        kernels.matmul,
        mat(&out, 0, 64, 64),
        mat(&a, 0, 64, 64),
        mat(&b, 0, 64, 64),
        Acc::Set,
    )
    .unwrap();
    let clocks = [Clock::of(&c), Clock::Wall];
    for clock in clocks {
        let t = median_time(&c, &kernels, &d, 3, clock).unwrap();
        assert!((0.0..10.0).contains(&t), "{clock:?}: {t}");
    }
}

/// The command line: `--tune off` writes no cache, the default (quick) does, `bench --json`
/// names the kernels, and a bad WGRNN_MATMUL is one error line.
#[test]
fn cli_tune_flag_and_cache() {
    let d = dir("cli");
    let bench = |tune: &[&str]| {
        let mut c = bin();
        c.env("WGRNN_CACHE_DIR", &d)
            .env_remove("WGRNN_TUNE")
            .env_remove("WGRNN_MATMUL");
        c.args([
            "bench",
            "--device",
            "gpu",
            "--hidden",
            "8",
            "--seq-len",
            "3",
            "--batch",
            "2",
        ]);
        c.args(["--steps", "1", "--warmup", "0", "--json"]).args(tune);
        c.output().unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&ok(&bench(&["--tune", "off"]))).unwrap();
    assert_eq!(v["kernels"]["tune"], "off");
    assert!(!d.join("tune.json").exists(), "--tune off wrote the cache");
    let v: serde_json::Value = serde_json::from_str(&ok(&bench(&[]))).unwrap();
    assert_eq!(v["kernels"]["tune"], "quick");
    assert!(!v["kernels"]["matmul"].as_object().unwrap().is_empty(), "{v}");
    assert!(!entries(&d).is_empty());
    let out = bin()
        .env("WGRNN_MATMUL", "tile7")
        .args([
            "bench",
            "--device",
            "gpu",
            "--hidden",
            "8",
            "--seq-len",
            "3",
            "--batch",
            "2",
            "--steps",
            "1",
        ])
        .output()
        .unwrap();
    fails(&out, &["tile7", "tile64"]);
    let out = bin().env("WGRNN_CACHE_DIR", &d).arg("info").output().unwrap();
    let info = ok(&out);
    assert!(
        info.contains(s(&d.join("tune.json"))) && info.contains("--tune off"),
        "{info}"
    );
}
