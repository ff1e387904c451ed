//! Throughput measurement shared by `wgrnn bench` and the criterion benches: timed training
//! (or forward-only) steps on random data, reported from the median step time.

use std::time::Instant;

use serde::Serialize;

use crate::batch::random_batch;
use crate::config::{str_enum, Input, ModelConfig};
use crate::engine::Engine;
use crate::error::{checked_product, Error, Result};
use crate::gpu::kernels::Kernel;
use crate::train::{check_host_memory, preflight};

str_enum!(
    /// `--loss`: a softmax head with cross-entropy, or a linear head with MSE.
    BenchLoss("loss") { Ce => "ce", Mse => "mse" }
);

str_enum!(
    /// `--kernel`: one of the GPU matrix-product kernels.
    GemmKernel("kernel") { Naive => "naive", Blocked => "blocked", Sg => "sg" }
);

impl GemmKernel {
    pub fn kernel(self) -> Kernel {
        match self {
            GemmKernel::Naive => Kernel::Matmul,
            GemmKernel::Blocked => Kernel::MatmulBlocked,
            GemmKernel::Sg => Kernel::MatmulSg,
        }
    }
}

/// Forward FLOPs of one batch by explicit count (issue 5):
/// F = 2·B·T·(Σ_l dirs·(in_l·H + H·H) + dirs·H·O), in_0 = E with an embedding, 0 for plain
/// tokens (a gather), I for dense inputs; in_l = dirs·H above.
pub fn forward_flops(cfg: &ModelConfig, b: usize, t: usize) -> f64 {
    let (h, dirs) = (cfg.hidden as f64, cfg.dirs() as f64);
    let in0 = match cfg.input {
        Input::Dense { size } => size as f64,
        Input::Tokens { embed: Some(e), .. } => e as f64,
        Input::Tokens { embed: None, .. } => 0.0,
    };
    let per_token: f64 = (0..cfg.layers)
        .map(|l| dirs * (if l == 0 { in0 * h } else { dirs * h * h } + h * h))
        .sum::<f64>()
        + dirs * h * cfg.output as f64;
    2.0 * (b * t) as f64 * per_token
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub device: String,
    pub mode: &'static str,
    pub batch: usize,
    pub seq_len: usize,
    pub steps: usize,
    pub step_ms_median: f64,
    pub step_ms_min: f64,
    pub step_ms_max: f64,
    pub tokens_per_s: f64,
    pub gflops: f64,
    /// peak resident memory of the process so far (Linux), host side: on the CPU path this
    /// is the activations and buffers; on the GPU path with a software adapter it includes
    /// the "device" memory too
    pub peak_rss_mb: Option<f64>,
}

