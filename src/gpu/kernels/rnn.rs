//! The builders of the model's own kernels: the recurrent steps (forward and reverse), the
//! layer output (both directions' states side by side, dropout) and the heads with their
//! losses. Sizes, element offsets and flags in, a `Dispatch` out.

use super::launch::{at, dispatch, groups_1d, groups_sg, groups_tiled, internal, u, At, Dispatch};
use super::params;
use super::Kernel;
use crate::error::Result;

/// Activation code shared by the step kernels.
pub fn act_code(a: crate::config::Activation) -> usize {
    match a {
        crate::config::Activation::Tanh => 0,
        crate::config::Activation::Sigmoid => 1,
        crate::config::Activation::Relu => 2,
    }
}

/// Workgroups for a step kernel: `RnnStep*` and `RnnStep*Tile` (8×8 invocations of 4×4 (B, H)
/// blocks) or `RnnStep*Sg`.
fn step_groups(kernel: Kernel, batch: usize, hidden: usize) -> Result<[u32; 3]> {
    match kernel {
        Kernel::RnnStepForward | Kernel::RnnStepBackward | Kernel::RnnStepForwardTile | Kernel::RnnStepBackwardTile => {
            groups_tiled(&format!("a recurrent step of B={batch}, H={hidden}"), batch, hidden, 32)
        }
        Kernel::RnnStepForwardSg | Kernel::RnnStepBackwardSg => groups_sg(batch, hidden),
        _ => Err(internal(format!("{kernel:?} is not a recurrent step kernel"))),
    }
}

/// Where a forward step finds its input pre-activation pre_t.
#[derive(Clone, Copy, Debug)]
pub enum Pre<'a> {
    /// no input at this step: pre_t = 0
    None,
    /// already in row t of `h` (written by the batched input projection)
    InPlace,
    /// token inputs: pre_t[b, j] = w[table + j·strides.0 + tok[tok.off + b]·strides.1] in the
    /// weights' buffer: one-hot inputs read W_ih (H, V) (strides (V, 1)); an embedding's
    /// (V, H) table of E·W_ih^T (strides (1, H))
    Tokens {
        tok: At<'a>,
        vocab: usize,
        table: usize,
        strides: (usize, usize),
    },
}

/// Offsets of one direction's recurrent weights in the parameter buffer.
#[derive(Clone, Copy, Debug)]
pub struct StepWeights<'a> {
    pub w: &'a wgpu::Buffer,
    pub w_hh: usize,
    /// (b_ih, b_hh); None for a bias-free layer
    pub bias: Option<(usize, usize)>,
}

/// Which step a recurrent step kernel computes, for the sequence lengths in the per-call
/// `info` buffer (`gpu::batch_info`): t (1-based) and the index of the chunk's first
/// sequence in the whole batch.
#[derive(Clone, Copy, Debug)]
pub struct StepAt<'a> {
    pub info: &'a wgpu::Buffer,
    pub t: usize,
    pub b0: usize,
}

/// h_t = f(pre_t + b_ih + b_hh + W_hh h_{t-1}) in one direction's buffer `h` (T+1, B, H),
/// row `cur_off` from row `prev_off`; a sequence shorter than t keeps row `prev_off`.
/// `kernel` is one of `StepKernel`'s forward kernels (same bindings and parameters).
#[allow(clippy::too_many_arguments)]
pub fn rnn_step_forward(
    kernel: Kernel,
    batch: usize,
    hidden: usize,
    w: StepWeights,
    h: &wgpu::Buffer,
    (cur_off, prev_off): (usize, usize),
    pre: Pre,
    act: usize,
    step: StepAt,
) -> Result<Dispatch> {
    // without token inputs `w` fills the unread token binding (never `h`, bound read-write)
    let (use_pre, tok, vocab, tab_off, (tab_sj, tab_st)) = match pre {
        Pre::None => (0, at(w.w, 0), 1, 0, (0, 0)),
        Pre::InPlace => (1, at(w.w, 0), 1, 0, (0, 0)),
        Pre::Tokens {
            tok,
            vocab,
            table,
            strides,
        } => (2, tok, vocab, table, strides),
    };
    let (bih, bhh) = w.bias.unwrap_or((0, 0));
    let p = params::RnnStepForwardP {
        batch: u(batch)?,
        hidden: u(hidden)?,
        cur_off: u(cur_off)?,
        prev_off: u(prev_off)?,
        w_off: u(w.w_hh)?,
        bih_off: u(bih)?,
        bhh_off: u(bhh)?,
        use_pre,
        act: u(act)?,
        tok_off: u(tok.off)?,
        vocab: u(vocab)?,
        tab_off: u(tab_off)?,
        tab_sj: u(tab_sj)?,
        tab_st: u(tab_st)?,
        has_bias: w.bias.is_some() as u32,
        step: u(step.t)?,
        b0: u(step.b0)?,
    };
    Ok(dispatch(
        kernel,
        &p,
        &[w.w, h, tok.buf, step.info],
        step_groups(kernel, batch, hidden)?,
    ))
}

