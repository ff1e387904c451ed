//! Builders of the gradient clipping and optimiser launches and of the non-finite probe
//! after them, the last dispatches of a training step.

use super::launch::{dispatch, groups_1d, u, At, Dispatch};
use super::params::{self, ClipFields};
use super::Kernel;
use crate::error::Result;

/// g = clamp(g, -limit, limit) over n elements.
pub fn clip_value(n: usize, g: At, limit: f32) -> Result<Dispatch> {
    let p = params::ClipValueP {
        n: u(n)?,
        off: u(g.off)?,
        limit,
    };
    Ok(dispatch(Kernel::ClipValue, &p, &[g.buf], groups_1d(n, 64)?))
}

/// Clipping by global norm inside the optimiser kernels: `Some((max_norm, index of Σ g²
/// in the scalars buffer))`.
pub type NormClip = Option<(f32, usize)>;

fn clip_fields(c: NormClip) -> Result<ClipFields> {
    Ok(match c {
        Some((max_norm, idx)) => ClipFields {
            clip: 1,
            max_norm,
            norm_idx: u(idx)?,
        },
        None => ClipFields::default(),
    })
}

/// The buffers every optimiser kernel binds: weights, gradients, the scalars buffer (Σ g²
/// and, for Adam, the bias corrections).
#[derive(Clone, Copy, Debug)]
pub struct OptBufs<'a> {
    pub w: &'a wgpu::Buffer,
    pub g: &'a wgpu::Buffer,
    pub scalars: &'a wgpu::Buffer,
}

/// SGD; `vel` is the velocity buffer (any buffer when `momentum` is 0).
pub fn sgd(
    n: usize,
    lr: f32,
    wd: f32,
    momentum: f32,
    clip: NormClip,
    b: OptBufs,
    vel: &wgpu::Buffer,
) -> Result<Dispatch> {
    let c = clip_fields(clip)?;
    let p = params::SgdP {
        n: u(n)?,
        lr,
        wd,
        mu: momentum,
        momentum: (momentum != 0.0) as u32,
        clip: c.clip,
        max_norm: c.max_norm,
        norm_idx: c.norm_idx,
    };
    Ok(dispatch(
        Kernel::Sgd,
        &p,
        &[b.w, b.g, vel, b.scalars],
        groups_1d(n, 64)?,
    ))
}

/// Adam; the bias corrections 1 - β^k of the current step are read from
/// `scalars[bc_idx..bc_idx + 2]`, written before each submission, so one dispatch serves
/// every step.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    n: usize,
    lr: f32,
    wd: f32,
    (b1, b2, eps): (f32, f32, f32),
    bc_idx: usize,
    clip: NormClip,
    b: OptBufs,
    (m, v): (&wgpu::Buffer, &wgpu::Buffer),
) -> Result<Dispatch> {
    let c = clip_fields(clip)?;
    let p = params::AdamP {
        n: u(n)?,
        lr,
        wd,
        b1,
        b2,
        eps,
        bc_idx: u(bc_idx)?,
        clip: c.clip,
        max_norm: c.max_norm,
        norm_idx: c.norm_idx,
    };
    Ok(dispatch(
        Kernel::Adam,
        &p,
        &[b.w, b.g, m, v, b.scalars],
        groups_1d(n, 64)?,
    ))
}

/// Adam's bias corrections for update `k` (`optim::adam_bias_corrections`), rounded once to
/// the f32 the kernel reads.
pub fn adam_bias_corrections(beta1: f32, beta2: f32, k: u64) -> [f32; 2] {
    crate::optim::adam_bias_corrections(beta1, beta2, k).map(|c| c as f32)
}

/// Adagrad; `s` the running sum of g².
pub fn adagrad(n: usize, lr: f32, wd: f32, eps: f32, clip: NormClip, b: OptBufs, s: &wgpu::Buffer) -> Result<Dispatch> {
    let c = clip_fields(clip)?;
    let p = params::AdagradP {
        n: u(n)?,
        lr,
        wd,
        eps,
        clip: c.clip,
        max_norm: c.max_norm,
        norm_idx: c.norm_idx,
    };
    Ok(dispatch(
        Kernel::Adagrad,
        &p,
        &[b.w, b.g, s, b.scalars],
        groups_1d(n, 64)?,
    ))
}

/// Where the non-finite probe keeps its state in the scalars buffer (`nonfinite_probe`).
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// the start of the PROBE_RECORD floats copied when a count first turns non-zero
    pub record: usize,
    /// the current step inside the record, 3 floats of 24 bits each (written before each
    /// submission)
    pub step: usize,
    /// two sticky counts: non-finite weights, non-finite optimiser state
    pub counts: usize,
    /// the record of each count's first bad step, PROBE_RECORD floats each
    pub first: usize,
}

/// Floats in a probe record (`RECORD` in reduce_sum.wgsl).
pub const PROBE_RECORD: usize = 7;

/// After an update: counts the non-finite values of the weights (workgroup 0) and of an
/// optimiser slot (workgroup 1) into sticky counters, recording the step at which each first
/// turned non-zero. One dispatch, nothing read back until the loss is.
pub fn nonfinite_probe(n: usize, w: At, slot: At, scalars: &wgpu::Buffer, p: Probe) -> Result<Dispatch> {
    let job = |src: At, k: usize| -> Result<params::SumP> {
        Ok(params::SumP {
            n: u(n)?,
            src_off: u(src.off)?,
            dst_off: u(p.counts + k)?,
            square: 2,
            factor: 1.0,
            accumulate: 1,
            first_off: u(p.first + PROBE_RECORD * k)?,
            record_off: u(p.record)?,
        })
    };
    let params = params::ReduceSumP {
        sums: [job(w, 0)?, job(slot, 1)?],
    };
    Ok(dispatch(
        Kernel::ReduceSum,
        &params,
        &[w.buf, scalars, slot.buf],
        [2, 1, 1],
    ))
}
