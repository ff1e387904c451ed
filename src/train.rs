//! The training loop shared by both paths, plus evaluation and text sampling.
//!
//! Exact resume: the batch sampler is one ChaCha8 generator whose word position is stored in
//! the checkpoint with the parameters, the optimiser state and step, and (stateful runs) the
//! stream position and carried state. Validation and sampling draw from generators of their
//! own, so they never move the sampler.

use indicatif::{ProgressBar, ProgressStyle};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::batch::{Batch, Inputs, Targets};
use crate::checkpoint::{Checkpoint, TrainMeta};
use crate::config::{Head, Input, ModelConfig, Reduction};
use crate::data::{DataSpec, Dataset, Streams, Vocab};
use crate::engine::Engine;
use crate::error::{Error, Result};

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
    pub quiet: bool,
    pub stateful: bool,
    pub val_fraction: f64,
    pub data: DataSpec,
}

/// Where a checkpoint left off.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    pub step: u64,
    pub rng_word_pos: u128,
    pub stream_pos: usize,
    pub carried: Option<Vec<f32>>,
}

impl Resume {
    pub fn from_checkpoint(ck: &Checkpoint) -> Result<Self> {
        let tm = ck.train.as_ref().ok_or_else(|| {
            Error::config(
                "resume",
                "checkpoint",
                "the checkpoint holds no training state (was it written by `train`?)",
            )
        })?;
        let rng_word_pos = tm.rng_word_pos.parse().map_err(|_| {
            Error::config(
                "resume",
                &tm.rng_word_pos,
                "the stored sampler position is not a number",
            )
        })?;
        Ok(Resume {
            step: ck.step,
            rng_word_pos,
            stream_pos: tm.stream_pos,
            carried: ck.carried.clone(),
        })
    }
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
}

/// Sets a flag on the first Ctrl-C (the loop finishes its step, saves and stops) and exits
/// at once with 130 on the second; checkpoint writes are atomic, so that leaves nothing
/// corrupt behind, and the temporary file of a write in progress is removed.
pub fn install_interrupt() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            crate::fsio::remove_pending_write();
            std::process::exit(130);
        }
    })
    .map_err(|e| Error::config("ctrl-c", e, "cannot install the interrupt handler"))?;
    Ok(flag)
}

/// Largest batch size B and sequence length T the flags may ask for; the host-memory check
/// below then bounds their product with the model's widths.
pub const MAX_BATCH_OR_STEPS: usize = 1 << 24;

/// Refuses a (B, T) whose buffers for one step cannot fit in the memory the machine has
/// available, instead of letting the allocation abort the process mid-run. `cpu_path`: the
/// activations of every layer and step are held on the host too (the GPU path only holds
/// the batch there). The estimate is deliberately rough (within a small factor of what the
/// engines allocate); it only has to catch sizes that cannot work at all.
pub fn check_host_memory(cfg: &ModelConfig, b: usize, t: usize, cpu_path: bool) -> Result<()> {
    for (flag, v) in [("batch", b), ("seq-len", t)] {
        if v == 0 || v > MAX_BATCH_OR_STEPS {
            return Err(Error::config(flag, v, format!("must be in 1..={MAX_BATCH_OR_STEPS}")));
        }
    }
    let (h, l, o) = (cfg.hidden as u128, cfg.layers as u128, cfg.output as u128);
    // token ids (and their embeddings) or dense vectors per step
    let in_w = match cfg.input {
        Input::Dense { size } => size as u128,
        Input::Tokens { embed, .. } => 1 + embed.unwrap_or(0) as u128,
    };
    // per sequence: the batch (inputs, targets, a time-major copy of each) and, on the CPU
    // path, the states, dh and dz of every layer plus logits, outputs and their gradient
    let host = if cpu_path { 3 * h * l + 3 * o } else { 0 };
    let per_seq_floats = (t as u128 + 1) * (2 * (in_w + o) + host);
    let needed = per_seq_floats * 4 * b as u128;
    let Some(available) = available_memory() else {
        return Ok(());
    };
    if needed > available as u128 {
        let fits = available as u128 / (per_seq_floats * 4).max(1);
        let gib = |x: u128| x as f64 / (1u64 << 30) as f64;
        let hint = if fits == 0 {
            "even --batch 1 does not fit: use a smaller --seq-len or --hidden".to_string()
        } else {
            format!("the largest batch that fits is about --batch {fits}")
        };
        return Err(Error::config(
            "batch",
            b,
            format!(
                "with --seq-len {t} one step needs about {:.1} GiB of host memory but {:.1} GiB are available; {hint}",
                gib(needed),
                gib(available as u128)
            ),
        ));
    }
    Ok(())
}