/// The operands of one reverse step, dz_t = (dh_t + W_hh^T dz_next) ⊙ f'(h_t).
#[derive(Clone, Copy, Debug)]
pub struct StepGrad<'a> {
    pub w_hh: At<'a>,
    /// dh_t of sequence b at `dh.off + b·dh_stride` (one direction's columns)
    pub dh: At<'a>,
    pub dh_stride: usize,
    /// h_t (B, H)
    pub h: At<'a>,
    /// dz_t (B, H) is written at `dz.off`; dz_next is read at `next_off` of the same buffer
    /// (None: there is no next step)
    pub dz: At<'a>,
    pub next_off: Option<usize>,
    /// the previous step's dh (same columns and stride), which a step past a sequence's
    /// length passes its state gradient on to (the forward direction, whose padding
    /// carries the state)
    pub carry_off: Option<usize>,
    /// where dz also goes on each sequence's last step (the reverse direction's first,
    /// whose dz gives dh0)
    pub first_off: Option<usize>,
}

/// One reverse step (see `StepGrad`); a sequence shorter than t gets dz_t = 0. `kernel` is
/// one of `StepKernel`'s reverse kernels (same bindings and parameters).
pub fn rnn_step_backward(
    kernel: Kernel,
    batch: usize,
    hidden: usize,
    g: StepGrad,
    act: usize,
    step: StepAt,
) -> Result<Dispatch> {
    let p = params::RnnStepBackwardP {
        batch: u(batch)?,
        hidden: u(hidden)?,
        dh_off: u(g.dh.off)?,
        h_off: u(g.h.off)?,
        dz_off: u(g.dz.off)?,
        next_off: u(g.next_off.unwrap_or(0))?,
        has_next: g.next_off.is_some() as u32,
        w_off: u(g.w_hh.off)?,
        act: u(act)?,
        dh_stride: u(g.dh_stride)?,
        step: u(step.t)?,
        b0: u(step.b0)?,
        carry: g.carry_off.is_some() as u32,
        carry_off: u(g.carry_off.unwrap_or(0))?,
        has_first: g.first_off.is_some() as u32,
        first_off: u(g.first_off.unwrap_or(0))?,
    };
    let bufs = [g.w_hh.buf, g.dh.buf, g.h.buf, g.dz.buf, step.info];
    Ok(dispatch(kernel, &p, &bufs, step_groups(kernel, batch, hidden)?))
}

/// Where a layer's dropout mask is drawn (SPEC §1): layer l, the step of the first row
/// (1-based) and the index of the chunk's first sequence in the whole batch.
#[derive(Clone, Copy, Debug)]
pub struct MaskAt {
    pub layer: usize,
    pub t0: usize,
    pub b0: usize,
}

/// A layer's output y (steps, B, H·dirs) at `dst`: row by row [fwd ; rev] of the (·, B, H)
/// state rows at `fwd` and `rev` (`rev` unread with one direction), times the dropout mask
/// at `mask` (training only).
pub fn layer_output(
    info: &wgpu::Buffer,
    (fwd, rev): (At, At),
    dst: At,
    (steps, batch, hidden, dirs): (usize, usize, usize, usize),
    mask: Option<MaskAt>,
) -> Result<Dispatch> {
    let m = mask.unwrap_or(MaskAt { layer: 0, t0: 0, b0: 0 });
    let p = params::LayerOutputP {
        steps: u(steps)?,
        batch: u(batch)?,
        hidden: u(hidden)?,
        dirs: u(dirs)?,
        fwd_off: u(fwd.off)?,
        rev_off: u(rev.off)?,
        dst_off: u(dst.off)?,
        dropout: mask.is_some() as u32,
        layer: u(m.layer)?,
        t0: u(m.t0)?,
        b0: u(m.b0)?,
        grad: 0,
    };
    let bufs = [info, fwd.buf, rev.buf, dst.buf];
    Ok(dispatch(
        Kernel::LayerOutput,
        &p,
        &bufs,
        groups_1d(steps * batch * hidden * dirs, 64)?,
    ))
}

