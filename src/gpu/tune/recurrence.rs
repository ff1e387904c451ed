//! The recurrence's candidates and their timing (issue 10): the per-step chain with each
//! step-kernel pair the device runs, and the whole-sequence kernels (W_hh through workgroup
//! tiles, or straight from storage) with a few sequences per workgroup. Every candidate
//! computes the same fma chain per element (kernels::seq), so the choice changes speed only.
//!
//! A class is (B, H) anchored to powers of two, plus whether W_hh stays resident in the
//! whole-sequence kernels' workgroup tile, which changes how they read it. A candidate is
//! timed as the forward and the reverse recurrence of one direction over REC_STEPS steps on
//! zero-filled scratch buffers: T step dispatches each way, or one whole-sequence dispatch
//! each way, so the launches the whole sequence saves count as they do in a training step.

use std::collections::BTreeMap;
use std::fmt;

use super::clock::{effort, median_times, Clock, MARGIN};
use super::{TuneMode, ANCHOR_MAX};
use crate::error::Result;
use crate::gpu::batch_info;
use crate::gpu::buffers::{tensor, upload, Scale};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{
    at, rnn_seq_backward, rnn_seq_forward, rnn_step_backward, rnn_step_forward, Dispatch, Kernels, Pre, Recurrence,
    RecurrencePlan, SeqAt, SeqGrad, SeqPre, StepAt, StepGrad, StepKernel, StepWeights, SEQ_BLOCK,
};
use crate::gpu::program::{Op, Program};

/// Steps of a timed recurrence: enough for the launches of the per-step chain to weigh as
/// they do in a sequence, few enough to time quickly.
const REC_STEPS: usize = 8;

/// Sequences per workgroup the tuner tries for the whole-sequence kernels: the default, and
/// a wider block that reads W_hh's tile for four times as many sequences.
const BLOCKS: [usize; 2] = [SEQ_BLOCK, 16];

/// The least batch a class is timed at (when the class has as many): a few workgroups of
/// the widest block, so a block width is not timed on a single workgroup.
const PROBE_BATCH: usize = 64;

/// How many times slower than the best after one round a candidate may be and still be
/// timed again.
const CUT: f64 = 2.0;

/// The most floats of one scratch state buffer (T+1, B, H): 64 MiB.
const SCRATCH_MAX: usize = 1 << 24;

/// A recurrence's shape class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecClass {
    /// B and H anchored to the next power of two (at most ANCHOR_MAX)
    pub batch: usize,
    pub hidden: usize,
    /// W_hh fits the whole-sequence kernels' tile (`is_resident` of seq_block.wgsl)
    pub resident: bool,
}

/// Whether W_hh (H, H) fits a tile of `tile` vec4s, rows padded as seq_block.wgsl pads them.
fn resident(hidden: usize, tile: usize) -> bool {
    hidden * (hidden.div_ceil(4) + 1) <= tile
}

impl RecClass {
    pub fn of(kernels: &Kernels, batch: usize, hidden: usize) -> RecClass {
        let anchor = |x: usize| x.max(1).next_power_of_two().min(ANCHOR_MAX);
        RecClass {
            batch: anchor(batch),
            hidden: anchor(hidden),
            resident: resident(hidden, kernels.seq_tile),
        }
    }

    /// "b128 h256 streamed": its key in the cache and the reports
    pub fn name(&self) -> String {
        let w = if self.resident { "resident" } else { "streamed" };
        format!("b{} h{} {w}", self.batch, self.hidden)
    }

    /// The H timed: the anchor, or below it the widest W_hh that stays resident, as the
    /// class's own does.
    fn timed_hidden(&self, tile: usize) -> usize {
        let mut h = self.hidden;
        while self.resident && h > 1 && !resident(h, tile) {
            h -= 1;
        }
        h
    }
}

/// How a recurrence is recorded: the plan, and the step kernels of the per-step chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecChoice {
    pub plan: RecurrencePlan,
    pub step: StepKernel,
}

/// "step:sg" (the per-step chain and its kernels) or the plan ("seq:4", "seq-direct:16").
impl fmt::Display for RecChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.plan.kind {
            Recurrence::Step => write!(f, "step:{}", self.step),
            _ => write!(f, "{}", self.plan),
        }
    }
}

impl RecChoice {
    /// `--tune off`'s choice: the device's plan (`Auto` left for the schedule to resolve per
    /// chunk) and step kernels.
    pub fn fixed(kernels: &Kernels) -> RecChoice {
        RecChoice {
            plan: kernels.recurrence,
            step: kernels.step,
        }
        .normal(kernels)
    }

    /// The choice as recorded for a layer of `hidden` units on `batch` sequences (`Auto`
    /// resolved).
    pub fn resolved(self, kernels: &Kernels, batch: usize, hidden: usize) -> RecChoice {
        RecChoice {
            plan: self.plan.resolved(batch, hidden),
            ..self
        }
        .normal(kernels)
    }

    /// The per-step chain with `step_plan`, so that equal choices compare equal.
    fn normal(self, kernels: &Kernels) -> RecChoice {
        match self.plan.kind {
            Recurrence::Step => RecChoice {
                plan: step_plan(kernels),
                ..self
            },
            _ => self,
        }
    }