/// MemAvailable from /proc/meminfo, in bytes; None where the kernel does not report it.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Mean loss per target, and accuracy for a softmax head.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EvalResult {
    pub loss: f64,
    pub accuracy: Option<f64>,
    pub targets: usize,
}

pub fn evaluate(engine: &mut dyn Engine, batches: &[Batch<f32>]) -> Result<Option<EvalResult>> {
    let cfg = *engine.config();
    let (mut sum, mut n, mut correct) = (0.0f64, 0usize, 0usize);
    for b in batches {
        let out = engine.forward(b)?;
        let count = b.batch * cfg.target_steps(b.steps);
        sum += match cfg.reduction {
            Reduction::Mean => out.loss as f64 * count as f64,
            Reduction::Sum => out.loss as f64,
        };
        n += count;
        if let Targets::Classes(y) = &b.targets {
            for (row, &yi) in out.out.chunks_exact(cfg.output).zip(y) {
                let arg = row
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |a, (i, &p)| if p > a.1 { (i, p) } else { a })
                    .0;
                correct += (arg == yi as usize) as usize;
            }
        }
    }
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(EvalResult {
        loss: sum / n as f64,
        accuracy: (cfg.head == Head::Softmax).then(|| correct as f64 / n as f64),
        targets: n,
    }))
}

