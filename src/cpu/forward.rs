//! Forward pass (SPEC §1): every state is kept for the backward sweep.

pub use super::act::{activate, activation_grad};
use super::loss::{mse_forward_valid, softmax_ce_forward_valid};
use super::matmul::{gemm_with, Op};
use super::packed::{Kernel, PackedW, Side};
use super::sweep::{self, Dir, Recurrent};
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{ModelConfig, SeqShape};
use crate::dropout::MaskKey;
use crate::params::ParamLayout;
use crate::real::Real;
use rayon::prelude::*;

/// What the forward pass keeps. Its buffers are reused from step to step (`forward_into`):
/// a fresh multi-megabyte allocation per step costs a page fault per 4 KiB.
#[derive(Clone, Debug, Default)]
pub struct Activations<F> {
    /// per layer and direction, index l·dirs + d (the state rows' order): (T+1, B, H), laid
    /// out as `sweep` describes (forward: row 0 is h0, row t is h_t; reverse: row t-1 is
    /// hr_t, row T its initial state)
    pub h: Vec<Vec<F>>,
    /// per layer: what the layer above (or the head) reads when that is not the layer's own
    /// state buffer: (T, B, H·dirs) = m ⊙ [h_t ; hr_t], for bidirectional layers and, in a
    /// training step with dropout, for every layer below the top; empty otherwise
    pub y: Vec<Vec<F>>,
    /// per layer below the top, in a training step with dropout: the mask m (T, B, H·dirs),
    /// entries 0 or 1/(1-P); empty otherwise
    pub mask: Vec<Vec<F>>,
    /// bidirectional many-to-one: the head's rows [h_T ; hr_1] (B, 2H); empty otherwise
    pub head_in: Vec<F>,
    /// (N) whether each head row carries a target (ragged batches); empty when all do
    pub valid: Vec<bool>,
    /// (T_in, B, E) embedded inputs, with an embedding table (empty otherwise)
    pub x_embed: Vec<F>,
    /// (N, O), N = T_out·B: the head's pre-activations
    pub logits: Vec<F>,
    /// (N, O): softmax probabilities, or predictions y_hat for MSE heads
    pub out: Vec<F>,
    /// the reduced loss (SPEC §1 reduction)
    pub loss: f64,
    /// directions per layer of the model these belong to
    dirs: usize,
    /// W_hh^T of the direction being swept, packed for the f32 kernels
    packed: PackedW,
}

impl<F: Real> Activations<F> {
    /// (L·dirs, B, H) state after the last step (PyTorch's h_n: h_{len_b} forward, hr_1 in
    /// reverse), to carry into the next window, written into `s`.
    pub fn final_state_into(&self, t: usize, s: &mut Vec<F>) {
        s.clear();
        for (i, h) in self.h.iter().enumerate() {
            let bh = h.len() / (t + 1);
            let slot = Dir::of(i % self.dirs.max(1)).final_slot(t);
            s.extend_from_slice(&h[slot * bh..(slot + 1) * bh]);
        }
    }

    pub fn final_state(&self, t: usize) -> Vec<F> {
        let mut s = Vec::new();
        self.final_state_into(t, &mut s);
        s
    }

    /// The rows the head reads: (N, H·dirs), N = T_out·B.
    pub fn head_input(&self, cfg: &ModelConfig, b: usize, t: usize) -> &[F] {
        head_input(cfg, &self.h, &self.y, &self.head_in, b, t)
    }
}

/// What layer l+1 (or the head) reads of layer l: (T, B, H·dirs).
pub(crate) fn layer_out<'a, F>(h: &'a [Vec<F>], y: &'a [Vec<F>], l: usize, bh: usize) -> &'a [F] {
    if y[l].is_empty() {
        &h[l][bh..] // one direction, no mask: the states themselves
    } else {
        &y[l]
    }
}

fn head_input<'a, F>(
    cfg: &ModelConfig,
    h: &'a [Vec<F>],
    y: &'a [Vec<F>],
    head_in: &'a [F],
    b: usize,
    t: usize,
) -> &'a [F] {
    let (top, bh) = (cfg.layers - 1, b * cfg.hidden);
    match (cfg.seq, cfg.bidirectional) {
        (SeqShape::ManyToOne, true) => head_in,
        // h_T: padding carried each sequence's h_{len_b} there
        (SeqShape::ManyToOne, false) => &h[top][t * bh..(t + 1) * bh],
        _ => layer_out(h, y, top, bh),
    }
}

/// Sets `v` to `len` elements without reallocating when its capacity suffices. The contents
/// are whatever was there: every caller overwrites or zeroes what it reads.
pub(crate) fn resize<F: Real>(v: &mut Vec<F>, len: usize) {
    v.resize(len, F::ZERO);
    v.truncate(len);
}