    /// A stored choice (its `Display`), if this device runs it.
    pub fn parse(v: &str, kernels: &Kernels) -> Option<RecChoice> {
        let c = match v.split_once(':') {
            Some(("step", step)) => RecChoice {
                plan: step_plan(kernels),
                step: step.parse().ok()?,
            },
            _ => RecChoice {
                plan: RecurrencePlan::parse(v, kernels.seq_tile).ok()?,
                step: kernels.step,
            },
        };
        let runs = kernels.steps().contains(&c.step) && c.plan.kind != Recurrence::Auto;
        runs.then_some(c)
    }

    /// The device's kernels with the recurrence recorded this way.
    pub fn apply(&self, kernels: &Kernels) -> Result<Kernels> {
        let k = if self.plan == kernels.recurrence {
            kernels.clone()
        } else {
            kernels.with_recurrence(self.plan)?
        };
        if self.step == k.step {
            return Ok(k);
        }
        k.with_step(self.step)
    }
}

/// The per-step chain's plan (its block and tile are unused; fixed so that equal choices
/// compare equal).
pub fn step_plan(kernels: &Kernels) -> RecurrencePlan {
    RecurrencePlan {
        kind: Recurrence::Step,
        block: SEQ_BLOCK,
        tile: kernels.seq_tile,
    }
}

/// Every candidate this device runs: the per-step chain with each step-kernel pair, then the
/// whole-sequence kernels with each block (none below WebGPU's minimum of workgroup memory).
pub fn all_candidates(kernels: &Kernels) -> Vec<RecChoice> {
    let steps = kernels.steps().into_iter().map(|step| RecChoice {
        plan: step_plan(kernels),
        step,
    });
    let seqs = [Recurrence::Seq, Recurrence::SeqDirect].into_iter().flat_map(|kind| {
        BLOCKS.into_iter().filter_map(move |block| {
            let plan = RecurrencePlan {
                kind,
                block,
                tile: kernels.seq_tile,
            };
            plan.check(kernels.seq_tile).ok().map(|plan| RecChoice {
                plan,
                step: kernels.step,
            })
        })
    });
    steps.chain(seqs).collect()
}

/// What the tuner times on `class`: the fixed choice first (a tie keeps it), then every
/// other candidate but blocks wider than the class's batch.
fn candidates(kernels: &Kernels, class: &RecClass) -> Vec<RecChoice> {
    let fixed = RecChoice::fixed(kernels).resolved(kernels, class.batch, class.hidden);
    let rest = all_candidates(kernels).into_iter().filter(|c| {
        let wide = c.plan.kind != Recurrence::Step && c.plan.block > class.batch.max(SEQ_BLOCK);
        *c != fixed && !wide
    });
    std::iter::once(fixed).chain(rest).collect()
}

/// What timing one class found.
pub struct RecTiming {
    pub choice: RecChoice,
    /// the (B, H, T) timed
    pub shape: [usize; 3],
    /// median µs of each candidate
    pub us: BTreeMap<String, f64>,
}

/// Times every candidate on `class` and returns the fastest (the fixed choice unless
/// another beats it by the matrix products' margin).
pub fn time_recurrence(
    ctx: &GpuContext,
    kernels: &Kernels,
    class: &RecClass,
    mode: TuneMode,
    clock: Clock,
) -> Result<RecTiming> {
    let (reps, target) = effort(mode);
    let cands = candidates(kernels, class);
    let scratch = Scratch::probed(ctx, kernels, class, &cands[0], (target, clock))?;
    let progs = cands
        .iter()
        .map(|c| scratch.program(ctx, kernels, c))
        .collect::<Result<Vec<_>>>()?;
    let (times, close) = cut_rounds(ctx, progs, reps, clock)?;
    let fastest = close
        .iter()
        .fold(0, |best, &i| if times[i] < times[best] { i } else { best });
    let pick = if times[fastest] < MARGIN * times[0] { fastest } else { 0 };
    Ok(RecTiming {
        choice: cands[pick],
        shape: scratch.shape,
        us: cands
            .iter()
            .zip(&times)
            .map(|(c, t)| (c.to_string(), t * 1e6))
            .collect(),
    })
}

/// Every program's median time, and which ones were close enough to decide: one round
/// first, after which a program CUT times slower than the best is out (on lavapipe the
/// whole-sequence kernels take many times the per-step chain's time), then `reps` rounds
/// of the rest, the first program (the fixed choice) always among them.
fn cut_rounds(ctx: &GpuContext, progs: Vec<Program>, reps: usize, clock: Clock) -> Result<(Vec<f64>, Vec<usize>)> {
    let mut times = median_times(ctx, &progs, 1, clock)?;
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let close: Vec<usize> = (0..progs.len()).filter(|&i| i == 0 || times[i] <= CUT * best).collect();
    let kept: Vec<Program> = progs
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| close.contains(&i).then_some(p))
        .collect();
    for (&i, t) in close.iter().zip(median_times(ctx, &kept, reps, clock)?) {
        times[i] = t;
    }
    Ok((times, close))
}

