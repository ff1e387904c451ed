//! `wgrnn train`: flags → data, model, engine; then `wgrnn::train::train`.

use std::path::Path;

use super::job::Job;
use super::TrainArgs;
use wgrnn::checkpoint::{check_data_fingerprint, check_positions, data_fingerprint, Checkpoint};
use wgrnn::data::csv::CsvOptions;
use wgrnn::data::{CsvData, DataSpec, Dataset};
use wgrnn::device::{make_engine_at, Fallback};
use wgrnn::fsio::{OutputLock, Paths};
use wgrnn::train::{
    check_batch_and_seq_len, check_model_memory, install_interrupt, preflight, train_in, Resume, Summary, TrainOptions,
};
use wgrnn::{Error, Head, Input, ModelConfig, ParamLayout, Result};

/// Returns the summary; `interrupted` tells the caller to exit with 130.
pub fn run(a: &TrainArgs) -> Result<Summary> {
    let job = Job::start()?;
    let result = run_in(a, &job);
    job.finish(result)
}

fn run_in(a: &TrainArgs, job: &Job) -> Result<Summary> {
    // the leader alone writes files (in an MPI job the others get none), so it alone checks
    // and locks them
    let leads = job.group().leads();
    let _lock = if leads {
        paths(a, None).check()?;
        Some(OutputLock::acquire("--out", &a.out)?)
    } else {
        None
    };
    if a.data.is_some() && a.task.is_some() {
        return Err(Error::config(
            "task",
            a.task.map(|t| t.to_string()).unwrap_or_default(),
            "pass either --data or --task, not both",
        ));
    }
    check_batch_and_seq_len(a.batch(), a.seq_len())?;
    if a.sample_every > 0 {
        // the sample is printed whole; a character is at most 4 bytes of UTF-8
        preflight(
            a.sample_len as u128 * 4,
            &format!("--sample-len {}", a.sample_len),
            "use a smaller --sample-len",
        )?;
    }
    let stop = install_interrupt()?;
    let quiet = a.quiet || a.json || !leads;
    // a missing driver is worth a warning even to --quiet / --json runs
    let mut note = |why: &Fallback| {
        if !quiet || why.no_adapter {
            wgrnn::fsio::stderr_line(&why.to_string());
        }
    };

    let (engine, data, opts, resume) = match &a.resume {
        Some(path) => {
            let ck = Checkpoint::load_with(path, a.allow_unverified)?;
            if a.steps <= ck.step {
                return Err(Error::config(
                    "steps",
                    a.steps,
                    format!(
                        "--steps must exceed the checkpoint's step {} (it counts the checkpoint's steps too)",
                        ck.step
                    ),
                ));
            }
            let resume = Resume::from_checkpoint(&ck)?;
            let Some(tm) = ck.train.clone() else {
                return Err(Error::config(
                    "resume",
                    path.display(),
                    "the checkpoint holds no training state",
                ));
            };
            check_resume_flags(a, &ck, path)?;
            // the stored file must still be the one trained on, unless the flags name the data
            let (spec, fingerprint) = if a.data.is_some() || a.task.is_some() {
                let spec = data_spec(a)?.0;
                let fingerprint = data_fingerprint(&spec)?;
                (spec, fingerprint)
            } else {
                if let DataSpec::Text { path } | DataSpec::Csv { path, .. } = &tm.data {
                    if leads {
                        paths(a, Some(path)).check()?;
                    }
                }
                check_data_fingerprint(&tm)?;
                (tm.data.clone(), tm.data_fingerprint.clone())
            };
            let data = Dataset::load(&spec, tm.val_fraction, ck.vocab.clone())?;
            check_positions(&tm, &data, &spec.name())?;
            let io = data.model_io(ck.config.embed());
            if io.input != ck.config.input || io.output != ck.config.output {
                return Err(Error::file(
                    path,
                    format!(
                        "the checkpoint's model ({}) does not fit the data {}",
                        ck.config,
                        spec.name()
                    ),
                    "resume with the data it was trained on",
                ));
            }
            job.check_train(tm.batch, tm.stateful)?;
            let mut engine = make_engine_at(
                a.device.device,
                job.gpu_index(),
                ck.config,
                ck.optim,
                ck.params.clone(),
                &mut note,
            )?;
            engine.set_optim_state(&ck.optim_state)?;
            let opts = TrainOptions {
                steps: a.steps,
                batch: tm.batch,
                seq_len: tm.seq_len,
                seed: tm.seed,
                stateful: tm.stateful,
                val_fraction: tm.val_fraction,
                data: spec,
                data_fingerprint: fingerprint,
                ..options(a)
            };
            (engine, data, opts, resume)
        }
        None => {
            let (spec, data) = data_spec(a)?;
            let cfg = model_config(a, &data)?;
            let opt = a.optim.config()?;
            let seq_len = match &data {
                Dataset::Csv(d) => d.fixed_seq_len().unwrap_or(a.seq_len()),
                _ => a.seq_len(),
            };
            data.check_len(a.batch(), seq_len, a.stateful, &spec.name())?;
            if a.stateful && !matches!(data, Dataset::Text(_)) {
                return Err(Error::config(
                    "stateful",
                    "true",
                    "--stateful applies to text data only",
                ));
            }
            job.check_train(a.batch(), a.stateful)?;
            check_model_memory(&cfg)?;
            let params = ParamLayout::new(&cfg).init(&cfg, a.seed());
            let engine = make_engine_at(a.device.device, job.gpu_index(), cfg, opt, params, &mut note)?;
            let opts = TrainOptions {
                seq_len,
                data_fingerprint: data_fingerprint(&spec)?,
                data: spec,
                ..options(a)
            };
            (engine, data, opts, Resume::default())
        }
    };
    let mut engine = job.engine(engine)?;
    let opts = if job.group().leads() {
        opts
    } else {
        // the leader alone reports and writes
        TrainOptions {
            out: None,
            log: None,
            plot: None,
            quiet: true,
            ..opts
        }
    };
    train_in(engine.as_mut(), &data, &opts, resume, &stop, job.group())
}