/// Runs `warmup` untimed and `steps` timed steps of B×T random data (`ragged`: lengths
/// spread over T/2+1..=T). Training steps read the loss back only on the last step, as a
/// training loop that logs rarely would; the forward-only mode reads its outputs every step
/// (that is its product).
pub fn run(
    engine: &mut dyn Engine,
    b: usize,
    t: usize,
    steps: usize,
    warmup: usize,
    infer: bool,
    ragged: bool,
) -> Result<BenchReport> {
    let cfg = *engine.config();
    check_host_memory(&cfg, b, t, engine.kind())?;
    let total = warmup
        .checked_add(steps)
        .ok_or_else(|| Error::config("steps", steps, "--steps plus --warmup is too large"))?;
    preflight(
        steps as u128 * 8,
        &format!("the times of {steps} steps"),
        "use fewer --steps",
    )?;
    let mut batch = random_batch(&cfg, b, t, false, 0x5eed);
    if ragged {
        batch.lengths = Some((0..b).map(|i| (t - i % t.div_ceil(2)) as u32).collect());
    }
    let mut times = Vec::with_capacity(steps);
    for i in 0..total {
        let start = Instant::now();
        if infer {
            engine.forward(&batch)?;
        } else {
            // Reading the loss forces the step to finish, so each timed step is complete.
            engine.train_step(&batch, true)?;
        }
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let flops = forward_flops(&cfg, b, t) * if infer { 1.0 } else { 3.0 };
    Ok(BenchReport {
        device: engine.describe(),
        mode: if infer { "infer" } else { "train" },
        batch: b,
        seq_len: t,
        steps,
        step_ms_median: median,
        step_ms_min: times[0],
        step_ms_max: times[times.len() - 1],
        tokens_per_s: (b * t) as f64 / (median * 1e-3),
        gflops: flops / (median * 1e-3) / 1e9,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// VmHWM from /proc/self/status, in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[derive(Clone, Debug, Serialize)]
pub struct GemmReport {
    pub device: String,
    pub kernel: String,
    pub n: usize,
    pub ms_median: f64,
    pub gflops: f64,
}

fn gemm_report(device: String, kernel: String, n: usize, mut times: Vec<f64>) -> GemmReport {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    GemmReport {
        device,
        kernel,
        n,
        ms_median: median,
        gflops: 2.0 * (n as f64).powi(3) / (median * 1e-3) / 1e9,
    }
}

/// N², checked, and the host memory of `operands` N×N f32 matrices checked against what is
/// available: the kernels below index N×N buffers without bounds checks of their own.
pub fn gemm_size(n: usize, operands: u128) -> Result<usize> {
    let nn = checked_product("the --gemm matrix N×N", &[n, n])?;
    preflight(
        nn as u128 * 4 * operands,
        &format!("{operands} matrices of {n}×{n} f32"),
        "use a smaller --gemm N",
    )?;
    Ok(nn)
}

/// The CPU path's matrix product on N×N×N (C = A·B^T, the forward projection's layout).
pub fn gemm_cpu(n: usize, reps: usize) -> Result<GemmReport> {
    use crate::cpu::{gemm, Op};
    let nn = gemm_size(n, 3)?;
    let a = vec![0.5f32; nn];
    let b = vec![0.25f32; nn];
    let mut c = vec![0f32; nn];
    gemm(n, n, n, &a, Op::N, &b, Op::T, 0.0, &mut c); // warm-up: thread pool, caches
    let times = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            gemm(n, n, n, &a, Op::N, &b, Op::T, 0.0, &mut c);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    Ok(gemm_report("cpu (gemm)".into(), "gemm crate".into(), n, times))
}

/// One GPU matrix-product kernel on N×N×N (C = A·B^T), one dispatch per submission, timed
/// to completion.
pub fn gemm_gpu(
    ctx: &std::sync::Arc<crate::gpu::GpuContext>,
    kernel: crate::gpu::kernels::Kernel,
    n: usize,
    reps: usize,
) -> Result<GemmReport> {
    use crate::gpu::buffers::{tensor, upload, Scale};
    use crate::gpu::kernels::{mat, matmul, Acc};
    use crate::gpu::program::{Op, Program};
    // one host copy at a time goes up; software adapters hold the three operands in host memory
    let nn = gemm_size(n, 3)?;
    let buf = |v: f32| -> Result<wgpu::Buffer> {
        let b = tensor(ctx, "gemm bench operand", nn, Scale::Model)?;
        upload(ctx, &b, 0, &vec![v; nn]);
        Ok(b)
    };
    let (a, b, c) = (buf(0.5)?, buf(0.25)?, buf(0.0)?);
    let d = matmul(
        kernel,
        mat(&c, 0, n, n),
        mat(&a, 0, n, n),
        mat(&b, 0, n, n).t(),
        Acc::Set,
    )?;
    let kernels = ctx.kernels()?;
    let prog = Program::new(ctx, &kernels, &[Op::Dispatch(d)])?;
    prog.run(ctx)?; // warm-up: the shader compiles on first dispatch
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        prog.run(ctx)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(gemm_report(ctx.describe(), format!("{kernel:?}"), n, times))
}
