//! The autotuner (issue 10): which matrix-product kernel computes each product of a
//! schedule. Every candidate gives the same bits (each element of C is the same fma chain
//! over q in order; see shaders/common/mm_tile.wgsl), so the choice changes speed only,
//! never a result: runs stay bitwise deterministic whatever was chosen.
//!
//! Products fall into shape classes: the sizes anchored to the next power of two, the
//! transposes and whether each operand takes vec4 loads (Burn/CubeCL's matmul autotune key).
//! The first time a class appears, its candidates are timed once at the class's shape
//! (`clock`), the fastest is kept for the rest of the process and written to the cache file
//! (`cache`), keyed by adapter, driver, backend, wgrnn version and kernel sources, so later
//! runs skip the timing. Timing happens when a batch shape's program is built
//! (`GpuEngine::program`, on the first call at that shape), never in the per-step path.
//!
//! `TuneMode::Off`, the library's default, keeps `Kernels::matmul`, the choice measured on
//! lavapipe: no timing, no file. `GpuOptions::matmul` (WGRNN_MATMUL) forces one kernel.

mod cache;
mod clock;

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use clock::{median_time, Clock};

use super::context::{GpuContext, GpuOptions};
use super::kernels::{matmul_params, params::MatmulP, with_matmul_kernel, Kernels, MatmulKernel};
use super::program::Op;
use crate::config::str_enum;
use crate::error::{Error, Result};

str_enum!(
    /// `--tune`: how the matrix-product kernels are chosen.
    TuneMode("tune") {
        /// the fixed kernels, measured on lavapipe; no timing, no cache file
        Off => "off",
        /// time each new shape class briefly: 5 runs per candidate of about 1 ms of work
        Quick => "quick",
        /// 11 runs of about 5 ms each, and classes a quick run chose are timed again
        Full => "full",
    }
);

/// The largest size a class is anchored to: bigger products behave alike, and the timing
/// shape stays within a few hundred MB.
const ANCHOR_MAX: usize = 4096;

/// A product's shape class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShapeClass {
    /// m, n, k anchored to the next power of two (at most ANCHOR_MAX)
    pub dims: [usize; 3],
    /// the operands are stored transposed
    pub ta: bool,
    pub tb: bool,
    /// offset and leading dimension are multiples of 4: the tiled kernels' vec4 loads
    pub va: bool,
    pub vb: bool,
}

impl ShapeClass {
    pub fn of(p: &MatmulP) -> ShapeClass {
        let anchor = |x: u32| (x as usize).next_power_of_two().min(ANCHOR_MAX);
        let lda = if p.ta != 0 { p.m } else { p.k };
        let ldb = if p.tb != 0 { p.k } else { p.n };
        ShapeClass {
            dims: [anchor(p.m), anchor(p.n), anchor(p.k)],
            ta: p.ta != 0,
            tb: p.tb != 0,
            va: (p.a_off | lda).is_multiple_of(4),
            vb: (p.b_off | ldb).is_multiple_of(4),
        }
    }

    /// "tn m2048 n128 k256 vec4 a-": its key in the cache and the reports
    pub fn name(&self) -> String {
        let t = |x: bool| if x { 't' } else { 'n' };
        let v = |x: bool, c: char| if x { c } else { '-' };
        let [m, n, k] = self.dims;
        format!(
            "{}{} m{m} n{n} k{k} vec4 {}{}",
            t(self.ta),
            t(self.tb),
            v(self.va, 'a'),
            v(self.vb, 'b')
        )
    }
}

/// How each product's kernel is chosen.
#[derive(Clone, Copy, Debug)]
enum Policy {
    /// the fixed choice everywhere (`--tune off`)
    Fixed(MatmulKernel),
    /// the kernel WGRNN_MATMUL names, everywhere
    Forced(MatmulKernel),
    Tune(TuneMode),
}

/// A class's kernel and the mode that chose it.
#[derive(Clone, Copy, Debug)]
struct Choice {
    kernel: MatmulKernel,
    mode: TuneMode,
}

#[derive(Default)]
struct State {
    /// this adapter's choices: from the cache file, then from timing
    known: BTreeMap<String, Choice>,
    /// classes timed by this tuner
    timed: usize,
    /// the kernel of each class met so far, for the reports
    used: BTreeMap<String, MatmulKernel>,
}

/// The tuner of one device: its policy, its clock, its cache file and its choices.
pub struct Tuner {
    policy: Policy,
    clock: Clock,
    cache: Option<cache::Cache>,
    state: Mutex<State>,
}

/// What `info` and `bench --json` report.
#[derive(Clone, Debug, Serialize)]
pub struct TuneReport {
    pub tune: String,
    /// how candidates are timed: "timestamps" or "wall clock"
    pub clock: &'static str,
    /// the fixed choice and the candidates the tuner times
    pub default: MatmulKernel,
    pub candidates: Vec<MatmulKernel>,
    /// the cache file (none when the policy does not tune, or there is no cache directory)
    pub cache: Option<std::path::PathBuf>,
    /// class → kernel of every product met in this process
    pub matmul: BTreeMap<String, MatmulKernel>,
    /// class → kernel of every class known for this adapter (cache file and timings)
    pub known: BTreeMap<String, MatmulKernel>,
}

