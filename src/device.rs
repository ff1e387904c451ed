//! Which path runs a command: `auto` takes a hardware GPU when one exists and the CPU path
//! otherwise (a software adapter such as lavapipe is much slower than the CPU path on the
//! same machine); `gpu` forces the wgpu path on whatever adapter there is.

use std::fmt;
use std::str::FromStr;

use crate::config::ModelConfig;
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
