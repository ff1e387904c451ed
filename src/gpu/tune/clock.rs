//! Timing products on the device, for the tuner: GPU timestamps where the adapter has
//! TIMESTAMP_QUERY (the device's own time for the dispatch), else the wall clock around a
//! submission and a wait (which adds the same submission overhead to every candidate).

use std::collections::BTreeMap;
use std::time::Instant;

use super::{candidates, ShapeClass, TuneMode};
use crate::error::Result;
use crate::gpu::buffers::{tensor, Scale, Staging};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{mat, matmul, Acc, Dispatch, Kernels, Mat, MatmulKernel};
use crate::gpu::program::{Op, Program};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Timestamps,
    Wall,
}

impl Clock {
    /// Timestamps when the device has them (`GpuContext::open` requests the feature where
    /// the adapter offers it).
    pub fn of(ctx: &GpuContext) -> Clock {
        if ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            Clock::Timestamps
        } else {
            Clock::Wall
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Clock::Timestamps => "timestamps",
            Clock::Wall => "wall clock",
        }
    }
}

/// What timing one class found.
pub struct Timing {
    pub kernel: MatmulKernel,
    /// the (m, n, k) timed
    pub shape: [usize; 3],
    /// median µs of each candidate
    pub us: BTreeMap<String, f64>,
}

/// Timed rounds (every candidate once per round), and the time one run of the fixed kernel
/// should take: a class whose own shape takes longer is timed on a smaller one.
pub(super) fn effort(mode: TuneMode) -> (usize, f64) {
    match mode {
        TuneMode::Full => (11, 5e-3),
        TuneMode::Quick | TuneMode::Off => (5, 1e-3),
    }
}

/// Work of the first timing shape: a few ms on a software adapter, a few µs on a real GPU,
/// where the shape then grows towards the class's own.
const PROBE_FLOPS: usize = 1 << 24;

/// How much faster than the fixed kernel another candidate must be to replace it (at most
/// this fraction of its time): timing noise alone must not move a class off the kernel
/// measured for this kind of adapter (on a loaded lavapipe a 16 % "win" timed at a shrunk
/// shape looked like a loss in the whole step), and on the GPUs the tiled kernels are
/// written for they should win by far more.
pub(super) const MARGIN: f64 = 0.75;

/// Times every candidate on `class` and returns the fastest (the fixed kernel unless
/// another beats it by the margin).
pub fn time_class(
    ctx: &GpuContext,
    kernels: &Kernels,
    class: &ShapeClass,
    mode: TuneMode,
    clock: Clock,
) -> Result<Timing> {
    let (reps, target) = effort(mode);
    let cands = candidates(kernels);
    // the shape: the class's own, unless the fixed kernel takes longer than `target` on it;
    // each probe costs at most an eighth of the next
    let mut flops = PROBE_FLOPS;
    let scratch = loop {
        let s = Scratch::new(ctx, class, shrink(class.dims, flops))?;
        if s.shape == class.dims || median_time(ctx, kernels, &s.dispatch(cands[0])?, 1, clock)? >= target {
            break s;
        }
        flops = flops.saturating_mul(8);
    };
    let progs = cands
        .iter()
        .map(|&k| Program::new(ctx, kernels, &[Op::Dispatch(scratch.dispatch(k)?)]))
        .collect::<Result<Vec<_>>>()?;
    let times = median_times(ctx, &progs, reps, clock)?;
    let fastest = (0..cands.len()).fold(0, |best, i| if times[i] < times[best] { i } else { best });
    let pick = if times[fastest] < MARGIN * times[0] { fastest } else { 0 };
    Ok(Timing {
        kernel: cands[pick],
        shape: scratch.shape,
        us: cands
            .iter()
            .zip(&times)
            .map(|(k, t)| (k.to_string(), t * 1e6))
            .collect(),
    })
}

/// `dims` with the largest size halved until 2·m·n·k ≤ `flops`; sizes stop at 4 (powers of
/// two from 4 up keep a vec4-aligned class aligned).
fn shrink(mut d: [usize; 3], flops: usize) -> [usize; 3] {
    while 2 * d[0] * d[1] * d[2] > flops {
        let i = (0..3).fold(0, |best, i| if d[i] > d[best] { i } else { best });
        if d[i] <= 4 {
            break;
        }
        d[i] /= 2;
    }
    d
}