/// Every file the run reads or writes; `stored` is the data a resumed checkpoint names.
fn paths<'a>(a: &'a TrainArgs, stored: Option<&'a Path>) -> Paths<'a> {
    Paths::new()
        .input("--data", a.data.as_deref())
        .input("--resume", a.resume.as_deref())
        .input("the data the checkpoint names", stored)
        .output("--out", Some(&a.out))
        .output("--log", a.log.as_deref())
        .output("--plot", a.plot.as_deref())
        .updates("--out", "--resume")
}

fn options(a: &TrainArgs) -> TrainOptions {
    TrainOptions {
        steps: a.steps,
        batch: a.batch(),
        seq_len: a.seq_len(),
        seed: a.seed(),
        eval_every: a.eval_every,
        val_batches: a.val_batches.max(1),
        sample_every: a.sample_every,
        sample_len: a.sample_len,
        out: Some(a.out.clone()),
        log: a.log.clone(),
        plot: a.plot.clone(),
        plot_scale: a.plot_scale,
        quiet: a.quiet || a.json,
        stateful: a.stateful,
        val_fraction: a.val_fraction,
        data: DataSpec::Bundled,
        data_fingerprint: None,
    }
}

/// The data the flags name, loaded.
fn data_spec(a: &TrainArgs) -> Result<(DataSpec, Dataset)> {
    if let Some(task) = a.task {
        return Ok((DataSpec::Task { task }, Dataset::Task(task)));
    }
    let Some(typed) = &a.data else {
        let spec = DataSpec::Bundled;
        let data = Dataset::load(&spec, a.val_fraction, None)?;
        return Ok((spec, data));
    };
    // stored absolute in checkpoints, so that `eval` and `--resume` from another directory
    // read the same file
    let path = &std::path::absolute(typed).map_err(|e| Error::io("resolve", typed, e))?;
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv && a.target_cols.is_some() {
        return Err(Error::config(
            "target-cols",
            a.target_cols.clone().unwrap_or_default(),
            "applies to .csv data only",
        ));
    }
    if is_csv {
        let opts = CsvOptions {
            seq_len: Some(a.seq_len()),
            input_size: (a.model.input_size > 0).then_some(a.model.input_size),
            head: a.model.head(),
            output: a.model.output_size.filter(|&o| o > 0),
            target_cols: a.target_cols.clone(),
        };
        let d = CsvData::load(path, &opts, a.val_fraction)?;
        let spec = DataSpec::Csv {
            path: path.clone(),
            layout: d.layout.clone(),
        };
        Ok((spec, Dataset::Csv(d)))
    } else {
        let spec = DataSpec::Text { path: path.clone() };
        let data = Dataset::load(&spec, a.val_fraction, None)?;
        Ok((spec, data))
    }
}

