//! Which path runs a command: `auto` takes a hardware GPU when one exists and the CPU path
//! otherwise (a software adapter such as lavapipe is much slower than the CPU path on the
//! same machine); `gpu` forces the wgpu path on whatever adapter there is. Every command
//! decides through `select_device`.

use std::fmt;
use std::sync::Arc;

use crate::config::{str_enum, ModelConfig};
use crate::cpu::CpuEngine;
use crate::engine::Engine;
use crate::error::Result;
use crate::gpu::{GpuContext, GpuEngine, GpuOptions};
use crate::optim::OptimConfig;

str_enum!(
    /// The `--device` flag.
    DeviceChoice("device") {
        /// a hardware GPU if there is one, else the CPU path
        Auto => "auto",
        /// wgpu on any adapter, software ones included
        Gpu => "gpu",
        Cpu => "cpu",
    }
);

/// The path a choice resolved to.
pub enum Device {
    Cpu,
    Gpu(Arc<GpuContext>),
}

/// Why `auto` took the CPU path; displays as the one-line note for the user.
#[derive(Clone, Debug)]
pub struct Fallback {
    /// no adapter opened at all, which usually means a missing driver (a warning, shown even
    /// to --quiet runs), as opposed to a software adapter only (expected on many machines)
    pub no_adapter: bool,
    /// the adapter, or the error of opening one
    pub detail: String,
}

impl Fallback {
    /// The reason alone, for `info`.
    pub fn reason(&self) -> String {
        if self.no_adapter {
            format!("no adapter could be opened: {}", self.detail)
        } else {
            format!("the only adapter is software: {}; --device gpu forces it", self.detail)
        }
    }
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.no_adapter {
            write!(
                f,
                "warning: device auto: no GPU adapter could be opened ({}); using the CPU path",
                self.detail
            )
        } else {
            write!(
                f,
                "device auto: the only GPU adapter is software ({}); using the CPU path (faster here; --device gpu forces it)",
                self.detail
            )
        }
    }
}

/// Resolves `--device`; the fallback says why `auto` did not take a GPU. `opts` are the GPU
/// options (`GpuOptions::from_env`, with the command's `--tune`); `gpu_index` picks among
/// equally good adapters (see `GpuContext::open`): 0 for a single process.
pub fn select_device(choice: DeviceChoice, opts: &GpuOptions, gpu_index: usize) -> Result<(Device, Option<Fallback>)> {
    let open = || GpuContext::open(opts, gpu_index);
    Ok(match choice {
        DeviceChoice::Cpu => (Device::Cpu, None),
        DeviceChoice::Gpu => (Device::Gpu(open()?), None),
        DeviceChoice::Auto => match open() {
            Ok(ctx) if ctx.is_software() => {
                let why = Fallback {
                    no_adapter: false,
                    detail: ctx.describe(),
                };
                (Device::Cpu, Some(why))
            }
            Ok(ctx) => (Device::Gpu(ctx), None),
            Err(e) => {
                let why = Fallback {
                    no_adapter: true,
                    detail: e.to_string(),
                };
                (Device::Cpu, Some(why))
            }
        },
    })
}

/// An engine on the chosen path; `note` receives the reason when `auto` does not take the GPU.
pub fn make_engine(
    choice: DeviceChoice,
    opts: &GpuOptions,
    cfg: ModelConfig,
    opt: OptimConfig,
    params: Vec<f32>,
    note: &mut dyn FnMut(&Fallback),
) -> Result<Box<dyn Engine>> {
    make_engine_at(choice, opts, 0, cfg, opt, params, note)
}

/// `make_engine` on the `gpu_index`-th of the equally good GPU adapters.
pub fn make_engine_at(
    choice: DeviceChoice,
    opts: &GpuOptions,
    gpu_index: usize,
    cfg: ModelConfig,
    opt: OptimConfig,
    params: Vec<f32>,
    note: &mut dyn FnMut(&Fallback),
) -> Result<Box<dyn Engine>> {
    let (device, why) = select_device(choice, opts, gpu_index)?;
    if let Some(why) = why {
        note(&why);
    }
    Ok(match device {
        Device::Cpu => Box::new(CpuEngine::new(cfg, opt, params)?),
        Device::Gpu(ctx) => Box::new(GpuEngine::new(ctx, cfg, opt, params)?),
    })
}