impl Tuner {
    /// The tuner `opts` asks for (`GpuContext::tuner` passes the context's own options; tests
    /// pass others, e.g. another cache directory). Reads this adapter's cached choices.
    pub fn new(ctx: &GpuContext, kernels: &Kernels, opts: &GpuOptions) -> Result<Tuner> {
        let policy = match (&opts.matmul, &opts.tune) {
            (Some(name), _) => Policy::Forced(forced(kernels, name)?),
            (None, Some(mode)) => match mode.parse::<TuneMode>()? {
                TuneMode::Off => Policy::Fixed(fixed(kernels)?),
                m => Policy::Tune(m),
            },
            (None, None) => Policy::Fixed(fixed(kernels)?),
        };
        let cache = match policy {
            Policy::Tune(_) => cache::Cache::new(ctx, opts),
            Policy::Fixed(_) | Policy::Forced(_) => None,
        };
        let mut known = BTreeMap::new();
        for (class, e) in cache.as_ref().map(cache::Cache::load).unwrap_or_default() {
            // a kernel this build does not have, or this device cannot run: time it again
            let kernel = e
                .kernel
                .parse::<MatmulKernel>()
                .ok()
                .filter(|k| kernels.available(k.kernel()));
            if let (Some(kernel), Ok(mode)) = (kernel, e.mode.parse::<TuneMode>()) {
                known.insert(class, Choice { kernel, mode });
            }
        }
        Ok(Tuner {
            policy,
            clock: Clock::of(ctx),
            cache,
            state: Mutex::new(State {
                known,
                ..State::default()
            }),
        })
    }

    /// Moves every matrix product of `ops` onto the kernel chosen for its shape class,
    /// timing the classes not known yet.
    pub fn assign(&self, ctx: &GpuContext, kernels: &Kernels, ops: &mut [Op]) -> Result<()> {
        for op in ops {
            if let Op::Dispatch(d) = op {
                if let Some(p) = matmul_params(d) {
                    let k = self.pick(ctx, kernels, &p)?.kernel();
                    if k != d.kernel {
                        *d = with_matmul_kernel(d, k)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The kernel for a product of sizes `p`.
    pub fn pick(&self, ctx: &GpuContext, kernels: &Kernels, p: &MatmulP) -> Result<MatmulKernel> {
        let class = ShapeClass::of(p);
        let name = class.name();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let kernel = match self.policy {
            Policy::Fixed(k) | Policy::Forced(k) => k,
            Policy::Tune(mode) => match st.known.get(&name) {
                // a quick choice does not satisfy a full run
                Some(c) if c.mode == mode || c.mode == TuneMode::Full => c.kernel,
                _ => {
                    let t = clock::time_class(ctx, kernels, &class, mode, self.clock)?;
                    st.timed += 1;
                    st.known.insert(name.clone(), Choice { kernel: t.kernel, mode });
                    if let Some(c) = &self.cache {
                        c.store(&name, &t, mode);
                    }
                    t.kernel
                }
            },
        };
        st.used.insert(name, kernel);
        Ok(kernel)
    }

    /// Shape classes this tuner has timed (not found in the cache).
    pub fn timed(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).timed
    }

    pub fn report(&self, kernels: &Kernels) -> TuneReport {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        TuneReport {
            tune: match self.policy {
                Policy::Fixed(_) => TuneMode::Off.to_string(),
                Policy::Forced(k) => format!("off, WGRNN_MATMUL={k}"),
                Policy::Tune(m) => m.to_string(),
            },
            clock: self.clock.name(),
            default: MatmulKernel::of(kernels.matmul).unwrap_or_default(),
            candidates: candidates(kernels),
            cache: self.cache.as_ref().map(|c| c.path().to_path_buf()),
            matmul: st.used.clone(),
            known: st.known.iter().map(|(n, c)| (n.clone(), c.kernel)).collect(),
        }
    }
}

/// The fixed choice, by name.
fn fixed(kernels: &Kernels) -> Result<MatmulKernel> {
    MatmulKernel::of(kernels.matmul)
        .ok_or_else(|| Error::gpu(format!("{:?} is not a matmul kernel", kernels.matmul), "internal error"))
}

/// The kernel WGRNN_MATMUL names, if this device runs it.
fn forced(kernels: &Kernels, name: &str) -> Result<MatmulKernel> {
    let k: MatmulKernel = name.parse()?;
    if !kernels.available(k.kernel()) {
        let runs: Vec<String> = kernels.matmuls().iter().map(ToString::to_string).collect();
        return Err(Error::gpu(
            format!("matmul kernel {k} (WGRNN_MATMUL) needs subgroups, which this adapter lacks"),
            format!("use one of: {}", runs.join(" | ")),
        ));
    }
    Ok(k)
}

/// What the tuner times: every matrix product this device runs but the naive reference,
/// the fixed choice first (a tie keeps it).
fn candidates(kernels: &Kernels) -> Vec<MatmulKernel> {
    let first = MatmulKernel::of(kernels.matmul);
    let rest = kernels
        .matmuls()
        .into_iter()
        .filter(|&k| k != MatmulKernel::Naive && Some(k) != first);
    first.into_iter().chain(rest).collect()
}

impl GpuContext {
    /// The tuner of this device under its options (made on first use, shared by every
    /// engine on it, so a class is timed once per process).
    ///
    /// Held type-erased, like the kernels: this impl block sits here, so `context` never
    /// names `Tuner` and the imports run one way.
    pub fn tuner(&self) -> Result<Arc<Tuner>> {
        let mut slot = self.tuner_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = slot.as_ref().and_then(|a| a.clone().downcast::<Tuner>().ok()) {
            return Ok(t);
        }
        let t = Arc::new(Tuner::new(self, &*self.kernels()?, &self.options)?);
        *slot = Some(t.clone() as Arc<dyn Any + Send + Sync>);
        Ok(t)
    }
}
