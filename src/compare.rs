//! SPEC §5: how a GPU result is held against the CPU reference. One set of rules, used by
//! `wgrnn check` and by the GPU-vs-CPU tests, so the command never fails a case the tests
//! accept or the other way round.

use std::fmt;

use serde::Serialize;

use crate::batch::Batch;
use crate::engine::{Engine, Want};
use crate::error::Result;
use crate::params::ParamLayout;

/// Loss: |gpu − cpu| / |cpu|.
pub const LOSS_RTOL: f64 = 1e-5;
/// Gradients, weights, outputs and states: ‖gpu − cpu‖ / ‖cpu‖ per tensor.
pub const TENSOR_RTOL: f64 = 1e-4;
/// Norms below this count as zero on both sides (a gradient that vanishes in f32).
pub const TINY: f64 = 1e-7;
/// A tensor whose reference norm is below this fraction of its whole buffer's norm is
/// measured against that fraction instead: its value is the residue of a cancelling sum
/// (e.g. a bias gradient Σ g of three terms of size 1e-2 that sum to 6e-5), where a one-ulp
/// difference in each f32 term (GPU exp vs libm exp) is already 1e-4 of the residue. The
/// bound still catches every wrong term: a wrong term moves the sum by the size of a term,
/// far above this floor.
pub const CANCEL_FLOOR: f64 = 1e-2;

/// One compared quantity.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub what: String,
    /// largest elementwise |gpu − cpu|
    pub max_abs: f64,
    /// the measured relative difference (after the cancellation floor, for tensors)
    pub rel: f64,
    pub bound: f64,
    /// `rel < bound`, both sides the same length, and every GPU value finite (NaN fails)
    pub ok: bool,
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.ok { "<" } else { ">=" };
        write!(
            f,
            "{}: rel diff {:.3e} {verdict} {:e} (max |diff| {:.3e})",
            self.what, self.rel, self.bound, self.max_abs
        )
    }
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt()
}

/// ‖gpu − cpu‖ / max(‖cpu‖, TINY) and the largest |gpu − cpu|.
fn rel(gpu: &[f32], cpu: &[f32]) -> (f64, f64) {
    let d: Vec<f32> = gpu.iter().zip(cpu).map(|(g, c)| g - c).collect();
    let max = d.iter().fold(0.0f64, |m, &x| m.max(x.abs() as f64));
    (norm(&d) / norm(cpu).max(TINY), max)
}

fn diff(what: String, gpu: &[f32], cpu: &[f32], rel: f64, max_abs: f64, bound: f64) -> Diff {
    let sane = gpu.len() == cpu.len() && gpu.iter().all(|v| v.is_finite());
    Diff {
        what,
        max_abs,
        rel,
        bound,
        ok: sane && rel < bound,
    }
}

/// A loss.
pub fn loss(what: impl Into<String>, gpu: f32, cpu: f32) -> Diff {
    let d = (gpu as f64 - cpu as f64).abs();
    let e = d / (cpu as f64).abs().max(TINY);
    diff(what.into(), &[gpu], &[cpu], e, d, LOSS_RTOL)
}

/// A whole tensor (outputs, states, dx, dh0).
pub fn tensor(what: impl Into<String>, gpu: &[f32], cpu: &[f32]) -> Diff {
    let (e, max) = rel(gpu, cpu);
    diff(what.into(), gpu, cpu, e, max, TENSOR_RTOL)
}

/// Every tensor of two flat buffers in the parameter layout (gradients, weights, optimiser
/// slots), each against the cancellation floor of the whole buffer, and the padding between
/// tensors, which must stay exactly zero.
pub fn buffer(what: &str, layout: &ParamLayout, gpu: &[f32], cpu: &[f32]) -> Vec<Diff> {
    if gpu.len() != cpu.len() || gpu.len() != layout.total {
        return vec![diff(what.into(), gpu, cpu, f64::INFINITY, f64::INFINITY, TENSOR_RTOL)];
    }
    let floor = CANCEL_FLOOR * norm(cpu);
    let mut out: Vec<Diff> = layout
        .tensors
        .iter()
        .map(|spec| {
            let r = spec.range();
            let (mut e, max) = rel(&gpu[r.clone()], &cpu[r.clone()]);
            let n = norm(&cpu[r.clone()]);
            if n < floor {
                e = e * n.max(TINY) / floor;
            }
            diff(
                format!("{what} {}", spec.name),
                &gpu[r.clone()],
                &cpu[r],
                e,
                max,
                TENSOR_RTOL,
            )
        })
        .collect();
    let mut covered = vec![false; layout.total];
    for spec in &layout.tensors {
        covered[spec.range()].iter_mut().for_each(|c| *c = true);
    }
    let padding = covered
        .iter()
        .zip(gpu)
        .filter(|(c, _)| !**c)
        .fold(0.0f64, |m, (_, &g)| m.max((g as f64).abs()));
    out.push(Diff {
        what: format!("{what} padding"),
        max_abs: padding,
        rel: padding,
        bound: 0.0,
        ok: padding == 0.0,
    });
    out
}

/// The largest measured difference of a list (0 for none).
pub fn worst(diffs: &[Diff]) -> f64 {
    diffs.iter().filter(|d| d.bound > 0.0).fold(0.0f64, |m, d| m.max(d.rel))
}

/// Runs the same batches through the CPU and the given (GPU) engine from the same weights:
/// the loss and every gradient tensor of the first batch, then the loss of each of the
/// training steps and every weight tensor after them.
pub fn cross_check(cpu: &mut dyn Engine, gpu: &mut dyn Engine, batches: &[Batch<f32>]) -> Result<Vec<Diff>> {
    let layout = cpu.layout().clone();
    let mut out = Vec::new();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    let (lc, gc) = cpu.loss_and_grads(first, Want::default())?;
    let (lg, gg) = gpu.loss_and_grads(first, Want::default())?;
    out.push(loss("loss", lg, lc));
    out.extend(buffer("grad", &layout, &gg.params, &gc.params));
    for (k, b) in batches.iter().enumerate() {
        let lc = cpu.train_step(b, true)?.unwrap_or(f32::NAN);
        let lg = gpu.train_step(b, true)?.unwrap_or(f32::NAN);
        out.push(loss(format!("loss at step {}", k + 1), lg, lc));
    }
    let (pc, pg) = (cpu.params()?, gpu.params()?);
    out.extend(buffer("weight", &layout, &pg, &pc));
    Ok(out)
}
