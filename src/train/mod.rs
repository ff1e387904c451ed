//! The training loop shared by both paths. Each step: the next batch, one optimiser step,
//! the report; every `eval_every` steps and at the end a validation and a checkpoint; a
//! text sample every `sample_every` steps; Ctrl-C stops after a step, with a checkpoint.

mod batches;
mod checkpoint;
mod evaluate;
mod group;
mod interrupt;
mod memory;
mod plot;
mod report;
mod sample;

use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::batch::Batch;
use crate::data::{DataSpec, Dataset};
use crate::engine::Engine;
use crate::error::{Error, Result};
use batches::{Batches, Start};
pub use checkpoint::Resume;
pub use evaluate::{evaluate, EvalResult};
pub use group::{Group, Solo};
pub use interrupt::install_interrupt;
pub use memory::{check_batch_and_seq_len, check_host_memory, check_model_memory, preflight, MAX_BATCH_OR_STEPS};
pub use plot::{write_plot, PlotScale};
use report::Report;
pub use sample::{can_sample, check_sampleable, sample_stream, sample_text};

#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// total optimiser steps, counting those of a resumed checkpoint
    pub steps: u64,
    /// B
    pub batch: usize,
    /// T
    pub seq_len: usize,
    pub seed: u64,
    /// validate (and save) every this many steps; 0: only at the end
    pub eval_every: u64,
    /// at most this many validation batches
    pub val_batches: usize,
    /// print a text sample every this many steps; 0: never
    pub sample_every: u64,
    pub sample_len: usize,
    pub out: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub plot_scale: PlotScale,
    pub quiet: bool,
    pub stateful: bool,
    pub val_fraction: f64,
    pub data: DataSpec,
    /// `checkpoint::data_fingerprint` of the data file, stored in checkpoints
    pub data_fingerprint: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub engine: String,
    pub first_step: u64,
    pub steps: u64,
    pub seconds: f64,
    pub tokens_per_s: f64,
    /// mean training loss of the last (up to) 50 steps
    pub train_loss: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// text only: the loss of a context-free unigram model on the validation split
    pub unigram_baseline: Option<f64>,
    pub checkpoint: Option<PathBuf>,
    pub interrupted: bool,
    /// whether this process reports the run (false on the other processes of a group)
    #[serde(skip)]
    pub leads: bool,
}

/// Runs from `resume.step` (0 for a fresh run) to `opts.steps`.
pub fn train(
    engine: &mut dyn Engine,
    data: &Dataset,
    opts: &TrainOptions,
    resume: Resume,
    stop: &AtomicBool,
) -> Result<Summary> {
    train_in(engine, data, opts, resume, stop, &Solo)
}

