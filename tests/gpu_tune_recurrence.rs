//! The tuner's recurrence choice (issue 10): every candidate (the per-step chain with each
//! step kernel, the whole-sequence kernels with each block) trains like the CPU path and bit
//! for bit like every other; a class is timed once, then read from the cache, which
//! survives corruption, another adapter and concurrent writers; `--tune off` keeps the
//! device's fixed choice; WGRNN_STEP forces the step kernels.

mod cli_util;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cli_util::{bin, ok};
use wgrnn::compare::cross_check;
use wgrnn::gpu::kernels::Recurrence;
use wgrnn::gpu::tune::{all_candidates, RecChoice, RecClass, TuneMode, Tuner};
use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{random_batch, CpuEngine, Engine, Input, ModelConfig, OptimConfig, OptimKind, ParamLayout, SeqShape};

fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tune-rec-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options(mode: TuneMode, cache: &Path) -> GpuOptions {
    GpuOptions {
        tune: Some(mode.to_string()),
        cache_dir: Some(cache.to_path_buf()),
        recurrence: None,
        step: None,
        ..GpuOptions::from_env()
    }
}

/// A tuner of the shared device with its cache in `cache`.
fn tuner(mode: TuneMode, cache: &Path) -> Tuner {
    let c = ctx();
    Tuner::new(&c, &c.kernels().unwrap(), &options(mode, cache)).unwrap()
}

/// The recurrence `t` picks for `b` sequences of `h` units.
fn pick(t: &Tuner, b: usize, h: usize) -> RecChoice {
    let c = ctx();
    t.recurrence(&c, &c.kernels().unwrap(), b, h).unwrap()
}

fn class(b: usize, h: usize) -> String {
    RecClass::of(&ctx().kernels().unwrap(), b, h).name()
}

fn cache_json(d: &Path) -> serde_json::Value {
    let bytes = std::fs::read(d.join("tune.json")).expect("the cache file exists");
    serde_json::from_slice(&bytes).expect("the cache file is whole JSON")
}

/// This adapter's recurrence entries in the cache file.
fn entries(d: &Path) -> serde_json::Map<String, serde_json::Value> {
    let v = cache_json(d);
    let ours = v["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"]["adapter"] == ctx().info.name.as_str())
        .expect("an entry for this adapter");
    ours["recurrence"].as_object().unwrap().clone()
}

/// Two models that use every path of the recurrence: token inputs read in the step (two
/// layers, bidirectional), and dense many-to-one inputs with sizes that fill no block.
fn models() -> [(ModelConfig, usize, usize); 2] {
    let mut lm = ModelConfig::char_lm(11, 21, 2);
    lm.bidirectional = true;
    let mut dense = ModelConfig::char_lm(1, 37, 1);
    dense.input = Input::Dense { size: 5 };
    dense.output = 3;
    dense.head = wgrnn::Head::Linear;
    dense.seq = SeqShape::ManyToOne;
    [(lm, 7, 5), (dense, 18, 4)]
}

fn adam() -> OptimConfig {
    OptimConfig::new(
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        1e-2,
    )
}

/// Trains `gpu` on three batches beside the CPU path (SPEC §5) and returns its weights.
fn train_like_cpu(gpu: &mut GpuEngine, cfg: ModelConfig, b: usize, t: usize, what: &str) -> Vec<f32> {
    let params = ParamLayout::new(&cfg).init(&cfg, 3);
    let mut cpu = CpuEngine::new(cfg, adam(), params).unwrap();
    let batches: Vec<_> = (0..3).map(|k| random_batch(&cfg, b, t, false, 10 + k)).collect();
    for d in cross_check(&mut cpu, gpu, &batches).unwrap() {
        assert!(d.ok, "{cfg} with {what}: {d}");
    }
    gpu.params().unwrap()
}

fn engine(ctx: Arc<GpuContext>, cfg: ModelConfig) -> GpuEngine {
    let params = ParamLayout::new(&cfg).init(&cfg, 3);
    GpuEngine::new(ctx, cfg, adam(), params).unwrap()
}

