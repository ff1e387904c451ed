//! The whole-sequence recurrence (issue 10): one dispatch per layer and direction runs all T
//! steps, forward (rnn_seq_forward.wgsl) and backward (rnn_seq_backward.wgsl), where the
//! per-step chain of `rnn` records T. Both compute the same fma chain per element, so a
//! schedule may record either (`Kernels::recurrence`) and get the same bits.

use super::launch::{dispatch, groups_1d, u, At, Dispatch};
use super::rnn::{Pre, StepWeights};
use super::{params, Kernel};
use crate::config::str_enum;
use crate::error::{Error, Result};

str_enum!(
    /// How a schedule records a layer's recurrence.
    Recurrence("recurrence") {
        /// one fused dispatch per time step (rnn_step_*.wgsl): the per-step chain
        Step => "step",
        /// one dispatch for all T steps (rnn_seq_*.wgsl): T·L·dirs fewer launches per call
        Seq => "seq",
    }
);

/// The environment variable that forces a recurrence on every device.
pub const RECURRENCE_ENV: &str = "WGRNN_RECURRENCE";

impl Recurrence {
    /// WGRNN_RECURRENCE (`step` | `seq`, empty counts as unset), else the device's default:
    /// the per-step chain on a software adapter, where it measured faster (BENCHMARKS.md),
    /// the whole sequence on hardware, where each launch costs 5–30 µs.
    pub fn choose(software: bool) -> Result<Recurrence> {
        match std::env::var(RECURRENCE_ENV).ok().filter(|v| !v.trim().is_empty()) {
            Some(v) => v.trim().parse().map_err(|_| {
                Error::config(
                    RECURRENCE_ENV,
                    v,
                    format!("allowed: {}, or unset", Recurrence::ALL.join(" | ")),
                )
            }),
            None if software => Ok(Recurrence::Step),
            None => Ok(Recurrence::Seq),
        }
    }
}

/// Sequences per workgroup of the whole-sequence kernels (their BW).
const SEQ_BLOCK: usize = 4;

/// Where the whole-sequence forward kernel finds the input pre-activations: `pre` for steps
/// 1..=`steps` (a token binding's offset is that of step 1; step t's ids follow at
/// (t - 1)·B), none after (one-to-many).
#[derive(Clone, Copy, Debug)]
pub struct SeqPre<'a> {
    pub pre: Pre<'a>,
    pub steps: usize,
}

/// Where a whole-sequence kernel runs: T steps of B sequences of H units, the direction, and
/// for the lengths in the per-call `info` buffer the index of the chunk's first sequence.
#[derive(Clone, Copy, Debug)]
pub struct SeqAt<'a> {
    pub batch: usize,
    pub hidden: usize,
    pub steps: usize,
    pub reverse: bool,
    pub info: &'a wgpu::Buffer,
    pub b0: usize,
}

/// Workgroups: one per block of SEQ_BLOCK sequences.
fn seq_groups(batch: usize) -> Result<[u32; 3]> {
    groups_1d(batch, SEQ_BLOCK)
}

/// Every step of `rnn_step_forward` for one direction in one dispatch: h_t = f(pre_t + b_ih +
/// b_hh + W_hh h_prev) in the direction's (T+1, B, H) buffer `h`, in the direction's order.
pub fn rnn_seq_forward(span: SeqAt, w: StepWeights, h: &wgpu::Buffer, pre: SeqPre, act: usize) -> Result<Dispatch> {
    // without token inputs `w` fills the unread token binding (never `h`, bound read-write)
    let (use_pre, tok, vocab, wih_off) = match pre.pre {
        Pre::None => (0, At { buf: w.w, off: 0 }, 1, 0),
        Pre::InPlace => (1, At { buf: w.w, off: 0 }, 1, 0),
        Pre::Tokens { tok, vocab, wih_off } => (2, tok, vocab, wih_off),
    };
    let (bih, bhh) = w.bias.unwrap_or((0, 0));
    let p = params::RnnSeqForwardP {
        batch: u(span.batch)?,
        hidden: u(span.hidden)?,
        steps: u(span.steps)?,
        reverse: span.reverse as u32,
        w_off: u(w.w_hh)?,
        bih_off: u(bih)?,
        bhh_off: u(bhh)?,
        has_bias: w.bias.is_some() as u32,
        act: u(act)?,
        use_pre,
        pre_steps: u(pre.steps)?,
        tok_off: u(tok.off)?,
        vocab: u(vocab)?,
        wih_off: u(wih_off)?,
        b0: u(span.b0)?,
    };
    let bufs = [w.w, h, tok.buf, span.info];
    Ok(dispatch(Kernel::RnnSeqForward, &p, &bufs, seq_groups(span.batch)?))
}

/// The operands of a whole reverse sweep (see rnn_seq_backward.wgsl).
#[derive(Clone, Copy, Debug)]
pub struct SeqGrad<'a> {
    pub w_hh: At<'a>,
    /// dh of step t, sequence b at `dh.off + (t - 1)·B·dh_stride + b·dh_stride` (`dh.off`:
    /// this direction's first column)
    pub dh: At<'a>,
    pub dh_stride: usize,
    /// many-to-one's top layer: the direction's last step reads dh's extra row T
    pub head_row: bool,
    /// the direction's (T+1, B, H) states
    pub h: &'a wgpu::Buffer,
    /// dz (T, B, H) of the direction at `dz.off`
    pub dz: At<'a>,
    /// where dz also goes on each sequence's last step (the reverse direction, for dh0)
    pub first_off: Option<usize>,
}

/// Every step of `rnn_step_backward` for one direction in one dispatch, from the last step
/// the direction computed to its first; the forward direction passes a padding step's
/// state gradient on to the step before.
pub fn rnn_seq_backward(span: SeqAt, g: SeqGrad, act: usize) -> Result<Dispatch> {
    let p = params::RnnSeqBackwardP {
        batch: u(span.batch)?,
        hidden: u(span.hidden)?,
        steps: u(span.steps)?,
        reverse: span.reverse as u32,
        w_off: u(g.w_hh.off)?,
        act: u(act)?,
        dh_stride: u(g.dh_stride)?,
        dh_col: u(g.dh.off)?,
        head_row: g.head_row as u32,
        dz_off: u(g.dz.off)?,
        b0: u(span.b0)?,
        has_first: g.first_off.is_some() as u32,
        first_off: u(g.first_off.unwrap_or(0))?,
    };
    let bufs = [g.w_hh.buf, g.dh.buf, g.h, g.dz.buf, span.info];
    Ok(dispatch(Kernel::RnnSeqBackward, &p, &bufs, seq_groups(span.batch)?))
}
