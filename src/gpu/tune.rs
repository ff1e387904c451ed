//! The autotuner (issue 10): which matrix-product kernel computes each product of a
//! schedule, and how each batch shape's recurrence is recorded (`recurrence`: the per-step
//! chain with one of the step kernels, or a whole-sequence kernel). Every candidate gives
//! the same bits (each element of C is the same fma chain over q in order, see
//! shaders/common/mm_tile.wgsl; the recurrence kernels likewise), so the choice changes
//! speed only, never a result: runs stay bitwise deterministic whatever was chosen.
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
//! lavapipe, and `Kernels::recurrence` with `Kernels::step`: no timing, no file.
//! `GpuOptions::matmul` (WGRNN_MATMUL) forces one product kernel; `GpuOptions::recurrence`
//! (WGRNN_RECURRENCE) and `GpuOptions::step` (WGRNN_STEP) force the recurrence.

mod cache;
mod clock;
mod recurrence;

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use clock::{median_time, Clock};
pub use recurrence::{all_candidates, RecChoice, RecClass};

use super::context::{GpuContext, GpuOptions};
use super::kernels::{
    matmul_flops, matmul_pair, matmul_params, params::MatmulP, runs_pairs, with_matmul_kernel, Dispatch, Kernels,
    MatmulKernel, RecurrencePlan, StepKernel,
};
use super::program::Op;
use crate::config::str_enum;
use crate::error::{Error, Result};
use cache::{Entry, Table};

