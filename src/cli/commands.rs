//! `sample`, `eval`, `check`, `grad`, `export`, `info`.

use super::{CheckArgs, EvalArgs, ExportArgs, GradArgs, SampleArgs};
use wgrnn::batch_file::{read_batch_file, write_grads};
use wgrnn::checkpoint::{check_data_fingerprint, Checkpoint};
use wgrnn::compare::cross_check;
use wgrnn::data::{DataSpec, Dataset, TokenKind, Tokenizer};
use wgrnn::device::{make_engine, select_device, Device, DeviceChoice, Fallback};
use wgrnn::engine::{Engine, EngineKind};
use wgrnn::fsio::{OutputLock, Paths};
use wgrnn::gpu::kernels::MatmulKernel;
use wgrnn::gpu::tune::{TuneMode, Tuner};
use wgrnn::gpu::{list_adapters, GpuContext, GpuEngine, GpuOptions};
use wgrnn::train::{
    check_batch_and_seq_len, check_host_memory, check_sampleable, evaluate, preflight, sample_stream, Sampling,
};
use wgrnn::{random_batch, Batch, CpuEngine, Error, Head, Input, ModelConfig, ParamLayout, Result, SeqShape};

fn note(why: &Fallback) {
    wgrnn::fsio::stderr_line(&why.to_string());
}

fn engine_for(ck: &Checkpoint, device: DeviceChoice) -> Result<Box<dyn Engine>> {
    make_engine(
        device,
        &GpuOptions::from_env(),
        ck.config,
        ck.optim,
        ck.params.clone(),
        &mut note,
    )
}

pub fn sample(a: &SampleArgs) -> Result<()> {
    let ck = Checkpoint::load_with(&a.checkpoint, a.allow_unverified)?;
    let Some(vocab) = &ck.vocab else {
        return Err(Error::file(
            &a.checkpoint,
            "holds no vocabulary: not a language model",
            "sample a text model's checkpoint",
        ));
    };
    check_sampleable(&ck.config)?;
    let how = Sampling {
        temperature: a.temperature,
        top_k: a.top_k,
        seed: a.seed,
    };
    let mut engine = engine_for(&ck, a.device.device)?;
    // streamed: each token is written (and flushed) as it is drawn, so any --len runs in
    // constant memory and an interrupted run has printed everything drawn so far
    let mut write = |s: &str| wgrnn::fsio::stdout_write(s);
    write(&a.prime)?;
    sample_stream(engine.as_mut(), vocab, &a.prime, a.len, how, &mut write)?;
    write("\n")
}

/// The batches `eval` runs, and how to name them: the whole of `--data` read the way the
/// checkpoint's data was, or the checkpoint's own validation split.
fn eval_batches(a: &EvalArgs, ck: &Checkpoint) -> Result<(Vec<Batch<f32>>, String, usize)> {
    let tm = ck.train.as_ref();
    let (b, t) = (tm.map_or(32, |t| t.batch), tm.map_or(64, |t| t.seq_len));
    let seed = tm.map_or(1, |t| t.seed);
    // a text model written without training metadata still reads text like its vocabulary
    let untrained = ck.vocab.as_ref().map(|v| DataSpec::Text {
        path: Default::default(),
        tokens: Tokenizer::for_kind(v.kind()),
    });
    let Some(spec) = tm.map(|t| &t.data).or(untrained.as_ref()) else {
        return Err(Error::config(
            "data",
            "(none)",
            "the checkpoint names no data; pass --data FILE",
        ));
    };
    if let Some(path) = &a.data {
        let Some(spec) = spec.with_path(path) else {
            return Err(Error::file(
                path,
                "cannot be read for this checkpoint",
                "the model was trained on a synthetic task; drop --data",
            ));
        };
        let data = Dataset::load(&spec, 0.0, ck.vocab.clone())?;
        warn(&data);
        let t = data.seq_len(t);
        return Ok((data.all_batches(b, t, seed), path.display().to_string(), t));
    }
    let Some(tm) = tm else {
        return Err(Error::config(
            "data",
            "(none)",
            "the checkpoint names no data; pass --data FILE",
        ));
    };
    check_data_fingerprint(tm)?;
    let data = Dataset::load(spec, tm.val_fraction, ck.vocab.clone())?;
    let t = data.seq_len(t);
    Ok((
        data.val_batches(b, t, seed, usize::MAX),
        format!("validation split of {}", spec.name()),
        t,
    ))
}

fn warn(data: &Dataset) {
    for w in data.warnings() {
        wgrnn::fsio::stderr_line(&w);
    }
}

