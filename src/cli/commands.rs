//! `sample`, `eval`, `check`, `grad`, `export`, `info`.

use super::{CheckArgs, EvalArgs, ExportArgs, GradArgs, SampleArgs};
use wgrnn::batch_file::{read_batch_file, write_grads};
use wgrnn::checkpoint::{check_data_fingerprint, Checkpoint};
use wgrnn::compare::cross_check;
use wgrnn::data::text::{eval_batches, read_text};
use wgrnn::data::{CsvData, DataSpec, Dataset};
use wgrnn::device::{make_engine, select_device, Device, DeviceChoice, Fallback};
use wgrnn::engine::{Engine, EngineKind};
use wgrnn::fsio::{OutputLock, Paths};
use wgrnn::gpu::{list_adapters, GpuContext, GpuEngine, GpuOptions};
use wgrnn::train::{check_batch_and_seq_len, check_host_memory, check_sampleable, evaluate, preflight, sample_stream};
use wgrnn::{random_batch, CpuEngine, Error, Head, Input, ModelConfig, ParamLayout, Result};

fn note(why: &Fallback) {
    wgrnn::fsio::stderr_line(&why.to_string());
}

fn engine_for(ck: &Checkpoint, device: DeviceChoice) -> Result<Box<dyn Engine>> {
    make_engine(device, ck.config, ck.optim, ck.params.clone(), &mut note)
}

pub fn sample(a: &SampleArgs) -> Result<()> {
    let ck = Checkpoint::load_with(&a.checkpoint, a.allow_unverified)?;
    let Some(vocab) = &ck.vocab else {
        return Err(Error::file(
            &a.checkpoint,
            "holds no vocabulary: not a character-level model",
            "sample a text model's checkpoint",
        ));
    };
    check_sampleable(&ck.config)?;
    let mut engine = engine_for(&ck, a.device.device)?;
    // streamed: each character is written (and flushed) as it is drawn, so any --len runs
    // in constant memory and an interrupted run has printed everything drawn so far
    let mut write = |s: &str| wgrnn::fsio::stdout_write(s);
    write(&a.prime)?;
    sample_stream(
        engine.as_mut(),
        vocab,
        &a.prime,
        a.len,
        a.temperature,
        a.seed,
        &mut write,
    )?;
    write("\n")
}

pub fn eval(a: &EvalArgs) -> Result<()> {
    let ck = Checkpoint::load_with(&a.checkpoint, a.allow_unverified)?;
    let tm = ck.train.as_ref();
    let (b, t) = (tm.map_or(32, |t| t.batch), tm.map_or(64, |t| t.seq_len));
    let spec = tm.map(|t| t.data.clone());
    let (batches, what) = match (&a.data, &spec) {
        (Some(path), _) if ck.vocab.is_some() => {
            let vocab = ck
                .vocab
                .as_ref()
                .ok_or_else(|| Error::file(path, "no vocabulary", "use a text checkpoint"))?;
            let tokens = vocab.encode(&read_text(path)?, &path.display().to_string())?;
            if tokens.len() < 2 {
                return Err(Error::file(
                    path,
                    "has fewer than 2 characters",
                    "evaluate on a longer text",
                ));
            }
            (eval_batches(&tokens, b, t), path.display().to_string())
        }
        (Some(path), Some(DataSpec::Csv { layout, .. })) => {
            let d = CsvData::load_layout(path, layout.clone(), 0.0)?;
            (d.all_batches(b, t), path.display().to_string())
        }
        (Some(path), _) => {
            return Err(Error::file(
                path,
                "cannot be read for this checkpoint",
                "the model was trained on a synthetic task or without data metadata; drop --data",
            ))
        }
        (None, Some(spec)) => {
            if let Some(tm) = tm {
                check_data_fingerprint(tm)?;
            }
            let data = Dataset::load(spec, tm.map_or(0.05, |t| t.val_fraction), ck.vocab.clone())?;
            (
                data.val_batches(b, t, tm.map_or(1, |t| t.seed), usize::MAX),
                format!("validation split of {}", spec.name()),
            )
        }
        (None, None) => {
            return Err(Error::config(
                "data",
                "(none)",
                "the checkpoint names no data; pass --data FILE",
            ));
        }
    };
    let mut engine = engine_for(&ck, a.device.device)?;
    check_host_memory(&ck.config, b, t, engine.kind())?;
    let r = evaluate(engine.as_mut(), &batches)?
        .ok_or_else(|| Error::config("data", &what, "no complete sequence to evaluate on"))?;
    let is_text = ck.vocab.is_some();
    let bits = r.loss / std::f64::consts::LN_2;
    if a.json {
        let v = serde_json::json!({
            "data": what,
            "loss": r.loss,
            "bits_per_char": is_text.then_some(bits),
            "accuracy": r.accuracy,
            "mse": (ck.config.head != Head::Softmax).then_some(r.loss),
            "targets": r.targets,
        });
        say!("{v}");
    } else if is_text {
        say!(
            "{what}: {:.4} nats/char, {bits:.4} bits/char over {} characters",
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
        say!("{what}: MSE {:.6} over {} targets", r.loss, r.targets);
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
    let ctx = GpuContext::new(&GpuOptions::from_env())?;
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
    let pick = match select_device(DeviceChoice::Auto, 0)? {
        (Device::Gpu(ctx), _) => format!("gpu ({})", ctx.describe()),
        (Device::Cpu, why) => format!("cpu ({})", why.map(|w| w.reason()).unwrap_or_default()),
    };
    say!("--device auto picks: {pick}");
    say!(
        "cpu path: {} threads available",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}
