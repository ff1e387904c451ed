//! Forward pass (SPEC §1): every hidden state is kept for the backward sweep.

use super::loss::{mse_forward, sigmoid, softmax_ce_forward};
use super::matmul::{gemm, Op};
use super::{for_each_row_shard, Real};
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{Activation, ModelConfig, SeqShape};
use crate::params::ParamLayout;

/// h = f(z), in place.
pub fn activate<F: Real>(act: Activation, z: &mut [F]) {
    for v in z {
        *v = match act {
            // std's tanh saturates to ±1 for large |z|; it never returns NaN.
            Activation::Tanh => v.tanh(),
            Activation::Sigmoid => sigmoid(*v),
            Activation::Relu => v.max(F::ZERO),
        };
    }
}

/// f'(z) written with the output h = f(z).
#[inline]
pub fn activation_grad<F: Real>(act: Activation, h: F) -> F {
    match act {
        Activation::Tanh => F::ONE - h * h,
        Activation::Sigmoid => h * (F::ONE - h),
        Activation::Relu => {
            if h > F::ZERO {
                F::ONE
            } else {
                F::ZERO
            }
        }
    }
}

/// What the forward pass keeps.
#[derive(Clone, Debug)]
pub struct Activations<F> {
    /// per layer (T+1, B, H); row 0 is h0
    pub h: Vec<Vec<F>>,
    /// (T_in, B, E) embedded inputs, with an embedding table
    pub x_embed: Option<Vec<F>>,
    /// (N, O), N = T_out·B: softmax probabilities, or predictions y_hat for MSE heads
    pub out: Vec<F>,
    /// the reduced loss (SPEC §1 reduction)
    pub loss: f64,
}

impl<F: Real> Activations<F> {
    /// (L, B, H) hidden state after the last step, to carry into the next window.
    pub fn final_state(&self, b: usize, t: usize) -> Vec<F> {
        let mut s = Vec::new();
        for h in &self.h {
            let bh = h.len() / (t + 1);
            debug_assert_eq!(bh % b, 0);
            s.extend_from_slice(&h[t * bh..(t + 1) * bh]);
        }
        s
    }
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
pub fn head_forward<F: Real>(rows: &[F], w: &[F], bias: &[F], n: usize, h: usize, o: usize) -> Vec<F> {
    let mut logits = vec![F::ZERO; n * o];
    gemm(n, o, h, rows, Op::N, w, Op::T, F::ZERO, &mut logits);
    for row in logits.chunks_exact_mut(o) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
    logits
}

/// The forward pass over a validated batch. `params` is the flat buffer of `layout`.
pub fn forward<F: Real>(cfg: &ModelConfig, layout: &ParamLayout, params: &[F], batch: &Batch<F>) -> Activations<F> {
    let (b, t, hd) = (batch.batch, batch.steps, cfg.hidden);
    let t_in = cfg.input_steps(t);
    let bh = b * hd;
    let mut hs: Vec<Vec<F>> = Vec::with_capacity(cfg.layers);
    let mut x_embed = None;

    for (l, li) in layout.layers.iter().enumerate() {
        let w_ih = &params[layout.range(li.w_ih)]; // (H, in)
        let w_hh = &params[layout.range(li.w_hh)]; // (H, H)
        let b_ih = &params[layout.range(li.b_ih)]; // (H)
        let b_hh = &params[layout.range(li.b_hh)]; // (H)
        let inw = cfg.in_width(l);
        let mut h = vec![F::ZERO; (t + 1) * bh]; // (T+1, B, H)
        if let Some(h0) = &batch.h0 {
            h[..bh].copy_from_slice(&h0[l * bh..(l + 1) * bh]);
        }

        // Input projection of every step at once into h[1..]: it does not depend on h_{t-1}.
        {
            let pre = &mut h[bh..]; // (T, B, H)
            if l > 0 {
                let x = &hs[l - 1][bh..]; // (T, B, H)
                gemm(t * b, hd, inw, x, Op::N, w_ih, Op::T, F::ZERO, pre);
            } else {
                match &batch.inputs {
                    Inputs::Dense(x) => gemm(t_in * b, hd, inw, x, Op::N, w_ih, Op::T, F::ZERO, &mut pre[..t_in * bh]),
                    Inputs::Tokens(tok) => match layout.embed {
                        None => {
                            // one-hot · W_ih^T is the column W_ih[:, tok]: a gather.
                            for (row, &id) in pre.chunks_exact_mut(hd).zip(tok) {
                                for (j, v) in row.iter_mut().enumerate() {
                                    *v = w_ih[j * inw + id as usize];
                                }
                            }
                        }
                        Some(e_idx) => {
                            let table = &params[layout.range(e_idx)]; // (V, E)
                            let mut xe = Vec::with_capacity(t_in * b * inw); // (T_in, B, E)
                            for &id in tok {
                                xe.extend_from_slice(&table[id as usize * inw..(id as usize + 1) * inw]);
                            }
                            gemm(
                                t_in * b,
                                hd,
                                inw,
                                &xe,
                                Op::N,
                                w_ih,
                                Op::T,
                                F::ZERO,
                                &mut pre[..t_in * bh],
                            );
                            x_embed = Some(xe);
                        }
                    },
                }
            }
            for row in pre.chunks_exact_mut(hd) {
                for ((v, &bi), &bhh) in row.iter_mut().zip(b_ih).zip(b_hh) {
                    *v += bi + bhh;
                }
            }
        }

        // The recurrence: h_t = f(pre_t + h_{t-1} · W_hh^T), each shard of sequences on its
        // own thread.
        for_each_row_shard(&mut h, b, hd, |rows, _, nb| {
            for s in 1..=t {
                let (past, now) = rows.split_at_mut(s);
                gemm(nb, hd, hd, past[s - 1], Op::N, w_hh, Op::T, F::ONE, now[0]);
                activate(cfg.activation, now[0]);
            }
        });
        hs.push(h);
    }

    let n = cfg.target_steps(t) * b;
    let (o, top) = (cfg.output, &hs[cfg.layers - 1]);
    let logits = head_forward(
        head_rows(cfg, top, b, t),
        &params[layout.range(layout.head_w)],
        &params[layout.range(layout.head_b)],
        n,
        hd,
        o,
    );
    let mut out = vec![F::ZERO; n * o];
    let sum = match &batch.targets {
        Targets::Classes(y) => softmax_ce_forward(&logits, y, o, &mut out),
        Targets::Values(y) => mse_forward(cfg.head, &logits, y, o, &mut out),
    };
    Activations {
        h: hs,
        x_embed,
        out,
        loss: sum * cfg.loss_scale(b, t),
    }
}