/// logits (N, O) = rows (N, W) · W_ho^T + b_o
pub fn head_forward<F: Real>(
    kernel: Kernel,
    rows: &[F],
    w: &[F],
    bias: Option<&[F]>,
    width: usize,
    o: usize,
    logits: &mut [F],
) {
    let n = logits.len() / o;
    gemm_with(kernel, n, o, width, rows, Op::N, w, Op::T, F::ZERO, logits);
    if let Some(bias) = bias {
        for row in logits.chunks_exact_mut(o) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}

/// (N) whether each head row (t, b) carries a target: t < len_b; left empty when all do.
fn valid_rows<F: Real>(cfg: &ModelConfig, batch: &Batch<F>, valid: &mut Vec<bool>) {
    valid.clear();
    if cfg.seq == SeqShape::ManyToOne || !batch.is_ragged() {
        return;
    }
    for t in 0..batch.steps {
        valid.extend((0..batch.batch).map(|s| t < batch.len_of(s)));
    }
}

/// The forward pass over a validated batch, as inference runs it (no dropout). `params` is
/// the flat buffer of `layout`.
pub fn forward<F: Real>(cfg: &ModelConfig, layout: &ParamLayout, params: &[F], batch: &Batch<F>) -> Activations<F> {
    let mut act = Activations::default();
    forward_into_with(cfg, layout, params, batch, None, &mut act, Kernel::best());
    act
}

/// The forward pass of a training step: with dropout, the masks of `key` (SPEC §1).
pub fn forward_train<F: Real>(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[F],
    batch: &Batch<F>,
    key: Option<&MaskKey>,
) -> Activations<F> {
    let mut act = Activations::default();
    forward_into_with(cfg, layout, params, batch, key, &mut act, Kernel::best());
    act
}

/// `forward_train`, reusing the buffers of `act`.
pub fn forward_into<F: Real>(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[F],
    batch: &Batch<F>,
    key: Option<&MaskKey>,
    act: &mut Activations<F>,
) {
    forward_into_with(cfg, layout, params, batch, key, act, Kernel::best());
}

/// `forward_into` with the recurrent product on `kernel` (f32 only; f64 always runs the
/// reference). `key`: the dropout masks of a training step, None for inference.
pub fn forward_into_with<F: Real>(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[F],
    batch: &Batch<F>,
    key: Option<&MaskKey>,
    act: &mut Activations<F>,
    kernel: Kernel,
) {
    let (b, t) = (batch.batch, batch.steps);
    let key = key.filter(|_| cfg.dropout.is_active());
    act.dirs = cfg.dirs();
    act.h.resize_with(cfg.layers * cfg.dirs(), Vec::new);
    act.y.resize_with(cfg.layers, Vec::new);
    act.mask.resize_with(cfg.layers, Vec::new);
    embed(layout, params, batch, cfg.in_width(0), &mut act.x_embed);
    for l in 0..cfg.layers {
        for d in 0..cfg.dirs() {
            layer_direction(cfg, layout, params, batch, act, l, d, kernel);
        }
        layer_output(cfg, act, l, key.filter(|_| l + 1 < cfg.layers), b, t);
    }

    let o = cfg.output;
    let n = cfg.target_steps(t) * b;
    let Activations {
        h,
        y,
        head_in,
        valid,
        logits,
        out,
        ..
    } = act;
    resize(logits, n * o);
    resize(out, n * o);
    head_forward(
        kernel,
        head_input(cfg, h, y, head_in, b, t),
        &params[layout.range(layout.head_w)],
        layout.head_b.map(|i| &params[layout.range(i)]),
        cfg.out_width(),
        o,
        logits,
    );
    valid_rows(cfg, batch, valid);
    let sum = match &batch.targets {
        Targets::Classes(y) => softmax_ce_forward_valid(logits, y, o, out, valid),
        Targets::Values(y) => mse_forward_valid(cfg.head, logits, y, o, out, valid),
    };
    act.loss = sum * cfg.loss_scale_n(batch.target_count(cfg));
}

/// (T_in, B, E) rows of the embedding table for token inputs, when the model has one.
fn embed<F: Real>(layout: &ParamLayout, params: &[F], batch: &Batch<F>, e: usize, x_embed: &mut Vec<F>) {
    x_embed.clear();
    if let (Inputs::Tokens(tok), Some(idx)) = (&batch.inputs, layout.embed) {
        let table = &params[layout.range(idx)]; // (V, E)
        for &id in tok {
            x_embed.extend_from_slice(&table[id as usize * e..(id as usize + 1) * e]);
        }
    }
}

/// One direction d of layer l: the input projection of every step at once (it does not
/// depend on the state), the biases, then the recurrence.
#[allow(clippy::too_many_arguments)]
fn layer_direction<F: Real>(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[F],
    batch: &Batch<F>,
    act: &mut Activations<F>,
    l: usize,
    d: usize,
    kernel: Kernel,
) {
    let (b, t, hd) = (batch.batch, batch.steps, cfg.hidden);
    let (bh, dir, row) = (b * hd, Dir::of(d), l * cfg.dirs() + d);
    let li = layout.layers[l][d];
    let w_ih = &params[layout.range(li.w_ih)]; // (H, in)
    let inw = cfg.in_width(l);
    let Activations {
        h, y, x_embed, packed, ..
    } = act;
    let (below, this) = h.split_at_mut(l * cfg.dirs());
    let hs = &mut this[d]; // (T+1, B, H)
    resize(hs, (t + 1) * bh);
    let h0 = dir.h0_slot(t) * bh;
    match &batch.h0 {
        Some(v) => hs[h0..h0 + bh].copy_from_slice(&v[row * bh..(row + 1) * bh]),
        None => hs[h0..h0 + bh].fill(F::ZERO),
    }

    let pre = &mut hs[dir.steps(t, bh)]; // (T, B, H), time order in both directions
    if l > 0 {
        let x = layer_out(below, y, l - 1, bh); // (T, B, in)
        gemm_with(kernel, t * b, hd, inw, x, Op::N, w_ih, Op::T, F::ZERO, pre);
    } else {
        let t_in = cfg.input_steps(t);
        let (with_input, without) = pre.split_at_mut(t_in * bh);
        match (&batch.inputs, layout.embed) {
            (Inputs::Dense(x), _) => gemm_with(kernel, t_in * b, hd, inw, x, Op::N, w_ih, Op::T, F::ZERO, with_input),
            (Inputs::Tokens(tok), None) => {
                // one-hot · W_ih^T is the column W_ih[:, tok]: a gather.
                for (row, &id) in with_input.chunks_exact_mut(hd).zip(tok) {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = w_ih[j * inw + id as usize];
                    }
                }
            }
            (Inputs::Tokens(_), Some(_)) => gemm_with(
                kernel,
                t_in * b,
                hd,
                inw,
                x_embed,
                Op::N,
                w_ih,
                Op::T,
                F::ZERO,
                with_input,
            ),
        }
        // one-to-many: no input after step 1
        without.fill(F::ZERO);
    }
    if let (Some(bi), Some(bh2)) = (li.b_ih, li.b_hh) {
        let (b_ih, b_hh) = (&params[layout.range(bi)], &params[layout.range(bh2)]); // (H) each
        for row in pre.chunks_exact_mut(hd) {
            for ((v, &x), &z) in row.iter_mut().zip(b_ih).zip(b_hh) {
                *v += x + z;
            }
        }
    }

    let w_hh = &params[layout.range(li.w_hh)]; // (H, H)
    let rec = Recurrent::new(kernel, w_hh, hd, Side::Forward, packed);
    let lens = batch.lengths.as_deref().filter(|_| batch.is_ragged());
    sweep::forward(&rec, cfg.activation, hs, b, hd, dir, lens);
}