#[test]
fn every_candidate_trains_like_the_cpu_and_like_the_others() {
    let kernels = ctx().kernels().unwrap();
    let cands = all_candidates(&kernels);
    let kinds = |k| cands.iter().filter(|c| c.plan.kind == k).count();
    assert_eq!(kinds(Recurrence::Step), kernels.steps().len(), "{cands:?}");
    assert!(
        kinds(Recurrence::Seq) >= 2 && kinds(Recurrence::SeqDirect) >= 2,
        "{cands:?}"
    );
    // the tuner's own choice, and each step kernel forced through the options
    let tuned = options(TuneMode::Quick, &dir("train"));
    let forced = kernels.steps().into_iter().map(|s| GpuOptions {
        step: Some(s.to_string()),
        ..tuned.clone()
    });
    let contexts: Vec<_> = std::iter::once(tuned.clone())
        .chain(forced)
        .map(|o| GpuContext::new(&o).unwrap())
        .collect();
    for (cfg, b, t) in models() {
        let mut first: Option<(RecChoice, Vec<f32>)> = None;
        for c in &cands {
            let mut gpu = engine(ctx(), cfg);
            gpu.set_recurrence(c.plan).unwrap();
            gpu.set_step_kernel(c.step).unwrap();
            assert_eq!(gpu.recurrence(b).unwrap(), *c);
            let w = train_like_cpu(&mut gpu, cfg, b, t, &c.to_string());
            match &first {
                None => first = Some((*c, w)),
                Some((c0, w0)) => assert!(*w0 == w, "{cfg}: the weights after {c0} and {c} differ"),
            }
        }
        let w0 = &first.unwrap().1;
        for ctx in &contexts {
            let mut gpu = engine(ctx.clone(), cfg);
            let what = format!("the tuner, WGRNN_STEP {:?}", ctx.options.step);
            assert!(*w0 == train_like_cpu(&mut gpu, cfg, b, t, &what), "{cfg}: {what}");
            if let Some(s) = &ctx.options.step {
                let c = gpu.recurrence(b).unwrap();
                assert_eq!((c.plan.kind, c.step.to_string()), (Recurrence::Step, s.clone()));
            }
        }
    }
}

#[test]
fn a_class_is_timed_once_then_read_from_the_cache() {
    let d = dir("once");
    let t = tuner(TuneMode::Quick, &d);
    let c = pick(&t, 5, 12);
    // the same batch again, and another shape of the same class: no timing
    assert_eq!(pick(&t, 5, 12), c);
    assert_eq!(pick(&t, 7, 13), c);
    assert_eq!(t.timed(), 1);
    let e = &entries(&d)[&class(5, 12)];
    assert_eq!(e["kernel"], c.to_string());
    assert_eq!(e["mode"], "quick");
    let timed = e["us"].as_object().unwrap();
    assert!(timed.len() >= 4 && timed.contains_key("seq:4"), "{e}");
    assert_eq!(
        t.report(&ctx().kernels().unwrap()).recurrence[&class(5, 12)],
        c.to_string()
    );
    // a new process (a new tuner) finds it
    let again = tuner(TuneMode::Quick, &d);
    assert_eq!(pick(&again, 5, 12), c);
    assert_eq!(again.timed(), 0);
    // a full run does not take a quick run's choice
    let full = tuner(TuneMode::Full, &d);
    pick(&full, 5, 12);
    assert_eq!(full.timed(), 1);
    assert_eq!(entries(&d)[&class(5, 12)]["mode"], "full");
}

