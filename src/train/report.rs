//! What a run shows and records: the progress display on stderr, the JSONL log, the smoothed
//! training loss and the curves the plot is drawn from.

use indicatif::{ProgressBar, ProgressStyle};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::evaluate::EvalResult;
use super::TrainOptions;
use crate::error::{Error, Result};

/// How many of the losses read back the smoothed training loss averages.
const SMOOTHING: usize = 50;

/// One run's reporting; `first` is the step the run starts at (a resumed run's checkpoint).
pub(super) struct Report {
    progress: Progress,
    log: Option<Log>,
    start: Instant,
    first: u64,
    total: u64,
    tokens_per_step: f64,
    /// a language model's token ("char", "word"), for bits per token
    unit: Option<&'static str>,
    recent: VecDeque<f64>,
    /// (step, loss) of every loss read back and of every validation; only a plot needs the
    /// whole curve, so without one a long run keeps no per-step data
    pub curves: Option<Curves>,
}

#[derive(Default)]
pub(super) struct Curves {
    pub train: Vec<(u64, f64)>,
    pub val: Vec<(u64, f64)>,
}

impl Report {
    pub fn new(opts: &TrainOptions, first: u64, unit: Option<&'static str>) -> Result<Self> {
        let log = match &opts.log {
            Some(p) => Some(Log::open(p, first > 0)?),
            None => None,
        };
        Ok(Report {
            progress: Progress::new(opts.quiet, first, opts.steps),
            log,
            start: Instant::now(),
            first,
            total: opts.steps,
            tokens_per_step: (opts.batch * opts.seq_len) as f64,
            unit,
            recent: VecDeque::with_capacity(SMOOTHING + 1),
            curves: opts.plot.is_some().then(Curves::default),
        })
    }

    /// Whether every step's loss is wanted (the GPU path syncs to read one back).
    pub fn wants_every_loss(&self) -> bool {
        self.log.is_some()
    }

    pub fn println(&self, s: &str) {
        self.progress.println(s);
    }

    pub fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn tokens_per_s(&self, step: u64) -> f64 {
        (step - self.first) as f64 * self.tokens_per_step / self.seconds().max(1e-9)
    }

    /// Mean of the last losses read: steadier than one batch's loss, and the loss is only
    /// read back every few steps anyway.
    pub fn smoothed_loss(&self) -> Option<f64> {
        (!self.recent.is_empty()).then(|| self.recent.iter().sum::<f64>() / self.recent.len() as f64)
    }

    /// After optimiser step `step`; `loss` when it was read back.
    pub fn train_step(&mut self, step: u64, loss: Option<f32>) {
        let (secs, tok_s) = (self.seconds(), self.tokens_per_s(step));
        if let Some(l) = loss.map(f64::from) {
            self.recent.push_back(l);
            if self.recent.len() > SMOOTHING {
                self.recent.pop_front();
            }
            if let Some(c) = &mut self.curves {
                c.train.push((step, l));
            }
            self.log(
                serde_json::json!({"type": "train", "step": step, "loss": l, "tokens_per_s": tok_s, "seconds": secs}),
            );
        }
        let eta = (self.total - step) as f64 * secs / (step - self.first) as f64;
        self.progress.step(step, self.total, self.smoothed_loss(), tok_s, eta);
    }

    pub fn validation(&mut self, step: u64, r: &EvalResult) {
        let mut line = format!("step {step}: val loss {:.4}", r.loss);
        if let Some(u) = self.unit {
            line += &format!(" ({:.3} bits/{u})", r.loss / std::f64::consts::LN_2);
        }
        if let Some(a) = r.accuracy {
            line += &format!(", accuracy {:.3}", a);
        }
        self.progress.println(&line);
        if let Some(c) = &mut self.curves {
            c.val.push((step, r.loss));
        }
        self.log(serde_json::json!({"type": "val", "step": step, "loss": r.loss, "accuracy": r.accuracy}));
    }

    /// Clears the progress bar; called before any error or summary is printed.
    pub fn finish(&mut self) {
        self.progress.finish();
        if let Some(log) = &mut self.log {
            let flushed = log.w.flush();
            self.log_failed(flushed);
        }
    }

    /// A line on stderr that even a --quiet run prints.
    pub fn warn(&self, s: &str) {
        match &self.progress {
            Progress::Bar(b) => b.suspend(|| crate::fsio::stderr_line(s)),
            _ => crate::fsio::stderr_line(s),
        }
    }

    fn log(&mut self, v: serde_json::Value) {
        if let Some(log) = &mut self.log {
            let written = writeln!(log.w, "{v}");
            self.log_failed(written);
        }
    }

    /// The log is a record of the run, not its result: a log that cannot be written (a full
    /// disk) is dropped with one warning, and the run goes on to save its checkpoint.
    fn log_failed(&mut self, r: std::io::Result<()>) {
        if let (Err(e), Some(log)) = (r, &self.log) {
            let line = format!(
                "warning: cannot write the log {}: {e}; training goes on without it",
                log.path.display()
            );
            // into_parts: dropping the writer would try to flush the unwritten tail again
            if let Some(log) = self.log.take() {
                let _ = log.w.into_parts();
            }
            self.warn(&line);
        }
    }
}

struct Log {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Log {
    fn open(path: &Path, append: bool) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| {
                Error::file(
                    path,
                    format!("cannot open the log: {e}"),
                    "check that the directory exists and is writable",
                )
            })?;
        Ok(Log {
            path: path.to_path_buf(),
            w: BufWriter::new(f),
        })
    }
}

enum Progress {
    Bar(ProgressBar),
    Lines { every: u64 },
    Quiet,
}

impl Progress {
    fn new(quiet: bool, first: u64, total: u64) -> Self {
        if quiet {
            return Progress::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(first);
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                every: (total / 20).max(1),
            }
        }
    }

    fn println(&self, s: &str) {
        match self {
            Progress::Bar(b) => b.println(s),
            Progress::Lines { .. } => crate::fsio::stderr_line(s),
            Progress::Quiet => {}
        }
    }

    fn step(&self, step: u64, total: u64, loss: Option<f64>, tok_s: f64, eta_secs: f64) {
        let msg = match loss {
            Some(l) => format!("loss {l:.4} | {tok_s:.0} tok/s"),
            None => format!("{tok_s:.0} tok/s"),
        };
        match self {
            Progress::Bar(b) => {
                b.set_position(step);
                b.set_message(msg);
            }
            Progress::Lines { every } if step.is_multiple_of(*every) || step == total => {
                crate::fsio::stderr_line(&format!("step {step}/{total} {msg} | eta {eta_secs:.0} s"))
            }
            _ => {}
        }
    }

    fn finish(&self) {
        if let Progress::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}