str_enum!(
    /// `--tune`: how the matrix-product kernels and the recurrence are chosen.
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

/// How each batch shape's recurrence is chosen.
#[derive(Clone, Copy, Debug)]
enum RecPolicy {
    /// the device's fixed choice (`--tune off`)
    Fixed,
    /// what WGRNN_RECURRENCE and WGRNN_STEP name (a step kernel alone: the per-step chain
    /// with it), the fixed choice for the other
    Forced(Option<RecurrencePlan>, Option<StepKernel>),
    Tune(TuneMode),
}

/// A class's choice and the mode that chose it.
#[derive(Clone, Copy, Debug)]
struct Choice<K> {
    kernel: K,
    mode: TuneMode,
}

impl<K: Copy> Choice<K> {
    /// The choice, if a run in `mode` takes it: a quick choice does not satisfy a full run.
    fn serves(&self, mode: TuneMode) -> Option<K> {
        (self.mode == mode || self.mode == TuneMode::Full).then_some(self.kernel)
    }
}

#[derive(Default)]
struct State {
    /// this adapter's choices: from the cache file, then from timing
    known: BTreeMap<String, Choice<MatmulKernel>>,
    rec_known: BTreeMap<String, Choice<RecChoice>>,
    /// classes timed by this tuner (products and recurrences)
    timed: usize,
    /// the choice of each class met so far, for the reports
    used: BTreeMap<String, MatmulKernel>,
    rec_used: BTreeMap<String, RecChoice>,
}

/// The tuner of one device: its policies, its clock, its cache file and its choices.
pub struct Tuner {
    policy: Policy,
    rec_policy: RecPolicy,
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
    /// the recurrence's policy: "off", "quick", "full" or what is forced
    pub recurrence_tune: String,
    /// the recurrence's candidates on this device ("step:sg", "seq:4", ...)
    pub recurrence_candidates: Vec<String>,
    /// recurrence class → choice of every batch shape met in this process
    pub recurrence: BTreeMap<String, String>,
    /// recurrence class → choice of every class known for this adapter
    pub recurrence_known: BTreeMap<String, String>,
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
        let rec_policy = rec_policy(kernels, opts)?;
        let cache = match (policy, rec_policy) {
            (Policy::Tune(_), _) | (_, RecPolicy::Tune(_)) => cache::Cache::new(ctx, opts),
            _ => None,
        };
        // a kernel this build does not have, or this device cannot run: time it again
        let known = load(cache.as_ref(), Table::Matmul, |k| {
            k.parse::<MatmulKernel>().ok().filter(|k| kernels.available(k.kernel()))
        });
        let rec_known = load(cache.as_ref(), Table::Recurrence, |k| RecChoice::parse(k, kernels));
        Ok(Tuner {
            policy,
            rec_policy,
            clock: Clock::of(ctx),
            cache,
            state: Mutex::new(State {
                known,
                rec_known,
                ..State::default()
            }),
        })
    }

    /// Moves every matrix product of `ops` onto the kernel chosen for its shape class,
    /// timing the classes not known yet. A pair whose two picks are tiled kernels becomes one
    /// dispatch on the pick of its larger product (every kernel gives the same bits).
    pub fn assign(&self, ctx: &GpuContext, kernels: &Kernels, ops: &mut [Op]) -> Result<()> {
        for op in ops {
            match op {
                Op::Dispatch(d) => self.assign_one(ctx, kernels, d)?,
                Op::Pair(ds) => {
                    for d in ds.iter_mut() {
                        self.assign_one(ctx, kernels, d)?;
                    }
                    if let Some(d) = fuse(ds)? {
                        *op = Op::Dispatch(d);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A product onto its pick (any other dispatch as it is).
    fn assign_one(&self, ctx: &GpuContext, kernels: &Kernels, d: &mut Dispatch) -> Result<()> {
        if let Some(p) = matmul_params(d) {
            let k = self.pick(ctx, kernels, &p)?.kernel();
            if k != d.kernel {
                *d = with_matmul_kernel(d, k)?;
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
            Policy::Tune(mode) => match st.known.get(&name).and_then(|c| c.serves(mode)) {
                Some(k) => k,
                None => {
                    let t = clock::time_class(ctx, kernels, &class, mode, self.clock)?;
                    st.timed += 1;
                    st.known.insert(name.clone(), Choice { kernel: t.kernel, mode });
                    self.store(Table::Matmul, &name, entry(t.kernel, t.shape, t.us, mode));
                    t.kernel
                }
            },
        };
        st.used.insert(name, kernel);
        Ok(kernel)
    }

    /// How the recurrence of a layer of `hidden` units on `batch` sequences is recorded,
    /// timing its class if it is not known yet (`Auto`, the fixed choice on hardware, is
    /// left for the schedule to resolve per chunk).
    pub fn recurrence(&self, ctx: &GpuContext, kernels: &Kernels, batch: usize, hidden: usize) -> Result<RecChoice> {
        let class = RecClass::of(kernels, batch, hidden);
        let name = class.name();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let choice = match self.rec_policy {
            RecPolicy::Fixed => RecChoice::fixed(kernels),
            RecPolicy::Forced(plan, step) => forced_recurrence(kernels, plan, step),
            RecPolicy::Tune(mode) => match st.rec_known.get(&name).and_then(|c| c.serves(mode)) {
                Some(c) => c,
                None => {
                    let t = recurrence::time_recurrence(ctx, kernels, &class, mode, self.clock)?;
                    st.timed += 1;
                    st.rec_known.insert(name.clone(), Choice { kernel: t.choice, mode });
                    self.store(Table::Recurrence, &name, entry(t.choice, t.shape, t.us, mode));
                    t.choice
                }
            },
        };
        st.rec_used.insert(name, choice.resolved(kernels, batch, hidden));
        Ok(choice)
    }

    fn store(&self, table: Table, class: &str, e: Entry) {
        if let Some(c) = &self.cache {
            c.store(table, class, e);
        }
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
            recurrence_tune: match self.rec_policy {
                RecPolicy::Fixed => TuneMode::Off.to_string(),
                RecPolicy::Forced(..) => "off, WGRNN_RECURRENCE / WGRNN_STEP".to_string(),
                RecPolicy::Tune(m) => m.to_string(),
            },
            recurrence_candidates: recurrence::all_candidates(kernels)
                .iter()
                .map(ToString::to_string)
                .collect(),
            recurrence: st.rec_used.iter().map(|(n, c)| (n.clone(), c.to_string())).collect(),
            recurrence_known: st
                .rec_known
                .iter()
                .map(|(n, c)| (n.clone(), c.kernel.to_string()))
                .collect(),
        }
    }
}

/// The pair `ds` of products on their picks as one dispatch, when both picks are tiled
/// kernels and the pair fits one grid.
fn fuse(ds: &[Dispatch; 2]) -> Result<Option<Dispatch>> {
    let [p1, p2] = [&ds[0], &ds[1]].map(matmul_params);
    let (Some(p1), Some(p2)) = (p1, p2) else {
        return Ok(None);
    };
    if !runs_pairs(ds[0].kernel) || !runs_pairs(ds[1].kernel) {
        return Ok(None);
    }
    let kernel = if matmul_flops(&p2) > matmul_flops(&p1) {
        ds[1].kernel
    } else {
        ds[0].kernel
    };
    matmul_pair(kernel, &ds[0], &ds[1])
}

/// The cached choices of `table` that `parse` accepts.
fn load<K>(
    cache: Option<&cache::Cache>,
    table: Table,
    parse: impl Fn(&str) -> Option<K>,
) -> BTreeMap<String, Choice<K>> {
    let entries = cache.map(|c| c.load(table)).unwrap_or_default();
    entries
        .into_iter()
        .filter_map(|(class, e)| {
            let mode = e.mode.parse::<TuneMode>().ok()?;
            Some((
                class,
                Choice {
                    kernel: parse(&e.kernel)?,
                    mode,
                },
            ))
        })
        .collect()
}

/// A timing as the cache stores it.
fn entry(kernel: impl ToString, shape: [usize; 3], us: BTreeMap<String, f64>, mode: TuneMode) -> Entry {
    Entry {
        kernel: kernel.to_string(),
        mode: mode.to_string(),
        shape,
        us,
    }
}

/// The recurrence's policy: forced by WGRNN_RECURRENCE / WGRNN_STEP, else as the matrix
/// products' (`--tune`), whatever WGRNN_MATMUL forces.
fn rec_policy(kernels: &Kernels, opts: &GpuOptions) -> Result<RecPolicy> {
    let plan = opts
        .recurrence
        .as_deref()
        .map(|v| RecurrencePlan::parse(v, kernels.seq_tile))
        .transpose()?;
    let step = opts.step.as_deref().map(|v| forced_step(kernels, v)).transpose()?;
    if plan.is_some() || step.is_some() {
        return Ok(RecPolicy::Forced(plan, step));
    }
    Ok(match opts.tune.as_deref().map(str::parse::<TuneMode>).transpose()? {
        None | Some(TuneMode::Off) => RecPolicy::Fixed,
        Some(m) => RecPolicy::Tune(m),
    })
}

/// The step kernels WGRNN_STEP names, if this device runs them.
fn forced_step(kernels: &Kernels, name: &str) -> Result<StepKernel> {
    let runs: Vec<String> = kernels.steps().iter().map(ToString::to_string).collect();
    let hint = format!("WGRNN_STEP takes one of: {}", runs.join(" | "));
    let step: StepKernel = name
        .trim()
        .parse()
        .map_err(|_| Error::config("WGRNN_STEP", name, &hint))?;
    if !kernels.steps().contains(&step) {
        return Err(Error::gpu(
            format!("step kernel {step} (WGRNN_STEP) does not run on this adapter (it needs subgroups)"),
            hint,
        ));
    }
    Ok(step)
}

/// The forced recurrence: a step kernel alone asks for the per-step chain.
fn forced_recurrence(kernels: &Kernels, plan: Option<RecurrencePlan>, step: Option<StepKernel>) -> RecChoice {
    let fixed = RecChoice::fixed(kernels);
    let plan = match (plan, step) {
        (Some(p), _) => p,
        (None, Some(_)) => recurrence::step_plan(kernels),
        (None, None) => fixed.plan,
    };
    RecChoice {
        plan,
        step: step.unwrap_or(fixed.step),
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