/// What layer l hands on: y[l] = m ⊙ [h_t ; hr_t] when it is not the state buffer itself
/// (see `Activations::y`), its mask, and for the top layer of a bidirectional many-to-one
/// model the head's rows [h_T ; hr_1].
fn layer_output<F: Real>(
    cfg: &ModelConfig,
    act: &mut Activations<F>,
    l: usize,
    key: Option<&MaskKey>,
    b: usize,
    t: usize,
) {
    let (hd, dirs) = (cfg.hidden, cfg.dirs());
    let (bh, w) = (b * hd, hd * dirs);
    let top = l + 1 == cfg.layers;
    let m2o = cfg.seq == SeqShape::ManyToOne;
    let Activations {
        h, y, mask, head_in, ..
    } = act;
    let (y, mask) = (&mut y[l], &mut mask[l]);
    mask.clear();
    y.clear();
    if key.is_some() || (cfg.bidirectional && !(top && m2o)) {
        resize(y, t * b * w); // (T, B, H·dirs)
        for d in 0..dirs {
            let states = &h[l * dirs + d][Dir::of(d).steps(t, bh)]; // (T, B, H)
            for (dst, src) in y.chunks_exact_mut(w).zip(states.chunks_exact(hd)) {
                dst[d * hd..(d + 1) * hd].copy_from_slice(src);
            }
        }
    }
    if let Some(key) = key {
        resize(mask, t * b * w); // (T, B, H·dirs)
                                 // a pure function of (t, b, u): the steps fill in parallel, in any order
        mask.par_chunks_mut(b * w).enumerate().for_each(|(i, m)| {
            for (s, row) in m.chunks_exact_mut(w).enumerate() {
                for (u, v) in row.iter_mut().enumerate() {
                    *v = F::from_f64(f64::from(key.factor(l, i + 1, s, u)));
                }
            }
        });
        for (v, &m) in y.iter_mut().zip(mask.iter()) {
            *v *= m;
        }
    }
    head_in.clear();
    if top && m2o && cfg.bidirectional {
        let (fwd, rev) = (&h[l * 2], &h[l * 2 + 1]);
        for s in 0..b {
            let at = |dir: Dir| dir.final_slot(t) * bh + s * hd;
            head_in.extend_from_slice(&fwd[at(Dir::Forward)..at(Dir::Forward) + hd]);
            head_in.extend_from_slice(&rev[at(Dir::Reverse)..at(Dir::Reverse) + hd]);
        }
    }
}
