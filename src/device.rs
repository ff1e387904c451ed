//! Which path runs a command: `auto` takes a hardware GPU when one exists and the CPU path
//! otherwise (a software adapter such as lavapipe is much slower than the CPU path on the
//! same machine); `gpu` forces the wgpu path on whatever adapter there is. Every command
//! decides through `select_device`.

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

/// Resolves `--device`. The string is the one-line note for a user whose `auto` did not take
/// a GPU; it starts with "warning:" when no adapter opened at all (shown even to --quiet
/// runs), since that usually means a missing driver.
pub fn select_device(choice: DeviceChoice) -> Result<(Device, Option<String>)> {
    let open = || GpuContext::new(&GpuOptions::from_env());
    Ok(match choice {
        DeviceChoice::Cpu => (Device::Cpu, None),
        DeviceChoice::Gpu => (Device::Gpu(open()?), None),
        DeviceChoice::Auto => match open() {
            Ok(ctx) if ctx.is_software() => {
                let note = format!(
                    "device auto: the only GPU adapter is software ({}); using the CPU path (faster here; --device gpu forces it)",
                    ctx.describe()
                );
                (Device::Cpu, Some(note))
            }
            Ok(ctx) => (Device::Gpu(ctx), None),
            Err(e) => {
                let note = format!("warning: device auto: no GPU adapter could be opened ({e}); using the CPU path");
                (Device::Cpu, Some(note))
            }
        },
    })
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
    let (device, why) = select_device(choice)?;
    if let Some(why) = why {
        note(&why);
    }
    Ok(match device {
        Device::Cpu => Box::new(CpuEngine::new(cfg, opt, params)?),
        Device::Gpu(ctx) => Box::new(GpuEngine::new(ctx, cfg, opt, params)?),
    })
}
