//! Builders of the gradient clipping and optimiser launches, the last dispatches of a
//! training step; the optimiser kernels also probe the values they write for non-finite
//! ones (`gpu::scalars`), so that no dispatch of its own is needed.

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

/// The buffers every optimiser kernel binds: weights, gradients, the scalars buffer (Σ g²,
/// for Adam the bias corrections, and the record the probe copies) and the probe's flags
/// and records, (PROBE_WORDS).
#[derive(Clone, Copy, Debug)]
pub struct OptBufs<'a> {
    pub w: &'a wgpu::Buffer,
    pub g: &'a wgpu::Buffer,
    pub scalars: &'a wgpu::Buffer,
    pub probe: &'a wgpu::Buffer,
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
        &[b.w, b.g, vel, b.scalars, b.probe],
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
        &[b.w, b.g, m, v, b.scalars, b.probe],
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
        &[b.w, b.g, s, b.scalars, b.probe],
        groups_1d(n, 64)?,
    ))
}