fn model_config(a: &TrainArgs, data: &Dataset) -> Result<ModelConfig> {
    let ma = &a.model;
    let is_text = matches!(data, Dataset::Text(_));
    if let (false, Some(e)) = (is_text, ma.embed()) {
        return Err(Error::config(
            "embed",
            e,
            "an embedding table needs token (text) inputs",
        ));
    }
    let io = data.model_io(ma.embed());
    if let (true, Some(head @ (Head::Linear | Head::Sigmoid))) = (is_text, ma.head) {
        return Err(Error::config(
            "head",
            head,
            "text models predict characters: use --head softmax",
        ));
    }
    if let Some(o) = ma.output_size.filter(|&o| o != io.output) {
        return Err(Error::config(
            "output-size",
            o,
            format!("the data has {} outputs; drop the flag to infer it", io.output),
        ));
    }
    let head = match data {
        // a task is a regression; a sigmoid head keeps predictions in (0, 1) if asked for
        Dataset::Task(_) if ma.head.is_some_and(|h| h != Head::Softmax) => ma.head(),
        _ => io.head,
    };
    if matches!(io.input, Input::Dense { .. }) && head == Head::Softmax && !matches!(data, Dataset::Csv(_)) {
        return Err(Error::config(
            "head",
            head,
            "this task is a regression: use --head linear or sigmoid",
        ));
    }
    let mut cfg = ModelConfig {
        input: io.input,
        hidden: ma.hidden.unwrap_or(256),
        layers: ma.layers(),
        activation: ma.activation(),
        output: io.output,
        head,
        reduction: ma.reduction(),
        seq: io.seq,
        init: ma.init,
        bias: true,
        head_bias: true,
        bidirectional: false,
        dropout: Default::default(),
    };
    ma.apply_options(&mut cfg, a.seed())?;
    if a.stateful {
        cfg.check_carry()?;
    }
    Ok(cfg)
}

/// Flags typed on a resumed run must agree with the checkpoint (the run would not be the
/// continuation it claims to be otherwise).
fn check_resume_flags(a: &TrainArgs, ck: &Checkpoint, path: &std::path::Path) -> Result<()> {
    let c = &ck.config;
    let tm = ck.train.as_ref();
    let (ma, oa) = (&a.model, &a.optim);
    // None: not typed
    let agrees: [(&str, Option<bool>); 16] = [
        ("hidden", ma.hidden.map(|v| v == c.hidden)),
        ("layers", ma.layers.map(|v| v == c.layers)),
        ("activation", ma.activation.map(|v| v == c.activation)),
        ("embed", ma.embed.map(|_| ma.embed() == c.embed())),
        ("head", ma.head.map(|v| v == c.head)),
        ("reduction", ma.reduction.map(|v| v == c.reduction)),
        ("no-bias", ma.no_bias.then_some(!c.bias)),
        ("no-head-bias", ma.no_head_bias.then_some(!c.head_bias)),
        ("bidirectional", ma.bidirectional.then_some(c.bidirectional)),
        ("dropout", ma.dropout.map(|p| p == c.dropout.p)),
        ("optimizer", oa.optimizer.map(|v| v == ck.optim.kind.optimizer())),
        ("lr", oa.lr.map(|v| v == ck.optim.lr)),
        ("batch", a.batch.map(|v| Some(v) == tm.map(|t| t.batch))),
        ("seq-len", a.seq_len.map(|v| Some(v) == tm.map(|t| t.seq_len))),
        ("seed", a.seed.map(|v| Some(v) == tm.map(|t| t.seed))),
        ("stateful", a.stateful.then(|| tm.is_some_and(|t| t.stateful))),
    ];
    if let Some((flag, _)) = agrees.iter().find(|(_, ok)| *ok == Some(false)) {
        return Err(Error::file(
            path,
            format!("--{flag} does not match the checkpoint (model: {c})"),
            "drop the flag when resuming, or start a new run without --resume",
        ));
    }
    Ok(())
}
