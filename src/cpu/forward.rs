//! Forward pass (SPEC §1): every hidden state is kept for the backward sweep.

pub use super::act::{activate, activation_grad};
use super::for_each_row_shard;
use super::loss::{mse_forward, softmax_ce_forward};
use super::matmul::{gemm_with, Op};
use super::packed::{self, Epilogue, Kernel, PackedW, Side};
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{ModelConfig, SeqShape};
use crate::params::ParamLayout;
use crate::real::Real;

/// What the forward pass keeps. Its buffers are reused from step to step (`forward_into`):
/// a fresh multi-megabyte allocation per step costs a page fault per 4 KiB.
#[derive(Clone, Debug, Default)]
pub struct Activations<F> {
    /// per layer (T+1, B, H); row 0 is h0
    pub h: Vec<Vec<F>>,
    /// (T_in, B, E) embedded inputs, with an embedding table (empty otherwise)
    pub x_embed: Vec<F>,
    /// (N, O), N = T_out·B: the head's pre-activations
    pub logits: Vec<F>,
    /// (N, O): softmax probabilities, or predictions y_hat for MSE heads
    pub out: Vec<F>,
    /// the reduced loss (SPEC §1 reduction)
    pub loss: f64,
    /// W_hh^T of the layer being swept, packed for the f32 kernels
    packed: PackedW,
}

impl<F: Real> Activations<F> {
    /// (L, B, H) hidden state after the last step, to carry into the next window, written
    /// into `s`.
    pub fn final_state_into(&self, t: usize, s: &mut Vec<F>) {
        s.clear();
        for h in &self.h {
            let bh = h.len() / (t + 1);
            s.extend_from_slice(&h[t * bh..(t + 1) * bh]);
        }
    }

    pub fn final_state(&self, t: usize) -> Vec<F> {
        let mut s = Vec::new();
        self.final_state_into(t, &mut s);
        s
    }
}

/// Sets `v` to `len` elements without reallocating when its capacity suffices. The contents
/// are whatever was there: every caller overwrites or zeroes what it reads.
pub(crate) fn resize<F: Real>(v: &mut Vec<F>, len: usize) {
    v.resize(len, F::ZERO);
    v.truncate(len);
}

/// Rows of the top layer's states that feed the head: (N, H), N = T_out·B.
pub fn head_rows<'a, F>(cfg: &ModelConfig, h_top: &'a [F], b: usize, t: usize) -> &'a [F] {
    let bh = b * cfg.hidden;
    match cfg.seq {
        SeqShape::ManyToOne => &h_top[t * bh..(t + 1) * bh],
        _ => &h_top[bh..],
    }
}