/// One direction's operands at a timing shape (B, H, T), zero-filled but for the sequence
/// lengths (all T, so every step does its work).
struct Scratch {
    shape: [usize; 3],
    /// W_hh (H, H), b_ih (H), b_hh (H)
    w: wgpu::Buffer,
    /// (T+1, B, H) each: the states, dh and dz
    h: wgpu::Buffer,
    dh: wgpu::Buffer,
    dz: wgpu::Buffer,
    info: wgpu::Buffer,
}

impl Scratch {
    /// The operands `class` is timed on: its H (`timed_hidden`), and a batch that starts
    /// at PROBE_BATCH and grows towards the class's own while `fixed` takes less than
    /// `target` seconds on it, as the products' shapes do.
    fn probed(
        ctx: &GpuContext,
        kernels: &Kernels,
        class: &RecClass,
        fixed: &RecChoice,
        (target, clock): (f64, Clock),
    ) -> Result<Scratch> {
        let hidden = class.timed_hidden(kernels.seq_tile);
        let fits = |b: usize| (REC_STEPS + 1) * b * hidden <= SCRATCH_MAX;
        let mut batch = class.batch.min(PROBE_BATCH);
        loop {
            let s = Scratch::new(ctx, [batch, hidden, REC_STEPS])?;
            let grow = (batch * 4).min(class.batch);
            if batch >= class.batch || !fits(grow) {
                return Ok(s);
            }
            let probe = s.program(ctx, kernels, fixed)?;
            if median_times(ctx, &[probe], 1, clock)?[0] >= target {
                return Ok(s);
            }
            batch = grow;
        }
    }

    fn new(ctx: &GpuContext, shape: [usize; 3]) -> Result<Scratch> {
        let [b, h, t] = shape;
        let rows = |what| tensor(ctx, what, (t + 1) * b * h, Scale::Model);
        let info = tensor(ctx, "tuning lengths", batch_info::len(b), Scale::Model)?;
        upload(ctx, &info, batch_info::LENGTHS, &vec![t as u32; b]);
        Ok(Scratch {
            shape,
            w: tensor(ctx, "tuning W_hh", h * h + 2 * h, Scale::Model)?,
            h: rows("tuning states")?,
            dh: rows("tuning dh")?,
            dz: rows("tuning dz")?,
            info,
        })
    }

    /// The forward and the reverse recurrence of the forward direction as `c` records them
    /// (tanh, inputs already in the state rows, as above the first layer).
    fn program(&self, ctx: &GpuContext, kernels: &Kernels, c: &RecChoice) -> Result<Program> {
        let ops = match c.plan.kind {
            Recurrence::Step => self.steps(c.step)?,
            _ => self.sequence(c.plan)?,
        };
        let ops: Vec<Op> = ops.into_iter().map(Op::Dispatch).collect();
        Program::new(ctx, kernels, &ops)
    }

    fn weights(&self) -> StepWeights<'_> {
        let h = self.shape[1];
        StepWeights {
            w: &self.w,
            w_hh: 0,
            bias: Some((h * h, h * h + h)),
        }
    }

    fn steps(&self, step: StepKernel) -> Result<Vec<Dispatch>> {
        let [b, h, t] = self.shape;
        let bh = b * h;
        let at_step = |s| StepAt {
            info: &self.info,
            t: s,
            b0: 0,
        };
        let mut ops = Vec::with_capacity(2 * t);
        for s in 1..=t {
            let rows = (s * bh, (s - 1) * bh);
            let pre = Pre::InPlace;
            let w = self.weights();
            ops.push(rnn_step_forward(
                step.forward(),
                b,
                h,
                w,
                &self.h,
                rows,
                pre,
                0,
                at_step(s),
            )?);
        }
        for s in (1..=t).rev() {
            let g = StepGrad {
                w_hh: at(&self.w, 0),
                dh: at(&self.dh, (s - 1) * bh),
                dh_stride: h,
                h: at(&self.h, s * bh),
                dz: at(&self.dz, (s - 1) * bh),
                next_off: (s < t).then_some(s * bh),
                carry_off: (s > 1).then(|| (s - 2) * bh),
                first_off: None,
            };
            ops.push(rnn_step_backward(step.backward(), b, h, g, 0, at_step(s))?);
        }
        Ok(ops)
    }

    fn sequence(&self, plan: RecurrencePlan) -> Result<Vec<Dispatch>> {
        let [b, h, t] = self.shape;
        let span = SeqAt {
            batch: b,
            hidden: h,
            steps: t,
            reverse: false,
            info: &self.info,
            b0: 0,
            plan,
        };
        let pre = SeqPre {
            pre: Pre::InPlace,
            steps: t,
        };
        let g = SeqGrad {
            w_hh: at(&self.w, 0),
            dh: at(&self.dh, 0),
            dh_stride: h,
            head_row: false,
            h: &self.h,
            dz: at(&self.dz, 0),
            first_off: None,
        };
        Ok(vec![
            rnn_seq_forward(span, self.weights(), &self.h, pre, 0)?,
            rnn_seq_backward(span, g, 0)?,
        ])
    }
}