/// The gradient arriving at a layer's output dy (steps, B, width) times the layer's
/// dropout mask, in place.
pub fn dropout_grad(
    info: &wgpu::Buffer,
    dy: At,
    (steps, batch, width): (usize, usize, usize),
    mask: MaskAt,
) -> Result<Dispatch> {
    let p = params::LayerOutputP {
        steps: u(steps)?,
        batch: u(batch)?,
        hidden: u(width)?,
        dirs: 1,
        dst_off: u(dy.off)?,
        dropout: 1,
        layer: u(mask.layer)?,
        t0: u(mask.t0)?,
        b0: u(mask.b0)?,
        grad: 1,
        ..Default::default()
    };
    // the state bindings are unread: `info` fills them (never `dy`, bound read-write)
    let bufs = [info, info, info, dy.buf];
    Ok(dispatch(
        Kernel::LayerOutput,
        &p,
        &bufs,
        groups_1d(steps * batch * width, 64)?,
    ))
}

/// The buffers of a head kernel: logits (N, O) in; outputs (N, O), gradient (N, O) and
/// per-row losses (N) out; targets `y`; the per-call `info` (loss scale, lengths).
#[derive(Clone, Copy, Debug)]
pub struct HeadBufs<'a> {
    pub logits: &'a wgpu::Buffer,
    pub y: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    pub g: &'a wgpu::Buffer,
    pub loss_rows: &'a wgpu::Buffer,
    pub info: &'a wgpu::Buffer,
}

/// The rows of a head kernel: row r is step r / batch + 1 of sequence b0 + r % batch (b0
/// the chunk's first in the whole batch), and carries a target only within the sequence's
/// length when `masked` (false: every row carries one, as in many-to-one).
#[derive(Clone, Copy, Debug)]
pub struct HeadRows {
    pub rows: usize,
    pub batch: usize,
    pub b0: usize,
    pub masked: bool,
}

impl HeadRows {
    /// (rows, batch, b0, masked) as parameter words
    fn words(&self) -> Result<[u32; 4]> {
        Ok([u(self.rows)?, u(self.batch)?, u(self.b0)?, self.masked as u32])
    }
}

/// The bias binding and its offset: without a bias the logits fill the unread binding.
fn head_bias<'a>(bias: Option<At<'a>>, io: &HeadBufs<'a>) -> Result<(&'a wgpu::Buffer, u32)> {
    Ok(match bias {
        Some(b) => (b.buf, u(b.off)?),
        None => (io.logits, 0),
    })
}

/// Softmax + cross-entropy + gradient for `rows` of `classes` logits (bias at `bias`, if
/// any); `loss_rows` gets -log p[y] per row and `g` the gradient, both times the batch's
/// loss scale (zero for rows past a sequence's length).
pub fn softmax_ce(rows: HeadRows, classes: usize, bias: Option<At>, io: HeadBufs) -> Result<Dispatch> {
    let [n, batch, b0, masked] = rows.words()?;
    let (bias_buf, bias_off) = head_bias(bias, &io)?;
    let p = params::SoftmaxCeP {
        rows: n,
        classes: u(classes)?,
        bias_off,
        has_bias: bias.is_some() as u32,
        batch,
        b0,
        masked,
    };
    let bufs = [bias_buf, io.logits, io.y, io.out, io.g, io.loss_rows, io.info];
    Ok(dispatch(Kernel::SoftmaxCe, &p, &bufs, groups_1d(rows.rows, 64)?))
}

/// Linear (or sigmoid) head + MSE; `loss_rows` gets Σ_k (y_hat - y)² per row and `g` the
/// gradient (`gfactor` · (y_hat - y), through the sigmoid), both times the batch's loss
/// scale (zero for rows past a sequence's length).
pub fn mse(
    rows: HeadRows,
    outputs: usize,
    bias: Option<At>,
    sigmoid_head: bool,
    gfactor: f32,
    io: HeadBufs,
) -> Result<Dispatch> {
    let [n, batch, b0, masked] = rows.words()?;
    let (bias_buf, bias_off) = head_bias(bias, &io)?;
    let p = params::MseP {
        rows: n,
        outputs: u(outputs)?,
        bias_off,
        sigmoid_head: sigmoid_head as u32,
        gfactor,
        has_bias: bias.is_some() as u32,
        batch,
        b0,
        masked,
    };
    let bufs = [bias_buf, io.logits, io.y, io.out, io.g, io.loss_rows, io.info];
    Ok(dispatch(Kernel::Mse, &p, &bufs, groups_1d(rows.rows, 64)?))
}