/// logits (N, O) = rows (N, H) · W_ho^T + b_o
pub fn head_forward<F: Real>(kernel: Kernel, rows: &[F], w: &[F], bias: &[F], h: usize, o: usize, logits: &mut [F]) {
    let n = logits.len() / o;
    gemm_with(kernel, n, o, h, rows, Op::N, w, Op::T, F::ZERO, logits);
    for row in logits.chunks_exact_mut(o) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// The forward pass over a validated batch. `params` is the flat buffer of `layout`.
pub fn forward<F: Real>(cfg: &ModelConfig, layout: &ParamLayout, params: &[F], batch: &Batch<F>) -> Activations<F> {
    let mut act = Activations::default();
    forward_into(cfg, layout, params, batch, &mut act);
    act
}

/// `forward`, reusing the buffers of `act`.
pub fn forward_into<F: Real>(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[F],
    batch: &Batch<F>,
    act: &mut Activations<F>,
) {
    forward_into_with(cfg, layout, params, batch, act, Kernel::best());
}

/// `forward_into` with the recurrent product on `kernel` (f32 only; f64 always runs the
/// reference).
pub fn forward_into_with<F: Real>(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[F],
    batch: &Batch<F>,
    act: &mut Activations<F>,
    kernel: Kernel,
) {
    let (b, t, hd) = (batch.batch, batch.steps, cfg.hidden);
    let t_in = cfg.input_steps(t);
    let bh = b * hd;
    act.h.resize_with(cfg.layers, Vec::new);

    for (l, li) in layout.layers.iter().map(|d| &d[0]).enumerate() {
        let w_ih = &params[layout.range(li.w_ih)]; // (H, in)
        let w_hh = &params[layout.range(li.w_hh)]; // (H, H)
        let b_ih = &params[layout.range(li.b_ih.expect("bias"))]; // (H)
        let b_hh = &params[layout.range(li.b_hh.expect("bias"))]; // (H)
        let inw = cfg.in_width(l);
        let (below, this) = act.h.split_at_mut(l);
        let h = &mut this[0]; // (T+1, B, H)
        resize(h, (t + 1) * bh);
        match &batch.h0 {
            Some(h0) => h[..bh].copy_from_slice(&h0[l * bh..(l + 1) * bh]),
            None => h[..bh].fill(F::ZERO),
        }

        // Input projection of every step at once into h[1..]: it does not depend on h_{t-1}.
        let pre = &mut h[bh..]; // (T, B, H)
        if l > 0 {
            let x = &below[l - 1][bh..]; // (T, B, H)
            gemm_with(kernel, t * b, hd, inw, x, Op::N, w_ih, Op::T, F::ZERO, pre);
        } else {
            let (with_input, without) = pre.split_at_mut(t_in * bh);
            match &batch.inputs {
                Inputs::Dense(x) => gemm_with(kernel, t_in * b, hd, inw, x, Op::N, w_ih, Op::T, F::ZERO, with_input),
                Inputs::Tokens(tok) => match layout.embed {
                    None => {
                        // one-hot · W_ih^T is the column W_ih[:, tok]: a gather.
                        for (row, &id) in with_input.chunks_exact_mut(hd).zip(tok) {
                            for (j, v) in row.iter_mut().enumerate() {
                                *v = w_ih[j * inw + id as usize];
                            }
                        }
                    }
                    Some(e_idx) => {
                        let table = &params[layout.range(e_idx)]; // (V, E)
                        let xe = &mut act.x_embed; // (T_in, B, E)
                        xe.clear();
                        for &id in tok {
                            xe.extend_from_slice(&table[id as usize * inw..(id as usize + 1) * inw]);
                        }
                        gemm_with(kernel, t_in * b, hd, inw, xe, Op::N, w_ih, Op::T, F::ZERO, with_input);
                    }
                },
            }
            // one-to-many: no input after step 1
            without.fill(F::ZERO);
        }
        for row in pre.chunks_exact_mut(hd) {
            for ((v, &bi), &bhh) in row.iter_mut().zip(b_ih).zip(b_hh) {
                *v += bi + bhh;
            }
        }

        // The recurrence: h_t = f(pre_t + h_{t-1} · W_hh^T), each shard of sequences on its
        // own thread.
        match F::as_f32(w_hh).filter(|_| kernel != Kernel::Reference) {
            Some(w) => {
                // W_hh^T packed once for all T steps of both shards.
                act.packed.pack(kernel, w, hd, Side::Forward);
                let w = &act.packed;
                let epi = Epilogue::Activate(cfg.activation);
                for_each_row_shard(h, b, hd, |rows, _, _| {
                    for s in 1..=t {
                        let (past, now) = rows.split_at_mut(s);
                        let prev = F::as_f32(past[s - 1]).expect("f32 states"); // (nb, H)
                        let now = F::as_f32_mut(now[0]).expect("f32 states"); // (nb, H)
                        packed::step(w, Some(prev), now, epi);
                    }
                });
            }
            None => for_each_row_shard(h, b, hd, |rows, _, nb| {
                for s in 1..=t {
                    let (past, now) = rows.split_at_mut(s);
                    gemm_with(kernel, nb, hd, hd, past[s - 1], Op::N, w_hh, Op::T, F::ONE, now[0]);
                    activate(cfg.activation, now[0]);
                }
            }),
        }
    }

    let o = cfg.output;
    let n = cfg.target_steps(t) * b;
    resize(&mut act.logits, n * o);
    resize(&mut act.out, n * o);
    head_forward(
        kernel,
        head_rows(cfg, &act.h[cfg.layers - 1], b, t),
        &params[layout.range(layout.head_w)],
        &params[layout.range(layout.head_b.expect("head bias"))],
        hd,
        o,
        &mut act.logits,
    );
    let sum = match &batch.targets {
        Targets::Classes(y) => softmax_ce_forward(&act.logits, y, o, &mut act.out),
        Targets::Values(y) => mse_forward(cfg.head, &act.logits, y, cfg.mse_factors().0, &mut act.out),
    };
    act.loss = sum * cfg.loss_scale(b, t);
}