#[test]
fn a_corrupt_cache_or_an_unknown_choice_is_timed_again() {
    let d = dir("corrupt");
    for junk in [
        &b"{\"format\": 1, \"adapters\": [{\"key\""[..],
        b"\xff\xfe not json",
        b"",
    ] {
        std::fs::write(d.join("tune.json"), junk).unwrap();
        let t = tuner(TuneMode::Quick, &d);
        pick(&t, 3, 6);
        assert_eq!(t.timed(), 1, "after {junk:?}");
        assert!(entries(&d).contains_key(&class(3, 6)));
    }
    // a choice this build does not know (a kernel since removed): timed again
    let mut v = cache_json(&d);
    v["adapters"][0]["recurrence"][class(3, 6)]["kernel"] = "step:warp9".into();
    std::fs::write(d.join("tune.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let t = tuner(TuneMode::Quick, &d);
    pick(&t, 3, 6);
    assert_eq!(t.timed(), 1);
    assert_ne!(entries(&d)[&class(3, 6)]["kernel"], "step:warp9");
}

#[test]
fn another_adapter_or_version_is_timed_again() {
    let d = dir("adapter");
    pick(&tuner(TuneMode::Quick, &d), 4, 4);
    let mut v = cache_json(&d);
    let ours = v["adapters"][0].clone();
    let mut other = ours.clone();
    other["key"]["adapter"] = "Some Other GPU".into();
    let mut old = ours.clone();
    old["key"]["wgrnn"] = "0.0.1".into();
    v["adapters"] = serde_json::json!([other, old]);
    std::fs::write(d.join("tune.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let t = tuner(TuneMode::Quick, &d);
    pick(&t, 4, 4);
    assert_eq!(t.timed(), 1, "another adapter's or version's choice was used");
    let adapters = cache_json(&d)["adapters"].as_array().unwrap().len();
    assert_eq!(adapters, 2, "the other adapter's entry stays, the old version's goes");
}

#[test]
fn concurrent_writers_leave_a_whole_file() {
    let d = dir("concurrent");
    std::thread::scope(|sc| {
        for i in 0..4usize {
            let d = &d;
            sc.spawn(move || {
                let t = tuner(TuneMode::Quick, d);
                for j in 0..2usize {
                    pick(&t, 1 << i, 4 << j);
                }
            });
        }
    });
    let kernels = ctx().kernels().unwrap();
    let e = entries(&d);
    assert!(!e.is_empty());
    for v in e.values() {
        let c = v["kernel"].as_str().unwrap();
        assert!(RecChoice::parse(c, &kernels).is_some(), "{v}");
    }
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["tune.json"], "{names:?}");
}

#[test]
fn off_keeps_the_fixed_choice_and_forcing_times_nothing() {
    let d = dir("off");
    let kernels = ctx().kernels().unwrap();
    let off = tuner(TuneMode::Off, &d);
    let c = pick(&off, 128, 256);
    assert_eq!(c, RecChoice::fixed(&kernels));
    assert_eq!((c.plan, c.step), (kernels.recurrence, kernels.step));
    if ctx().is_software() {
        assert_eq!(c.to_string(), format!("step:{}", kernels.step), "lavapipe's choice");
    }
    // a step kernel forced: the per-step chain with it, in any mode
    let plain = GpuOptions {
        step: Some("plain".into()),
        ..options(TuneMode::Full, &d)
    };
    let forced = Tuner::new(&ctx(), &kernels, &plain).unwrap();
    assert_eq!(pick(&forced, 128, 256).to_string(), "step:plain");
    let seq = GpuOptions {
        recurrence: Some("seq-direct:16".into()),
        ..options(TuneMode::Quick, &d)
    };
    let forced_seq = Tuner::new(&ctx(), &kernels, &seq).unwrap();
    assert_eq!(pick(&forced_seq, 128, 256).to_string(), "seq-direct:16");
    assert_eq!(off.timed() + forced.timed() + forced_seq.timed(), 0);
    assert!(std::fs::read_dir(&d).unwrap().next().is_none(), "a file was written");
    // a step kernel that does not exist is one line naming the variable and the choices
    let bad = GpuOptions {
        step: Some("warp9".into()),
        ..options(TuneMode::Quick, &d)
    };
    let err = Tuner::new(&ctx(), &kernels, &bad)
        .err()
        .expect("not a step kernel")
        .to_string();
    assert!(
        err.contains("WGRNN_STEP") && err.contains("plain") && !err.contains('\n'),
        "{err}"
    );
}

/// The command line: `bench --json` reports the recurrence of each class under quick, the
/// fixed one under `--tune off`; a bad WGRNN_STEP is an error.
#[test]
fn cli_reports_the_recurrence() {
    let d = dir("cli");
    let bench = |tune: &str, step: Option<&str>| {
        let mut c = bin();
        c.env("WGRNN_CACHE_DIR", &d)
            .env_remove("WGRNN_TUNE")
            .env_remove("WGRNN_RECURRENCE")
            .env_remove("WGRNN_STEP");
        if let Some(s) = step {
            c.env("WGRNN_STEP", s);
        }
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
        c.args(["--steps", "1", "--warmup", "0", "--json", "--tune", tune]);
        c.output().unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&ok(&bench("off", None))).unwrap();
    assert_eq!(v["kernels"]["recurrence_tune"], "off");
    let kernels = ctx().kernels().unwrap();
    let fixed = RecChoice::fixed(&kernels).resolved(&kernels, 2, 8).to_string();
    assert_eq!(v["recurrence"], fixed.as_str());
    let v: serde_json::Value = serde_json::from_str(&ok(&bench("quick", None))).unwrap();
    let classes = v["kernels"]["recurrence"].as_object().unwrap();
    assert_eq!(classes[&class(2, 8)], v["recurrence"], "{v}");
    assert!(entries(&d).contains_key(&class(2, 8)));
    let v: serde_json::Value = serde_json::from_str(&ok(&bench("quick", Some("plain")))).unwrap();
    assert_eq!(v["recurrence"], "step:plain");
    assert_eq!(v["kernels"]["step_forward"], "rnn_step_forward");
    let out = bench("quick", Some("warp9"));
    cli_util::fails(&out, &["WGRNN_STEP", "plain"]);
    let info = ok(&bin().env("WGRNN_CACHE_DIR", &d).arg("info").output().unwrap());
    assert!(info.contains("recurrence") && info.contains("seq:4"), "{info}");
}
