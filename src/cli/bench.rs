//! `wgrnn bench`: training (or forward-only) throughput on random data, or the matrix-product
//! kernel alone (`--gemm N`), on the CPU or the GPU path.

use clap::Args;
use serde_json::json;

use super::args::{DeviceArgs, TuneArgs};
use super::job::Job;
use wgrnn::bench::{gemm_cpu, gemm_gpu, gemm_size, run, BenchLoss, BenchReport};
use wgrnn::device::{select_device, Device};
use wgrnn::gpu::kernels::MatmulKernel;
use wgrnn::gpu::GpuEngine;
use wgrnn::train::{check_batch_and_seq_len, check_model_memory};
use wgrnn::{CpuEngine, Error, Head, Input, ModelConfig, Optimizer, ParamLayout, Reduction, Result, SeqShape};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Token inputs with this vocabulary V (ignored with --input-size)
    #[arg(long, default_value_t = 65)]
    pub vocab: usize,
    /// Dense inputs of width I instead of tokens
    #[arg(long)]
    pub input_size: Option<usize>,
    /// Output width O (default: V for --loss ce, 1 for --loss mse)
    #[arg(long)]
    pub output_size: Option<usize>,
    /// Embedding width E in front of token inputs (0: one-hot inputs, a gather)
    #[arg(long, default_value_t = 0)]
    pub embed: usize,
    /// Hidden width H
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Layers L
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Sequence length T
    #[arg(long, default_value_t = 64)]
    pub seq_len: usize,
    /// Batch size B
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Loss: ce (softmax cross-entropy) or mse (linear head)
    #[arg(long, default_value_t = BenchLoss::Ce)]
    pub loss: BenchLoss,
    /// Optimiser
    #[arg(long, default_value_t = Optimizer::Sgd)]
    pub optimizer: Optimizer,
    /// Timed steps (the report uses their median)
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps first (shader compilation, caches, thread pools)
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Forward only (inference), no backward or update
    #[arg(long)]
    pub infer: bool,
    /// No recurrent or head biases
    #[arg(long)]
    pub no_bias: bool,
    /// Bidirectional layers
    #[arg(long)]
    pub bidirectional: bool,
    /// Dropout P between layers (training steps only)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub dropout: f32,
    /// Sequence lengths spread over T/2+1..=T (pack_padded semantics); tokens/s still counts all B·T slots
    #[arg(long)]
    pub ragged: bool,
    /// Time the matrix-product kernel alone on N×N×N instead: the device's ceiling
    #[arg(long)]
    pub gemm: Option<usize>,
    /// With --gemm on the GPU: time only this kernel [default: every kernel the adapter runs]
    #[arg(long)]
    pub kernel: Option<MatmulKernel>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub tune: TuneArgs,
}

