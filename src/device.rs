//! Which path runs a command: `auto` takes a hardware GPU when one exists and the CPU path
//! otherwise (a software adapter such as lavapipe is much slower than the CPU path on the
//! same machine); `gpu` forces the wgpu path on whatever adapter there is.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::batch::Batch;
use crate::config::ModelConfig;
use crate::cpu::backward::Want;
use crate::cpu::CpuEngine;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, GpuEngine, GpuOptions};
use crate::optim::OptimConfig;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Gpu,
    Cpu,
}

impl DeviceChoice {
    pub const ALL: &'static [&'static str] = &["auto", "gpu", "cpu"];
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Gpu => "gpu",
            DeviceChoice::Cpu => "cpu",
        })
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            _ => Err(Error::config(
                "device",
                s,
                format!("allowed: {}", Self::ALL.join(" | ")),
            )),
        }
    }
}

/// An engine on the chosen path; `note` receives the one-line explanation when `auto` does
/// not take the GPU.
pub fn make_engine(
    choice: DeviceChoice,
    cfg: ModelConfig,
    opt: OptimConfig,
    params: Vec<f32>,
    note: &mut dyn FnMut(&str),
) -> Result<Box<dyn Engine>> {
    match choice {
        DeviceChoice::Cpu => Ok(Box::new(CpuEngine::new(cfg, opt, params)?)),
        DeviceChoice::Gpu => Ok(Box::new(GpuEngine::new(
            GpuContext::new(&GpuOptions::from_env())?,
            cfg,
            opt,
            params,
        )?)),
        DeviceChoice::Auto => match GpuContext::new(&GpuOptions::from_env()) {
            Ok(ctx) if ctx.is_software() => {
                note(&format!(
                    "device auto: the only GPU adapter is software ({}); using the CPU path (faster here; --device gpu forces it)",
                    ctx.describe()
                ));
                Ok(Box::new(CpuEngine::new(cfg, opt, params)?))
            }
            Ok(ctx) => Ok(Box::new(GpuEngine::new(ctx, cfg, opt, params)?)),
            Err(e) => {
                note(&format!(
                    "warning: device auto: no GPU adapter could be opened ({e}); using the CPU path"
                ));
                Ok(Box::new(CpuEngine::new(cfg, opt, params)?))
            }
        },
    }
}

/// One compared quantity of `cross_check`.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub what: String,
    pub max_abs: f64,
    /// ‖gpu - cpu‖ / ‖cpu‖ (a plain relative difference for scalars)
    pub rel: f64,
    pub bound: f64,
    pub ok: bool,
}

impl Diff {
    fn new(what: String, cpu: &[f32], gpu: &[f32], bound: f64) -> Self {
        let (mut d2, mut c2, mut max_abs) = (0.0f64, 0.0f64, 0.0f64);
        for (&c, &g) in cpu.iter().zip(gpu) {
            let d = (g as f64 - c as f64).abs();
            d2 += d * d;
            c2 += (c as f64) * (c as f64);
            max_abs = max_abs.max(d);
        }
        let rel = if c2 > 0.0 { (d2 / c2).sqrt() } else { d2.sqrt() };
        // NaN fails every comparison, so a NaN anywhere is a failure (SPEC §5)
        let finite = cpu.iter().chain(gpu).all(|v| v.is_finite()) && cpu.len() == gpu.len();
        Diff {
            what,
            max_abs,
            rel,
            bound,
            ok: finite && rel < bound,
        }
    }
}

/// SPEC §5 bounds
pub const LOSS_REL: f64 = 1e-5;
pub const GRAD_REL: f64 = 1e-4;

/// Runs the same batches through the CPU and the given (GPU) engine from the same weights:
/// the loss and every gradient tensor of the first batch, then the loss of each of `steps`
/// training steps and every weight tensor after them.
pub fn cross_check(cpu: &mut dyn Engine, gpu: &mut dyn Engine, batches: &[Batch<f32>]) -> Result<Vec<Diff>> {
    let layout = cpu.layout().clone();
    let mut out = Vec::new();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    let (lc, gc) = cpu.loss_and_grads(first, Want::default())?;
    let (lg, gg) = gpu.loss_and_grads(first, Want::default())?;
    out.push(Diff::new("loss".into(), &[lc], &[lg], LOSS_REL));
    for t in &layout.tensors {
        out.push(Diff::new(
            format!("grad {}", t.name),
            &gc.params[t.range()],
            &gg.params[t.range()],
            GRAD_REL,
        ));
    }
    for (k, b) in batches.iter().enumerate() {
        let lc = cpu.train_step(b, true)?.unwrap_or(f32::NAN);
        let lg = gpu.train_step(b, true)?.unwrap_or(f32::NAN);
        out.push(Diff::new(format!("loss at step {}", k + 1), &[lc], &[lg], LOSS_REL));
    }
    let (pc, pg) = (cpu.params()?, gpu.params()?);
    for t in &layout.tensors {
        out.push(Diff::new(
            format!("weight {} after {} steps", t.name, batches.len()),
            &pc[t.range()],
            &pg[t.range()],
            GRAD_REL,
        ));
    }
    Ok(out)
}