/// The operands of a timing shape, zero-filled (the time does not depend on the values);
/// an operand of a class without vec4 loads starts at element 1, so it takes the scalar
/// loads as the class's products do.
struct Scratch {
    class: ShapeClass,
    shape: [usize; 3],
    a: wgpu::Buffer,
    b: wgpu::Buffer,
    c: wgpu::Buffer,
}

impl Scratch {
    fn new(ctx: &GpuContext, class: &ShapeClass, shape: [usize; 3]) -> Result<Scratch> {
        let [m, n, k] = shape;
        Ok(Scratch {
            class: *class,
            shape,
            a: tensor(ctx, "tuning operand A", m * k + 1, Scale::Model)?,
            b: tensor(ctx, "tuning operand B", k * n + 1, Scale::Model)?,
            c: tensor(ctx, "tuning product C", m * n, Scale::Model)?,
        })
    }

    fn dispatch(&self, kernel: MatmulKernel) -> Result<Dispatch> {
        let [m, n, k] = self.shape;
        let operand = |buf, vec4: bool, (rows, cols), t: bool| -> Mat {
            let off = usize::from(!vec4);
            if t {
                mat(buf, off, cols, rows).t()
            } else {
                mat(buf, off, rows, cols)
            }
        };
        let a = operand(&self.a, self.class.va, (m, k), self.class.ta);
        let b = operand(&self.b, self.class.vb, (k, n), self.class.tb);
        matmul(kernel.kernel(), mat(&self.c, 0, m, n), a, b, Acc::Set)
    }
}

/// The median time of `reps` runs of `d` (in seconds), after one untimed run.
pub fn median_time(ctx: &GpuContext, kernels: &Kernels, d: &Dispatch, reps: usize, clock: Clock) -> Result<f64> {
    let prog = Program::new(ctx, kernels, &[Op::Dispatch(d.clone())])?;
    Ok(median_times(ctx, &[prog], reps, clock)?[0])
}

/// The median time of each program over `reps` rounds (in seconds), after an untimed one.
/// Every round runs every program once, in turn, so that a change in the machine's load
/// falls on all of them alike.
pub(super) fn median_times(ctx: &GpuContext, progs: &[Program], reps: usize, clock: Clock) -> Result<Vec<f64>> {
    let reps = reps.max(1);
    // rounds[r][i]: program i in round r
    let rounds = match clock {
        Clock::Timestamps => device_times(ctx, progs, reps)?,
        Clock::Wall => wall_times(ctx, progs, reps)?,
    };
    Ok((0..progs.len())
        .map(|i| {
            let mut t: Vec<f64> = rounds.iter().map(|r| r[i]).collect();
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect())
}

/// All rounds in one submission, each run in a pass of its own between two timestamps. A
/// driver that writes no real timestamps gives every run 0, and the fixed kernel is kept.
fn device_times(ctx: &GpuContext, progs: &[Program], reps: usize) -> Result<Vec<Vec<f64>>> {
    let runs = (reps + 1) * progs.len();
    let count = 2 * runs as u32;
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("tuner timestamps"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("tuner timestamps"),
        size: u64::from(count) * 8,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    for (run, prog) in (0..runs).zip(progs.iter().cycle()) {
        prog.record_timed(&mut enc, &queries, 2 * run as u32);
    }
    enc.resolve_query_set(&queries, 0..count, &resolved, 0);
    // the one read-back path reads f32 words; a timestamp is two of them, bits intact
    let words = ctx.scoped("timing kernels", || {
        Staging::default().submit_and_read(ctx, enc, &[(&resolved, 0, 2 * count as usize)])
    })?;
    let words = &words[0];
    let tick = |q: usize| u64::from(words[2 * q].to_bits()) | u64::from(words[2 * q + 1].to_bits()) << 32;
    let seconds_per_tick = f64::from(ctx.queue.get_timestamp_period()) * 1e-9;
    let time = |run: usize| tick(2 * run + 1).saturating_sub(tick(2 * run)) as f64 * seconds_per_tick;
    Ok((1..=reps)
        .map(|r| (0..progs.len()).map(|i| time(r * progs.len() + i)).collect())
        .collect())
}

/// One submission and wait per run.
fn wall_times(ctx: &GpuContext, progs: &[Program], reps: usize) -> Result<Vec<Vec<f64>>> {
    for p in progs {
        p.run(ctx)?;
    }
    (0..reps)
        .map(|_| {
            progs
                .iter()
                .map(|p| {
                    let start = Instant::now();
                    p.run(ctx)?;
                    Ok(start.elapsed().as_secs_f64())
                })
                .collect()
        })
        .collect()
}