impl BenchArgs {
    fn config(&self) -> Result<ModelConfig> {
        let (head, default_o) = match self.loss {
            BenchLoss::Ce => (Head::Softmax, self.vocab),
            BenchLoss::Mse => (Head::Linear, 1),
        };
        let input = match self.input_size {
            Some(size) => Input::Dense { size },
            None => Input::Tokens {
                vocab: self.vocab,
                embed: (self.embed > 0).then_some(self.embed),
            },
        };
        let cfg = ModelConfig {
            input,
            hidden: self.hidden,
            layers: self.layers,
            activation: wgrnn::Activation::Tanh,
            output: self.output_size.unwrap_or(default_o),
            head,
            reduction: Reduction::Mean,
            seq: SeqShape::ManyToMany,
            init: wgrnn::Init::Default,
            bias: !self.no_bias,
            head_bias: !self.no_bias,
            bidirectional: self.bidirectional,
            dropout: wgrnn::Dropout {
                p: self.dropout,
                seed: 1,
            },
            loss: Default::default(),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn bench(a: &BenchArgs) -> Result<()> {
    let job = Job::start()?;
    let result = bench_in(a, &job);
    job.finish(result)
}

fn bench_in(a: &BenchArgs, job: &Job) -> Result<()> {
    if a.steps == 0 {
        return Err(Error::config("steps", 0, "time at least one step"));
    }
    // sizes first: setting up a device takes memory and time a refused size does not need
    if let Some(n) = a.gemm {
        if n == 0 {
            return Err(Error::config("gemm", 0, "give the matrix size N >= 1"));
        }
        gemm_size(n, 3)?;
    } else {
        check_batch_and_seq_len(a.batch, a.seq_len)?;
        check_model_memory(&a.config()?)?;
    }
    let gpu = match select_device(a.device.device, &a.tune.gpu_options(), job.gpu_index())? {
        (Device::Gpu(ctx), _) => Some(ctx),
        (Device::Cpu, why) => {
            if let Some(why) = why {
                wgrnn::fsio::stderr_line(&why.to_string());
            }
            None
        }
    };

    if let Some(n) = a.gemm {
        let reports = match &gpu {
            None => vec![gemm_cpu(n, a.steps)?],
            Some(ctx) => {
                let kernels = ctx.kernels()?;
                kernels
                    .matmuls()
                    .into_iter()
                    .filter(|&k| a.kernel.is_none_or(|o| o == k))
                    .map(|k| gemm_gpu(ctx, k, n, a.steps))
                    .collect::<Result<Vec<_>>>()?
            }
        };
        if job.group().leads() && a.json {
            say!("{}", serde_json::to_string(&reports).unwrap_or_default());
        } else if job.group().leads() {
            for r in &reports {
                say!(
                    "gemm {n}^3 {:<14} {:>9.3} ms  {:>8.2} GFLOP/s  on {}",
                    r.kernel,
                    r.ms_median,
                    r.gflops,
                    r.device
                );
            }
        }
        return Ok(());
    }

    let cfg = a.config()?;
    let opt = wgrnn::OptimConfig::new(a.optimizer.kind(0.0), 1e-3);
    let params = ParamLayout::new(&cfg).init(&cfg, 1);
    job.check_bench(a.batch, a.infer)?;
    let (report, gpu_stats) = match gpu {
        None => {
            let mut e = job.engine(Box::new(CpuEngine::new(cfg, opt, params)?))?;
            (
                run(e.as_mut(), a.batch, a.seq_len, a.steps, a.warmup, a.infer, a.ragged)?,
                None,
            )
        }
        Some(ctx) if job.ranks() > 1 => {
            let mut e = job.engine(Box::new(GpuEngine::new(ctx, cfg, opt, params)?))?;
            (
                run(e.as_mut(), a.batch, a.seq_len, a.steps, a.warmup, a.infer, a.ragged)?,
                None,
            )
        }
        Some(ctx) => {
            let mut e = GpuEngine::new(ctx, cfg, opt, params)?;
            // building the program here also tunes its products, before any timed step
            let dispatches = if a.infer {
                e.dispatches_per_forward(a.batch, a.seq_len)?
            } else {
                e.dispatches_per_step(a.batch, a.seq_len)?
            };
            let report = run(&mut e, a.batch, a.seq_len, a.steps, a.warmup, a.infer, a.ragged)?;
            let tune = e.kernel_report();
            let chosen = e.recurrence(a.batch)?;
            let name = |k: wgrnn::gpu::kernels::Kernel| k.shader().0.trim_end_matches(".wgsl");
            let stats = GpuStats {
                dispatches,
                recurrence: chosen.to_string(),
                record_ms: e.last_record_ms(),
                buffer_bytes: e.gpu_buffer_bytes(),
                kernels: json!({
                    "tune": tune.tune,
                    "clock": tune.clock,
                    "matmul": tune.matmul,
                    "recurrence_tune": tune.recurrence_tune,
                    "recurrence": tune.recurrence,
                    "step_forward": name(chosen.step.forward()),
                    "step_backward": name(chosen.step.backward()),
                }),
            };
            (report, Some(stats))
        }
    };
    let tokens = (a.batch * a.seq_len) as f64;
    let extras = job.bench_extras(report.step_ms_median, tokens);
    if job.group().leads() {
        print_report(a, &cfg, &report, gpu_stats, extras)?;
    }
    Ok(())
}

/// What only the GPU path reports.
struct GpuStats {
    dispatches: usize,
    /// how the recurrence ran: the per-step chain and its kernels ("step:sg"), or the
    /// whole-sequence kernel and its block ("seq:4")
    recurrence: String,
    /// host time recording the last timed step's commands
    record_ms: f64,
    /// device buffers held by the engine after the run (the peak: nothing is freed mid-run)
    buffer_bytes: u64,
    /// the kernels that ran: the tuning mode, the matrix product of each shape class, the
    /// recurrence of each recurrence class, the step kernels of the per-step chain
    kernels: serde_json::Value,
}

/// `extras`: a data-parallel run's figures (`Job::bench_extras`).
fn print_report(
    a: &BenchArgs,
    cfg: &ModelConfig,
    r: &BenchReport,
    gpu: Option<GpuStats>,
    extras: Option<serde_json::Value>,
) -> Result<()> {
    if a.json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let (Some(obj), Some(serde_json::Value::Object(more))) = (v.as_object_mut(), extras) {
            obj.extend(more);
        }
        v["config"] = json!(cfg.to_string());
        v["layers"] = json!(cfg.layers);
        v["hidden"] = json!(cfg.hidden);
        if let Some(g) = &gpu {
            v["dispatches_per_step"] = json!(g.dispatches);
            v["recurrence"] = json!(g.recurrence);
            v["record_ms"] = json!(g.record_ms);
            v["gpu_buffer_bytes"] = json!(g.buffer_bytes);
            v["kernels"] = g.kernels.clone();
        }
        say!("{v}");
        return Ok(());
    }
    say!("{cfg}");
    let mut line = format!(
        "{} B={} T={}: {:.2} ms/step (median of {}; min {:.2}, max {:.2}), {:.0} tokens/s, {:.2} GFLOP/s on {}",
        r.mode,
        r.batch,
        r.seq_len,
        r.step_ms_median,
        r.steps,
        r.step_ms_min,
        r.step_ms_max,
        r.tokens_per_s,
        r.gflops,
        r.device
    );
    if let Some(g) = &gpu {
        line += &format!(
            ", {} dispatches/step (recurrence {}), record_ms {:.3}, gpu_buffer_bytes {} ({:.1} MiB), tune {}, matmul kernels {}",
            g.dispatches,
            g.recurrence,
            g.record_ms,
            g.buffer_bytes,
            g.buffer_bytes as f64 / (1u64 << 20) as f64,
            g.kernels["tune"].as_str().unwrap_or_default(),
            g.kernels["matmul"]
        );
    }
    if let Some(mb) = r.peak_rss_mb {
        line += &format!(", peak RSS {mb:.0} MiB");
    }
    if let Some(x) = extras {
        line += &format!(
            " | {} MPI ranks: {:.0} global tokens/s, step ms per rank {}, all-reduce {:.3} ms/step",
            x["ranks"],
            x["global_tokens_per_s"].as_f64().unwrap_or(0.0),
            x["per_rank_step_ms"],
            x["allreduce_ms_per_step"].as_f64().unwrap_or(0.0)
        );
    }
    say!("{line}");
    Ok(())
}