pub fn eval(a: &EvalArgs) -> Result<()> {
    let ck = Checkpoint::load_with(&a.checkpoint, a.allow_unverified)?;
    let b = ck.train.as_ref().map_or(32, |t| t.batch);
    let (batches, what, t) = eval_batches(a, &ck)?;
    let mut engine = engine_for(&ck, a.device.device)?;
    check_host_memory(&ck.config, b, t, engine.kind())?;
    let r = evaluate(engine.as_mut(), &batches)?
        .ok_or_else(|| Error::config("data", &what, "no complete sequence to evaluate on"))?;
    // a language model's loss is per token: nats and bits per character / word / id
    let lm = ck.vocab.as_ref().filter(|_| ck.config.seq == SeqShape::ManyToMany);
    let unit = lm.map_or("token", |v| v.unit());
    let bits = r.loss / std::f64::consts::LN_2;
    if a.json {
        let char_lm = lm.is_some_and(|v| v.kind() == TokenKind::Char);
        let v = serde_json::json!({
            "data": what,
            "loss": r.loss,
            "bits_per_char": char_lm.then_some(bits),
            "bits_per_token": lm.is_some().then_some(bits),
            "accuracy": r.accuracy,
            "mse": (ck.config.head != Head::Softmax).then_some(r.loss),
            "targets": r.targets,
        });
        say!("{v}");
    } else if lm.is_some() {
        say!(
            "{what}: {:.4} nats/{unit}, {bits:.4} bits/{unit} over {} {unit}s",
            r.loss,
            r.targets
        );
    } else if let Some(acc) = r.accuracy {
        say!(
            "{what}: loss {:.4}, accuracy {acc:.4} over {} sequences",
            r.loss,
            r.targets
        );
    } else {
        let name = if ck.config.loss == wgrnn::Loss::HalfMse {
            "half-MSE"
        } else {
            "MSE"
        };
        say!("{what}: {name} {:.6} over {} targets", r.loss, r.targets);
    }
    Ok(())
}

pub fn grad(a: &GradArgs) -> Result<()> {
    Paths::new()
        .input("--checkpoint", Some(&a.checkpoint))
        .input("--batch", Some(&a.batch))
        .output("--out", Some(&a.out))
        .check()?;
    let _lock = OutputLock::acquire("--out", &a.out)?;
    let ck = Checkpoint::load_with(&a.checkpoint, a.allow_unverified)?;
    let batch = read_batch_file(&a.batch, &ck.config)?;
    let mut engine = engine_for(&ck, a.device.device)?;
    // with dropout, the masks of the checkpoint's next update (SPEC §1)
    engine.set_optim_state(&ck.optim_state)?;
    check_host_memory(&ck.config, batch.batch, batch.steps, engine.kind())?;
    let (loss, grads) = engine.loss_and_grads(&batch, wgrnn::Want::default())?;
    write_grads(&a.out, engine.layout(), loss, &grads.params)?;
    say!(
        "loss {loss}; wrote {} gradient tensors to {}",
        engine.layout().tensors.len(),
        a.out.display()
    );
    Ok(())
}

pub fn export(a: &ExportArgs) -> Result<()> {
    let paths = Paths::new()
        .input("--checkpoint", Some(&a.checkpoint))
        .output("--out", Some(&a.out));
    let hint = "pass --force to replace it, or name another file";
    if a.force { paths } else { paths.new_only("--out", hint) }.check()?;
    let _lock = OutputLock::acquire("--out", &a.out)?;
    let ck = Checkpoint::load_with(&a.checkpoint, a.allow_unverified)?;
    let n = ck.export(&a.out, a.force)?;
    say!("wrote {n} model tensors ({}) to {}", ck.config, a.out.display());
    Ok(())
}

pub fn check(a: &CheckArgs) -> Result<bool> {
    let ma = &a.model;
    check_batch_and_seq_len(a.batch, a.seq_len)?;
    // tokens unless --input-size is given; V and O default to a small character vocabulary
    let output_size = ma.output_size.filter(|&o| o > 0);
    let input = if ma.input_size > 0 {
        Input::Dense { size: ma.input_size }
    } else {
        Input::Tokens {
            vocab: output_size.unwrap_or(65),
            embed: ma.embed(),
        }
    };
    let output = match (output_size, ma.head(), input) {
        (Some(o), _, _) => o,
        (_, Head::Softmax, Input::Tokens { vocab, .. }) => vocab,
        (_, Head::Softmax, _) => 10,
        _ => 1,
    };
    let mut cfg = ModelConfig {
        input,
        hidden: ma.hidden.unwrap_or(32),
        layers: ma.layers(),
        activation: ma.activation(),
        output,
        head: ma.head(),
        reduction: ma.reduction(),
        seq: a.seq,
        init: ma.init,
        bias: true,
        head_bias: true,
        bidirectional: false,
        dropout: Default::default(),
        loss: ma.loss(),
    };
    ma.apply_options(&mut cfg, a.seed)?;
    check_host_memory(&cfg, a.batch, a.seq_len, EngineKind::Cpu)?;
    let steps = a.steps.max(1);
    // the batches are made up front (before the GPU is set up): every step's inputs and targets (and their time-major
    // copies) for both paths
    let per_batch = (a.seq_len as u128 + 1) * a.batch as u128 * (cfg.in_width(0) + cfg.output + 1) as u128 * 8;
    preflight(
        per_batch * steps as u128,
        &format!("{steps} check steps of --batch {} --seq-len {}", a.batch, a.seq_len),
        "use fewer --steps or a smaller --batch / --seq-len",
    )?;
    let opt = a.optim.config()?;
    let params = ParamLayout::new(&cfg).init(&cfg, a.seed);
    let ctx = GpuContext::new(&a.tune.gpu_options())?;
    let device = ctx.describe();
    let mut gpu = GpuEngine::new(ctx, cfg, opt, params.clone())?;
    let mut cpu = CpuEngine::new(cfg, opt, params)?;
    let batches: Vec<_> = (0..steps)
        .map(|k| random_batch(&cfg, a.batch, a.seq_len, false, a.seed.wrapping_add(k)))
        .collect();
    let diffs = cross_check(&mut cpu, &mut gpu, &batches)?;
    let ok = diffs.iter().all(|d| d.ok);
    if a.json {
        let v = serde_json::json!({"device": device, "model": cfg.to_string(), "ok": ok, "diffs": diffs});
        say!("{v}");
    } else {
        say!(
            "check: {cfg} | B={} T={} | {steps} steps | gpu: {device}",
            a.batch,
            a.seq_len
        );
        say!(
            "{:<44} {:>12} {:>12} {:>8}  result",
            "quantity",
            "max |diff|",
            "rel diff",
            "bound"
        );
        for d in &diffs {
            let verdict = if d.ok { "ok" } else { "FAIL" };
            say!(
                "{:<44} {:>12.3e} {:>12.3e} {:>8.0e}  {verdict}",
                d.what,
                d.max_abs,
                d.rel,
                d.bound
            );
        }
        let failed = diffs.iter().filter(|d| !d.ok).count();
        say!(
            "{}",
            if ok {
                "all within SPEC §5 bounds".to_string()
            } else {
                format!("{failed} quantities out of bounds")
            }
        );
    }
    Ok(ok)
}

