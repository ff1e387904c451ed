//! Adapter, device and limits: the only file that touches wgpu's version-churning setup calls.

use std::any::Any;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

const DRIVER_HINT: &str = "install a Vulkan driver (Debian: apt-get install mesa-vulkan-drivers)";

/// Which adapter to use (`None` fields mean "any") and how its matrix-product kernels and
/// its recurrence are chosen (read by `gpu::tune`, which parses the names).
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// "vulkan" | "metal" | "dx12" | "gl"
    pub backend: Option<String>,
    /// a case-insensitive substring of the adapter name
    pub adapter: Option<String>,
    /// "off" | "quick" | "full" (`--tune`); unset: off, the fixed kernels
    pub tune: Option<String>,
    /// one matrix-product kernel for every product (`kernels::MatmulKernel` names), instead
    /// of the tuner's choice: tests and comparisons
    pub matmul: Option<String>,
    /// the directory of the tuner's cache; unset: $XDG_CACHE_HOME/wgrnn, else ~/.cache/wgrnn
    pub cache_dir: Option<std::path::PathBuf>,
    /// the recurrence of every layer (`RecurrencePlan::parse` syntax: "step", "seq:8"),
    /// instead of the tuner's choice
    pub recurrence: Option<String>,
    /// the step kernels of the per-step chain (`kernels::StepKernel` names), instead of the
    /// tuner's choice; alone, it also asks for the per-step chain
    pub step: Option<String>,
}

impl GpuOptions {
    /// WGRNN_BACKEND, WGRNN_ADAPTER, WGRNN_TUNE, WGRNN_MATMUL, WGRNN_CACHE_DIR,
    /// WGRNN_RECURRENCE and WGRNN_STEP; empty values count as unset.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        GpuOptions {
            backend: var("WGRNN_BACKEND"),
            adapter: var("WGRNN_ADAPTER"),
            tune: var("WGRNN_TUNE"),
            matmul: var("WGRNN_MATMUL"),
            cache_dir: var("WGRNN_CACHE_DIR").map(Into::into),
            recurrence: var("WGRNN_RECURRENCE"),
            step: var("WGRNN_STEP"),
        }
    }
}

/// One device and queue, shared by every engine and test on it.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// the options it was opened with
    pub options: GpuOptions,
    /// The first error wgpu reported outside an error scope (or a device loss), kept until
    /// the next `take_error` so the engine can turn it into `Error::Gpu`.
    uncaptured: Arc<Mutex<Option<String>>>,
    /// The compiled kernels, filled on first use by `GpuContext::kernels` (in `kernels`):
    /// type-erased so this file does not depend on the kernel registry.
    pub(crate) kernel_cache: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
    /// The autotuner's choices, filled on first use by `GpuContext::tuner` (in `tune`),
    /// type-erased for the same reason.
    pub(crate) tuner_cache: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
}

fn parse_backends(name: Option<&str>) -> Result<wgpu::Backends> {
    Ok(match name.map(str::to_ascii_lowercase).as_deref() {
        None => wgpu::Backends::all(),
        Some("vulkan") => wgpu::Backends::VULKAN,
        Some("metal") => wgpu::Backends::METAL,
        Some("dx12") => wgpu::Backends::DX12,
        Some("gl") => wgpu::Backends::GL,
        Some(other) => {
            return Err(Error::config(
                "backend",
                other,
                "allowed: vulkan | metal | dx12 | gl (flag --backend or WGRNN_BACKEND)",
            ))
        }
    })
}

/// Hardware first; a CPU rasteriser (lavapipe) only when nothing else exists.
fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    pollster::block_on(instance.enumerate_adapters(backends))
}

impl GpuContext {
    pub fn new(opts: &GpuOptions) -> Result<Arc<GpuContext>> {
        Self::open(opts, 0)
    }

