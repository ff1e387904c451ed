//! The tuner's choices on disk: one JSON file, `tune.json` in `GpuOptions::cache_dir`
//! (WGRNN_CACHE_DIR), else $XDG_CACHE_HOME/wgrnn, else ~/.cache/wgrnn. Per adapter key it
//! holds two tables, the matrix products' and the recurrence's: each shape class's choice,
//! the mode that chose it, the shape timed and every candidate's median µs (for whoever
//! wants to read why).
//!
//! A missing, unreadable or corrupt file, or one of another format, and entries of another
//! key mean "not tuned yet": those classes are timed again, never an error. A write re-reads
//! the file, merges its entry and replaces the file atomically (`fsio::write_atomic`:
//! temporary file + rename), so concurrent writers, threads or processes, each leave a whole
//! file; one may drop another's newest entry, which is then timed again by a later run.
//! Entries of other wgrnn versions or kernel sources are dropped at each write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::gpu::context::{GpuContext, GpuOptions};
use crate::gpu::kernels::{Kernel, MatmulKernel, StepKernel};
use crate::tensor_file::Fnv;

/// Version of the file's layout: a file of another one is ignored (and replaced).
const FORMAT: u32 = 1;

#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    adapters: Vec<AdapterChoices>,
}

#[derive(Serialize, Deserialize)]
struct AdapterChoices {
    key: AdapterKey,
    /// shape class (`ShapeClass::name`) → choice
    matmul: BTreeMap<String, Entry>,
    /// recurrence class (`RecClass::name`) → choice; absent from files written before it
    #[serde(default)]
    recurrence: BTreeMap<String, Entry>,
}

/// Which of an adapter's tables an entry belongs to.
#[derive(Clone, Copy, Debug)]
pub enum Table {
    Matmul,
    Recurrence,
}

impl AdapterChoices {
    fn table(&mut self, t: Table) -> &mut BTreeMap<String, Entry> {
        match t {
            Table::Matmul => &mut self.matmul,
            Table::Recurrence => &mut self.recurrence,
        }
    }
}

/// What a choice holds for: the adapter, its driver and backend, this wgrnn, and the
/// sources of the kernels it was chosen among.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterKey {
    adapter: String,
    vendor: u32,
    device: u32,
    driver: String,
    driver_info: String,
    backend: String,
    wgrnn: String,
    /// FNV-1a of the candidates' sources (matrix products, step and whole-sequence
    /// kernels): any edit to a kernel re-tunes
    kernels: String,
}

impl AdapterKey {
    fn of(ctx: &GpuContext) -> AdapterKey {
        let mut h = Fnv::new();
        let steps = StepKernel::every().flat_map(|s| [s.forward(), s.backward()]);
        let seq = [Kernel::RnnSeqForward, Kernel::RnnSeqBackward];
        for k in MatmulKernel::every().map(MatmulKernel::kernel).chain(steps).chain(seq) {
            h.add(k.source().as_bytes());
        }
        let i = &ctx.info;
        AdapterKey {
            adapter: i.name.clone(),
            vendor: i.vendor,
            device: i.device,
            driver: i.driver.clone(),
            driver_info: i.driver_info.clone(),
            backend: format!("{:?}", i.backend),
            wgrnn: env!("CARGO_PKG_VERSION").to_string(),
            kernels: h.hex(),
        }
    }
}

/// One class's choice as stored: names, parsed (and checked against the device) on load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// the kernel (`MatmulKernel`), or the recurrence (`RecChoice`: "step:sg", "seq:4")
    pub kernel: String,
    pub mode: String,
    /// the (m, n, k) timed, or the recurrence's (B, H, T)
    pub shape: [usize; 3],
    /// median µs of each candidate
    pub us: BTreeMap<String, f64>,
}

/// The cache file of one adapter key.
pub struct Cache {
    path: PathBuf,
    key: AdapterKey,
    /// a failed write is reported once
    warned: AtomicBool,
}

impl Cache {
    /// `None` when there is no cache directory to use (no option, XDG_CACHE_HOME or HOME):
    /// the choices then last for the process.
    pub fn new(ctx: &GpuContext, opts: &GpuOptions) -> Option<Cache> {
        // XDG: a relative XDG_CACHE_HOME is invalid and is ignored
        let env_dir = |k: &str| std::env::var_os(k).map(PathBuf::from).filter(|p| p.is_absolute());
        let dir = opts
            .cache_dir
            .clone()
            .or_else(|| env_dir("XDG_CACHE_HOME").map(|d| d.join("wgrnn")))
            .or_else(|| env_dir("HOME").map(|h| h.join(".cache").join("wgrnn")))?;
        Some(Cache {
            path: dir.join("tune.json"),
            key: AdapterKey::of(ctx),
            warned: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This key's entries of `table` (none when the file is missing or unusable).
    pub fn load(&self, table: Table) -> BTreeMap<String, Entry> {
        read(&self.path)
            .adapters
            .into_iter()
            .find(|a| a.key == self.key)
            .map(|mut a| std::mem::take(a.table(table)))
            .unwrap_or_default()
    }

    /// Adds one class's choice to `table` in the file. A failure (read-only directory, full
    /// disk) is a warning: the choice still holds for this process.
    pub fn store(&self, table: Table, class: &str, entry: Entry) {
        let mut file = read(&self.path);
        file.format = FORMAT;
        file.adapters
            .retain(|a| a.key.wgrnn == self.key.wgrnn && a.key.kernels == self.key.kernels);
        let ours = match file.adapters.iter().position(|a| a.key == self.key) {
            Some(i) => &mut file.adapters[i],
            None => {
                file.adapters.push(AdapterChoices {
                    key: self.key.clone(),
                    matmul: BTreeMap::new(),
                    recurrence: BTreeMap::new(),
                });
                file.adapters.last_mut().expect("just pushed")
            }
        };
        ours.table(table).insert(class.to_string(), entry);
        if let Err(e) = self.write(&file) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                crate::fsio::stderr_line(&format!(
                    "warning: the kernel tuning cache was not written ({e}); its choices hold for this run only"
                ));
            }
        }
    }

    fn write(&self, file: &CacheFile) -> crate::error::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::Io {
                op: "creating the cache directory",
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let mut bytes = serde_json::to_vec_pretty(file)
            .map_err(|e| crate::error::Error::gpu(format!("tuning cache: {e}"), "internal error"))?;
        bytes.push(b'\n');
        crate::fsio::write_atomic(&self.path, &bytes)
    }
}

/// The file's contents; empty when it is missing, unreadable, corrupt or of another format.
fn read(path: &Path) -> CacheFile {
    crate::fsio::read_file(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
        .filter(|f| f.format == FORMAT)
        .unwrap_or_default()
}