pub fn info() -> Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        say!("no GPU adapters found (install a Vulkan driver, e.g. apt-get install mesa-vulkan-drivers)");
    }
    for (i, a) in adapters.iter().enumerate() {
        say!(
            "adapter {i}: {} | backend {} | type {}{}",
            a.name,
            a.backend,
            a.device_type,
            if a.is_software { " (software)" } else { "" }
        );
        say!(
            "  max_storage_buffer_binding_size {} | max_buffer_size {} | max_compute_workgroup_storage_size {} | max_compute_invocations_per_workgroup {}",
            a.max_storage_buffer_binding_size, a.max_buffer_size, a.max_compute_workgroup_storage_size, a.max_compute_invocations_per_workgroup
        );
    }
    let pick = match select_device(DeviceChoice::Auto, &GpuOptions::from_env(), 0)? {
        (Device::Gpu(ctx), _) => format!("gpu ({})", ctx.describe()),
        (Device::Cpu, why) => format!("cpu ({})", why.map(|w| w.reason()).unwrap_or_default()),
    };
    say!("--device auto picks: {pick}");
    if !adapters.is_empty() {
        kernels_info()?;
    }
    say!(
        "cpu path: {} threads available",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}

/// The kernels the GPU path runs on the adapter `--device gpu` opens: the fixed choices,
/// the tuner's candidates and clock, and the choices cached for this adapter. Nothing is
/// timed.
fn kernels_info() -> Result<()> {
    let mut opts = GpuOptions::from_env();
    // the command line's default, so that the report names the cache the commands use
    opts.tune.get_or_insert_with(|| TuneMode::Quick.to_string());
    let report = GpuContext::new(&opts).and_then(|ctx| {
        let kernels = ctx.kernels()?;
        let r = Tuner::new(&ctx, &kernels, &opts)?.report(&kernels);
        Ok((ctx.describe(), r, kernels.recurrence, kernels.step))
    });
    let (device, r, plan, step) = match report {
        Ok(v) => v,
        Err(e) => {
            say!("kernels: the GPU could not be opened: {e}");
            return Ok(());
        }
    };
    let names = |v: &[MatmulKernel]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    say!("kernels on {device}:");
    say!(
        "  recurrence: {plan} with step kernels {step} with --tune off; --tune quick|full times {} once per recurrence class{}",
        r.recurrence_candidates.join(", "),
        if r.recurrence_tune.starts_with("off,") { " (now forced by WGRNN_RECURRENCE / WGRNN_STEP)" } else { "" }
    );
    say!(
        "  matrix products: {} with --tune off; --tune quick|full times {} ({}) once per shape class",
        r.default,
        names(&r.candidates),
        r.clock
    );
    match &r.cache {
        Some(path) => say!(
            "  tuning cache {}: {} shape classes and {} recurrence classes chosen for this adapter{}",
            path.display(),
            r.known.len(),
            r.recurrence_known.len(),
            if r.known.is_empty() && r.recurrence_known.is_empty() {
                ""
            } else {
                ":"
            }
        ),
        None => say!(
            "  tuning cache: none (tune {}; no cache directory, or every choice forced)",
            r.tune
        ),
    }
    for (class, k) in &r.known {
        say!("    {class}: {k}");
    }
    for (class, c) in &r.recurrence_known {
        say!("    recurrence {class}: {c}");
    }
    Ok(())
}