/// `train` as one process of `group`: every process runs this loop with the same options,
/// the leader alone validates, reports and writes (the others get no `out`, `log`, `plot`).
pub fn train_in(
    engine: &mut dyn Engine,
    data: &Dataset,
    opts: &TrainOptions,
    resume: Resume,
    stop: &AtomicBool,
    group: &dyn Group,
) -> Result<Summary> {
    // a signal while the data and the engine were being set up: nothing trained, nothing to save
    if group.stop_requested(stop.load(Ordering::SeqCst)) {
        return Err(Error::Interrupted);
    }
    // the GPU engine reports its own limits when it allocates; the CPU engine would abort
    check_host_memory(engine.config(), opts.batch, opts.seq_len, engine.kind())?;
    let first = resume.step;
    let mut batches = Batches::new(data, opts, resume);
    let val = data.val_batches(opts.batch, opts.seq_len, opts.seed, opts.val_batches);
    let unigram = match data {
        Dataset::Text(d) => Some(d.unigram_baseline()),
        _ => None,
    };
    let mut report = Report::new(opts, first, unigram.is_some())?;
    report.println(&format!(
        "engine: {} | model: {} | {}",
        engine.describe(),
        engine.config(),
        data.describe()
    ));
    if let Some(u) = unigram {
        report.println(&format!("unigram baseline: {u:.4} nats/char"));
    }
    let sample_every = if can_sample(engine.config()) {
        opts.sample_every
    } else {
        0
    };
    if sample_every != opts.sample_every && data.vocab().is_some() {
        report.println("no samples: a bidirectional model cannot generate text left to right");
    }

    let mut last_val = None;
    let mut last_saved = None;
    let mut step = first;
    let mut interrupted = false;
    while step < opts.steps {
        let (batch, start) = batches.next();
        let validates = |s: u64| due(s, opts.eval_every) || s == opts.steps;
        // the GPU path syncs to read a loss back: every 10 steps, or when it is recorded
        let want_loss = report.wants_every_loss() || step.is_multiple_of(10) || validates(step + 1);
        let loss = match train_step(engine, &batch, start, want_loss, step + 1) {
            Err(e @ Error::NonFinite { .. }) => return Err(stopped(e, &mut report, &last_saved)),
            r => r?,
        };
        step += 1;
        report.train_step(step, loss);

        if validates(step) {
            group.verify(engine, step)?;
        }
        if validates(step) && group.leads() {
            if let Some(r) = evaluate(engine, &val)? {
                report.validation(step, &r);
                last_val = Some(r);
            }
            match checkpoint::save(engine, data, opts, &batches, step) {
                Err(e @ Error::NonFinite { .. }) => return Err(stopped(e, &mut report, &last_saved)),
                r => last_saved = r?,
            }
        }
        if let (Some(vocab), true) = (data.vocab(), due(step, sample_every) && group.leads()) {
            // forward does not touch the training state, so sampling needs no engine of its own
            let s = sample_text(engine, vocab, "", opts.sample_len, 0.8, opts.seed ^ step)?;
            report.println(&format!("--- sample at step {step} ---\n{s}\n---"));
        }
        if group.stop_requested(stop.load(Ordering::SeqCst)) {
            interrupted = true;
            if last_saved.as_ref().map(|l| l.1) != Some(step) {
                last_saved = checkpoint::save(engine, data, opts, &batches, step)?;
            }
            report.println(&format!("interrupted at step {step}; checkpoint saved"));
            break;
        }
    }
    report.finish();
    if let (Some(p), Some(c)) = (&opts.plot, &report.curves) {
        // the checkpoint is saved; a plot that cannot be written must not fail the run
        if let Err(e) = write_plot(p, &c.train, &c.val, unigram, opts.plot_scale) {
            report.warn(&format!("warning: cannot write the plot: {e}"));
        }
    }
    Ok(Summary {
        engine: engine.describe(),
        first_step: first,
        steps: step,
        seconds: report.seconds(),
        tokens_per_s: report.tokens_per_s(step),
        train_loss: report.smoothed_loss(),
        val_loss: last_val.map(|r| r.loss),
        val_accuracy: last_val.and_then(|r| r.accuracy),
        unigram_baseline: unigram,
        checkpoint: last_saved.map(|l| l.0),
        interrupted,
        leads: group.leads(),
    })
}

/// Whether something done every `every` steps (0: never) is due after `step`.
fn due(step: u64, every: u64) -> bool {
    every > 0 && step.is_multiple_of(every)
}

/// One optimiser step from the initial state `start` says; a non-finite loss is an error.
fn train_step(
    engine: &mut dyn Engine,
    batch: &Batch<f32>,
    start: Start,
    want_loss: bool,
    step: u64,
) -> Result<Option<f32>> {
    let loss = match start {
        Start::Given => engine.train_step(batch, want_loss)?,
        Start::Carried => engine.train_step_carried(batch, want_loss)?,
    };
    match loss {
        Some(l) if !l.is_finite() => Err(Error::NonFinite {
            what: "loss".into(),
            step,
        }),
        l => Ok(l),
    }
}

/// A non-finite loss or weight ends the run; the error names the checkpoint kept.
fn stopped(e: Error, report: &mut Report, last_saved: &Option<(PathBuf, u64)>) -> Error {
    report.finish();
    let checkpoint = match last_saved {
        Some((p, s)) => format!("{} (step {s})", p.display()),
        None => "none written yet".into(),
    };
    Error::Stopped {
        source: Box::new(e),
        checkpoint,
    }
}