    /// `new`, taking the `index`-th (modulo their count) of the equally preferred adapters:
    /// each process of a data-parallel run passes its rank on the node, so that the
    /// processes of a node with several GPUs use one each. An adapter named in `opts` wins.
    pub fn open(opts: &GpuOptions, index: usize) -> Result<Arc<GpuContext>> {
        let backends = parse_backends(opts.backend.as_deref())?;
        let mut found = adapters(backends);
        let listed: Vec<String> = found.iter().map(|a| a.get_info().name).collect();
        if let Some(want) = &opts.adapter {
            let want = want.to_lowercase();
            found.retain(|a| a.get_info().name.to_lowercase().contains(&want));
        }
        found.sort_by_key(|a| preference(a.get_info().device_type));
        if opts.adapter.is_none() {
            if let Some(best) = found.first().map(|a| preference(a.get_info().device_type)) {
                found.retain(|a| preference(a.get_info().device_type) == best);
                let k = index % found.len();
                found.rotate_left(k);
            }
        }
        let Some(adapter) = found.into_iter().next() else {
            return Err(match (&opts.adapter, listed.is_empty()) {
                (_, true) => Error::gpu(format!("no GPU adapter found for backends {backends:?}"), DRIVER_HINT),
                // adapters exist, the name filter matched none: a driver is not what is missing
                (Some(want), false) => Error::gpu(
                    format!("no adapter name contains {want:?}; found: {}", listed.join(", ")),
                    format!(
                        "set WGRNN_ADAPTER to part of one of these names ({}), or unset it",
                        listed.join(" | ")
                    ),
                ),
                (None, false) => Error::gpu("no usable adapter", DRIVER_HINT),
            });
        };
        let info = adapter.get_info();
        // The adapter's own limits, not the WebGPU defaults: large hidden sizes need the
        // full storage-binding size and workgroup storage the hardware has.
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("wgrnn"),
            // Only what the adapter has: a subgroup kernel may be selected when present, and
            // every kernel has a plain version that needs no feature; the tuner times
            // kernels with timestamp queries where they exist, with the wall clock otherwise.
            required_features: adapter.features() & (wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::gpu(format!("request_device on {}: {e}", info.name), DRIVER_HINT))?;
        let uncaptured = Arc::new(Mutex::new(None::<String>));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let sink = uncaptured.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("device lost ({reason:?}): {msg}"));
        });
        Ok(Arc::new(GpuContext {
            device,
            queue,
            info,
            limits,
            options: opts.clone(),
            uncaptured,
            kernel_cache: Mutex::new(None),
            tuner_cache: Mutex::new(None),
        }))
    }

    /// "llvmpipe (LLVM 19.1.7, 256 bits) Vulkan Cpu"
    pub fn describe(&self) -> String {
        format!("{} {:?} {:?}", self.info.name, self.info.backend, self.info.device_type)
    }

    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns anything wgpu
    /// reports (there or through the uncaptured handler) into `Error::Gpu` naming `op`.
    pub fn scoped<T>(&self, op: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        let hint = "this is a bug in wgrnn's GPU path or the driver; rerun with --device cpu to compare";
        if let Some(e) = o {
            return Err(Error::gpu(
                format!("{op}: out of GPU memory: {e}"),
                "use a smaller batch (--batch) or hidden size",
            ));
        }
        if let Some(e) = v {
            return Err(Error::gpu(format!("{op}: {e}"), hint));
        }
        self.take_error(op)?;
        out
    }

    /// An error wgpu reported outside a scope (device loss, errors on other threads).
    pub(crate) fn take_error(&self, op: &str) -> Result<()> {
        let mut slot = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            Some(msg) => Err(Error::gpu(format!("{op}: {msg}"), "the GPU device reported an error")),
            None => Ok(()),
        }
    }

    /// Blocks until all submitted work is done.
    pub(crate) fn wait(&self, op: &str) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| {
            Error::gpu(
                format!("{op}: waiting for the GPU: {e}"),
                "the GPU device stopped responding",
            )
        })?;
        Ok(())
    }
}

/// What `wgrnn info` prints per adapter.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub is_software: bool,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
}

/// Every adapter on every backend, hardware first.
pub fn list_adapters() -> Vec<AdapterReport> {
    let mut found = adapters(wgpu::Backends::all());
    found.sort_by_key(|a| preference(a.get_info().device_type));
    found
        .iter()
        .map(|a| {
            let (info, l) = (a.get_info(), a.limits());
            AdapterReport {
                name: info.name,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                is_software: info.device_type == wgpu::DeviceType::Cpu,
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                max_buffer_size: l.max_buffer_size,
                max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            }
        })
        .collect()
}