/// Generates `len` characters after `prime` (empty: start after a newline) by sampling the
/// softmax at `temperature`.
pub fn sample_text(
    engine: &mut dyn Engine,
    vocab: &Vocab,
    prime: &str,
    len: usize,
    temperature: f64,
    seed: u64,
) -> Result<String> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::config("temperature", temperature, "must be a finite number > 0"));
    }
    let cfg = *engine.config();
    if !cfg.is_tokens() || cfg.head != Head::Softmax || cfg.vocab() != Some(cfg.output) {
        return Err(Error::config(
            "checkpoint",
            cfg,
            "sampling needs a character-level language model",
        ));
    }
    let mut ids = vocab.encode(prime, "--prime")?;
    if ids.is_empty() {
        ids = vocab.encode("\n", "--prime").unwrap_or_else(|_| vec![0]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len);
    let mut h0 = None;
    let mut feed = ids;
    for _ in 0..len {
        let t = feed.len();
        let batch = Batch {
            batch: 1,
            steps: t,
            inputs: Inputs::Tokens(feed.clone()),
            targets: Targets::Classes(vec![0; t]),
            h0,
        };
        let o = engine.forward(&batch)?;
        let last = &o.out[(t - 1) * cfg.output..t * cfg.output]; // (V)
        let w: Vec<f64> = last
            .iter()
            .map(|&p| (p.max(0.0) as f64).powf(1.0 / temperature))
            .collect();
        let total: f64 = w.iter().sum();
        let mut r = rng.random_range(0.0..1.0) * total;
        let mut next = w.len() - 1;
        for (i, &wi) in w.iter().enumerate() {
            if r < wi {
                next = i;
                break;
            }
            r -= wi;
        }
        out.push(next as u32);
        feed = vec![next as u32];
        h0 = Some(o.final_state);
    }
    Ok(vocab.decode(&out))
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

    fn write(&mut self, v: serde_json::Value) -> Result<()> {
        writeln!(self.w, "{v}")
            .map_err(|e| Error::file(&self.path, format!("cannot write the log: {e}"), "check free space"))
    }

    fn flush(&mut self) -> Result<()> {
        self.w
            .flush()
            .map_err(|e| Error::file(&self.path, format!("cannot write the log: {e}"), "check free space"))
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
            Progress::Lines { .. } => eprintln!("{s}"),
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
            Progress::Lines { every } if step % every == 0 || step == total => {
                eprintln!("step {step}/{total} {msg} | eta {eta_secs:.0} s")
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

/// A non-finite loss or weight ends the run; the error names the checkpoint kept.
fn stopped(e: Error, progress: &Progress, last_saved: Option<(PathBuf, u64)>) -> Error {
    progress.finish();
    let checkpoint = match last_saved {
        Some((p, s)) => format!("{} (step {s})", p.display()),
        None => "none written yet".into(),
    };
    Error::Stopped {
        source: Box::new(e),
        checkpoint,
    }
}

/// Runs from `resume.step` (0 for a fresh run) to `opts.steps`.
pub fn train(
    engine: &mut dyn Engine,
    data: &Dataset,
    opts: &TrainOptions,
    resume: Resume,
    stop: &AtomicBool,
) -> Result<Summary> {
    let cfg = *engine.config();
    let (b, t) = (opts.batch, opts.seq_len);
    // the GPU engine reports its own limits when it allocates; the CPU engine would abort
    check_host_memory(&cfg, b, t, engine.describe().starts_with("cpu"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    rng.set_word_pos(resume.rng_word_pos);
    let mut streams = Streams { pos: resume.stream_pos };
    let mut carried = resume.carried;
    let stateful = opts.stateful && matches!(data, Dataset::Text(_));
    let val = data.val_batches(b, t, opts.seed, opts.val_batches);
    let unigram = match data {
        Dataset::Text(d) => Some(d.unigram_baseline()),
        _ => None,
    };
    let mut log = match &opts.log {
        Some(p) => Some(Log::open(p, resume.step > 0)?),
        None => None,
    };
    let first = resume.step;
    let progress = Progress::new(opts.quiet, first, opts.steps);
    progress.println(&format!(
        "engine: {} | model: {} | {}",
        engine.describe(),
        cfg,
        data.describe()
    ));
    if let Some(u) = unigram {
        progress.println(&format!("unigram baseline: {u:.4} nats/char"));
    }

    let start = Instant::now();
    let tokens_per_step = (b * t) as f64;
    let mut recent: Vec<f64> = Vec::new();
    let mut curve_train: Vec<(u64, f64)> = Vec::new();
    let mut curve_val: Vec<(u64, f64)> = Vec::new();
    let mut last_val = None;
    let mut last_saved: Option<(PathBuf, u64)> = None;
    let mut step = first;
    let mut interrupted = false;

    let save = |engine: &mut dyn Engine,
                step: u64,
                rng: &ChaCha8Rng,
                streams: &Streams,
                carried: &Option<Vec<f32>>|
     -> Result<()> {
        let Some(path) = &opts.out else { return Ok(()) };
        let params = engine.params()?;
        // never replace a good checkpoint with broken weights
        if params.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "weights".into(),
                step,
            });
        }
        let ck = Checkpoint {
            config: cfg,
            optim: *engine.optim_config(),
            params,
            optim_state: engine.optim_state()?,
            vocab: data.vocab().cloned(),
            step,
            train: Some(TrainMeta {
                seed: opts.seed,
                batch: b,
                seq_len: t,
                val_fraction: opts.val_fraction,
                stateful,
                data: opts.data.clone(),
                rng_word_pos: rng.get_word_pos().to_string(),
                stream_pos: streams.pos,
            }),
            carried: if stateful { carried.clone() } else { None },
        };
        ck.save(path)
    };

    while step < opts.steps {
        let batch = if stateful {
            let Dataset::Text(d) = data else { break };
            streams.next(d, b, t, carried.take())
        } else {
            data.random_batch(&mut rng, b, t)
        };
        let save_step = (opts.eval_every > 0 && (step + 1) % opts.eval_every == 0) || step + 1 == opts.steps;
        let want_loss = log.is_some() || step % 10 == 0 || save_step;
        let loss = match engine.train_step(&batch, want_loss) {
            Ok(Some(l)) if !l.is_finite() => {
                let e = Error::NonFinite {
                    what: "loss".into(),
                    step: step + 1,
                };
                return Err(stopped(e, &progress, last_saved));
            }
            Ok(l) => l,
            Err(e @ Error::NonFinite { .. }) => return Err(stopped(e, &progress, last_saved)),
            Err(e) => return Err(e),
        };
        if stateful {
            carried = Some(engine.last_state()?);
        }
        step += 1;
        let secs = start.elapsed().as_secs_f64();
        let tok_s = (step - first) as f64 * tokens_per_step / secs.max(1e-9);
        if let Some(l) = loss {
            let l = l as f64;
            recent.push(l);
            if recent.len() > 50 {
                recent.remove(0);
            }
            // only a plot needs the whole curve; without one a long run keeps no per-step data
            if opts.plot.is_some() {
                curve_train.push((step, l));
            }
            if let Some(log) = &mut log {
                log.write(serde_json::json!({"type": "train", "step": step, "loss": l, "tokens_per_s": tok_s, "seconds": secs}))?;
            }
        }
        // The loss is read back every 10 steps (the GPU path syncs to read it): show the mean
        // of the last 50 read, which is also steadier than one batch's loss.
        let smoothed = (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64);
        let eta = (opts.steps - step) as f64 * secs / (step - first) as f64;
        progress.step(step, opts.steps, smoothed, tok_s, eta);

        let at_end = step == opts.steps;
        if (opts.eval_every > 0 && step % opts.eval_every == 0) || at_end {
            if let Some(r) = evaluate(engine, &val)? {
                let mut line = format!("step {step}: val loss {:.4}", r.loss);
                if unigram.is_some() {
                    line += &format!(" ({:.3} bits/char)", r.loss / std::f64::consts::LN_2);
                }
                if let Some(a) = r.accuracy {
                    line += &format!(", accuracy {:.3}", a);
                }
                progress.println(&line);
                if opts.plot.is_some() {
                    curve_val.push((step, r.loss));
                }
                if let Some(log) = &mut log {
                    log.write(
                        serde_json::json!({"type": "val", "step": step, "loss": r.loss, "accuracy": r.accuracy}),
                    )?;
                }
                last_val = Some(r);
            }
            match save(engine, step, &rng, &streams, &carried) {
                Err(e @ Error::NonFinite { .. }) => return Err(stopped(e, &progress, last_saved)),
                r => r?,
            }
            last_saved = opts.out.clone().map(|p| (p, step));
        }
        if let (Some(vocab), true) = (data.vocab(), opts.sample_every > 0 && step % opts.sample_every == 0) {
            // a fresh engine state is not needed: forward does not touch training state
            let s = sample_text(engine, vocab, "", opts.sample_len, 0.8, opts.seed ^ step)?;
            progress.println(&format!("--- sample at step {step} ---\n{s}\n---"));
        }
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            if last_saved.as_ref().map(|l| l.1) != Some(step) {
                save(engine, step, &rng, &streams, &carried)?;
            }
            progress.println(&format!("interrupted at step {step}; checkpoint saved"));
            break;
        }
    }
    progress.finish();
    if let Some(log) = &mut log {
        log.flush()?;
    }
    if let Some(p) = &opts.plot {
        write_plot(p, &curve_train, &curve_val, unigram)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Summary {
        engine: engine.describe(),
        first_step: first,
        steps: step,
        seconds,
        tokens_per_s: (step - first) as f64 * tokens_per_step / seconds.max(1e-9),
        train_loss: (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64),
        val_loss: last_val.map(|r| r.loss),
        val_accuracy: last_val.and_then(|r| r.accuracy),
        unigram_baseline: unigram,
        checkpoint: last_saved.map(|l| l.0),
        interrupted,
    })
}

/// A hand-written SVG of the training (light, raw) and validation (dark, dots) loss curves,
/// with the unigram baseline as a dashed line when there is one.
pub fn write_plot(path: &Path, train: &[(u64, f64)], val: &[(u64, f64)], baseline: Option<f64>) -> Result<()> {
    let (w, h, pad) = (640.0, 400.0, 50.0);
    let all = train.iter().chain(val).map(|p| p.1).chain(baseline);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| (a.0.min(v), a.1.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let max_step = train.iter().chain(val).map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let min_step = train.iter().chain(val).map(|p| p.0).min().unwrap_or(0) as f64;
    let span = (max_step - min_step).max(1.0);
    let x = |s: u64| pad + (s as f64 - min_step) / span * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v - lo) / (hi - lo) * (h - 2.0 * pad);
    let line = |pts: &[(u64, f64)]| {
        pts.iter()
            .map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <text x=\"{pad}\" y=\"{ty}\">step {min_step:.0}</text><text x=\"{rx}\" y=\"{ty}\">step {max_step:.0}</text>\n\
         <text x=\"5\" y=\"{pad}\">{hi:.3}</text><text x=\"5\" y=\"{b}\">{lo:.3}</text>\n\
         <text x=\"{lx}\" y=\"20\" fill=\"#7aa6d6\">train</text><text x=\"{lx2}\" y=\"20\" fill=\"#b03a2e\">val</text>\n",
        b = h - pad,
        r = w - pad,
        ty = h - pad + 20.0,
        rx = w - pad - 60.0,
        lx = w - 160.0,
        lx2 = w - 110.0,
    );
    if let Some(u) = baseline {
        svg += &format!(
            "<line x1=\"{pad}\" y1=\"{yu:.1}\" x2=\"{r}\" y2=\"{yu:.1}\" stroke=\"gray\" stroke-dasharray=\"4 4\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" fill=\"gray\">unigram</text>\n",
            yu = y(u),
            r = w - pad,
            tx = w - pad - 50.0,
            ty = y(u) - 4.0
        );
    }
    svg += &format!(
        "<polyline fill=\"none\" stroke=\"#7aa6d6\" points=\"{}\"/>\n",
        line(train)
    );
    svg += &format!(
        "<polyline fill=\"none\" stroke=\"#b03a2e\" stroke-width=\"2\" points=\"{}\"/>\n",
        line(val)
    );
    for &(s, v) in val {
        svg += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#b03a2e\"/>\n",
            x(s),
            y(v)
        );
    }
    svg += "</svg>\n";
    crate::fsio::write_atomic(path, svg.as_bytes())
}
