//! Backward pass (SPEC §2): one reverse sweep per layer, top layer first. The weight
//! gradients are one matrix product over all (t, b) pairs after each layer's sweep.

use super::for_each_row_shard;
use super::forward::{activation_grad, head_rows, resize, Activations};
use super::loss::{mse_backward, softmax_ce_backward};
use super::matmul::{gemm_with, Op};
use super::packed::{self, Epilogue, Kernel, PackedW, Side};
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{ModelConfig, SeqShape};
use crate::engine::{Grads, Want};
use crate::params::ParamLayout;
use crate::real::Real;

/// Buffers the backward pass reuses from step to step.
#[derive(Clone, Debug, Default)]
pub struct Scratch<F> {
    /// (N, O) dL/do
    g: Vec<F>,
    /// (T, B, H) gradient arriving at the current layer's states, then its dz
    dh: Vec<F>,
    /// (T, B, H) the same for the layer below
    below: Vec<F>,
    /// (T_in, B, in_0) gradient with respect to layer 0's inputs
    d_in: Vec<F>,
    /// W_hh of the layer being swept, packed for the f32 kernels
    packed: PackedW,
}

/// column sums of a (rows, w) matrix added into `acc` (w)
fn add_col_sums<F: Real>(m: &[F], w: usize, acc: &mut [F]) {
    for row in m.chunks_exact(w) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
}

pub fn backward<F: Real>(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[F],
    batch: &Batch<F>,
    act: &Activations<F>,
    want: Want,
) -> Grads<F> {
    let mut grads = Grads::default();
    backward_into(
        cfg,
        layout,
        params,
        batch,
        act,
        want,
        &mut Scratch::default(),
        &mut grads,
    );
    grads
}

/// `backward`, reusing the buffers of `scratch` and `grads`.
#[allow(clippy::too_many_arguments)]
pub fn backward_into<F: Real>(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[F],
    batch: &Batch<F>,
    act: &Activations<F>,
    want: Want,
    scratch: &mut Scratch<F>,
    grads: &mut Grads<F>,
) {
    backward_into_with(cfg, layout, params, batch, act, want, scratch, grads, Kernel::best());
}

/// `backward_into` with the recurrent product on `kernel` (f32 only; f64 always runs the
/// reference).
#[allow(clippy::too_many_arguments)]
pub fn backward_into_with<F: Real>(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[F],
    batch: &Batch<F>,
    act: &Activations<F>,
    want: Want,
    scratch: &mut Scratch<F>,
    grads: &mut Grads<F>,
    kernel: Kernel,
) {
    let (b, t, hd, o) = (batch.batch, batch.steps, cfg.hidden, cfg.output);
    let t_in = cfg.input_steps(t);
    let n = cfg.target_steps(t) * b;
    let bh = b * hd;
    let Scratch {
        g,
        dh,
        below,
        d_in,
        packed: w_packed,
    } = scratch;
    // Biases and token columns accumulate; the padding between tensors must stay zero.
    resize(&mut grads.params, layout.total);
    grads.params.fill(F::ZERO);
    let dw = &mut grads.params;
    let mut dh0 = grads.dh0.take().filter(|_| want.dh0).unwrap_or_default();
    resize(&mut dh0, if want.dh0 { cfg.layers * bh } else { 0 });

    // Head: g = dL/do (N, O), already scaled by the reduction.
    let scale = F::from_f64(cfg.loss_scale(b, t));
    resize(g, n * o);
    match &batch.targets {
        Targets::Classes(y) => softmax_ce_backward(&act.out, y, o, scale, g),
        Targets::Values(y) => mse_backward(cfg.head, &act.out, y, cfg.mse_factors().1, scale, g),
    }
    let rows = head_rows(cfg, &act.h[cfg.layers - 1], b, t); // (N, H)
    gemm_with(
        kernel,
        o,
        hd,
        n,
        g,
        Op::T,
        rows,
        Op::N,
        F::ZERO,
        &mut dw[layout.range(layout.head_w)],
    );
    add_col_sums(g, o, &mut dw[layout.range(layout.head_b.expect("head bias"))]);

    // dh (T, B, H): gradient arriving from the head (top layer) or the layer above.
    resize(dh, t * bh);
    let dh_head = match cfg.seq {
        SeqShape::ManyToOne => {
            dh[..(t - 1) * bh].fill(F::ZERO);
            &mut dh[(t - 1) * bh..]
        }
        _ => &mut dh[..],
    };
    gemm_with(
        kernel,
        n,
        hd,
        o,
        g,
        Op::N,
        &params[layout.range(layout.head_w)],
        Op::N,
        F::ZERO,
        dh_head,
    );

    for l in (0..cfg.layers).rev() {
        let li = layout.layers[l][0];
        let h = &act.h[l]; // (T+1, B, H)
        let w_ih = &params[layout.range(li.w_ih)]; // (H, in)
        let w_hh = &params[layout.range(li.w_hh)]; // (H, H)
        let inw = cfg.in_width(l);

        // Reverse sweep, in place: dh becomes dz (T, B, H).
        // dz_t = (dh_t + W_hh^T dz_{t+1}) ⊙ f'(h_t); as rows, W_hh^T dz is dz · W_hh.
        match F::as_f32(w_hh).filter(|_| kernel != Kernel::Reference) {
            Some(w) => {
                // W_hh packed once for all T steps of both shards.
                w_packed.pack(kernel, w, hd, Side::Backward);
                let w = &*w_packed;
                let h = F::as_f32(h).expect("f32 states");
                for_each_row_shard(dh, b, hd, |rows, r0, nb| {
                    for s in (1..=t).rev() {
                        let (cur, future) = rows.split_at_mut(s);
                        let cur = F::as_f32_mut(cur[s - 1]).expect("f32 gradients"); // (nb, H)
                        let next = future.first().map(|f| F::as_f32(f).expect("f32 gradients"));
                        let h_rows = &h[s * bh + r0 * hd..s * bh + (r0 + nb) * hd]; // (nb, H)
                        packed::step(w, next, cur, Epilogue::Grad(cfg.activation, h_rows));
                    }
                });
            }
            None => for_each_row_shard(dh, b, hd, |rows, r0, nb| {
                for s in (1..=t).rev() {
                    let (cur, future) = rows.split_at_mut(s);
                    let cur = &mut *cur[s - 1];
                    if s < t {
                        gemm_with(kernel, nb, hd, hd, future[0], Op::N, w_hh, Op::N, F::ONE, cur);
                    }
                    let h_rows = &h[s * bh + r0 * hd..s * bh + (r0 + nb) * hd];
                    for (d, &hv) in cur.iter_mut().zip(h_rows) {
                        *d *= activation_grad(cfg.activation, hv);
                    }
                }
            }),
        }
        let dz = &dh[..];

        // Weight gradients over all (t, b) pairs at once.
        // dW_hh (H, H) = dz^T (H, T·B) · h_{t-1} (T·B, H)
        gemm_with(
            kernel,
            hd,
            hd,
            t * b,
            dz,
            Op::T,
            &h[..t * bh],
            Op::N,
            F::ZERO,
            &mut dw[layout.range(li.w_hh)],
        );
        add_col_sums(dz, hd, &mut dw[layout.range(li.b_ih.expect("bias"))]);
        let (db_ih, db_hh) = (layout.range(li.b_ih.expect("bias")), layout.range(li.b_hh.expect("bias")));
        dw.copy_within(db_ih, db_hh.start);
        if want.dh0 {
            // dh0 = W_hh^T dz_1
            gemm_with(
                kernel,
                b,
                hd,
                hd,
                &dz[..bh],
                Op::N,
                w_hh,
                Op::N,
                F::ZERO,
                &mut dh0[l * bh..(l + 1) * bh],
            );
        }

        let dz_in = &dz[..t_in * bh]; // steps that carry an input
        let dw_ih = layout.range(li.w_ih);
        if l > 0 {
            let x = &act.h[l - 1][bh..]; // (T, B, H)
            gemm_with(kernel, hd, inw, t * b, dz, Op::T, x, Op::N, F::ZERO, &mut dw[dw_ih]);
            // dh for the layer below = dz · W_ih (T·B, H)
            resize(below, t * bh);
            gemm_with(kernel, t * b, inw, hd, dz, Op::N, w_ih, Op::N, F::ZERO, below);
            std::mem::swap(dh, below);
            continue;
        }

        // Layer 0: parameter gradient of W_ih (and E), and dx on request.
        let need_dx = want.dx || layout.embed.is_some();
        if need_dx {
            resize(d_in, t_in * b * inw); // (T_in, B, in_0)
            gemm_with(kernel, t_in * b, inw, hd, dz_in, Op::N, w_ih, Op::N, F::ZERO, d_in);
        }
        match &batch.inputs {
            Inputs::Dense(x) => {
                gemm_with(
                    kernel,
                    hd,
                    inw,
                    t_in * b,
                    dz_in,
                    Op::T,
                    x,
                    Op::N,
                    F::ZERO,
                    &mut dw[dw_ih],
                );
            }
            Inputs::Tokens(tok) => match layout.embed {
                None => {
                    // Scatter-add of dz rows into the columns W_ih[:, tok], in (t, b) order.
                    let dw = &mut dw[dw_ih];
                    for (row, &id) in dz_in.chunks_exact(hd).zip(tok) {
                        for (j, &v) in row.iter().enumerate() {
                            dw[j * inw + id as usize] += v;
                        }
                    }
                }
                Some(e_idx) => {
                    gemm_with(
                        kernel,
                        hd,
                        inw,
                        t_in * b,
                        dz_in,
                        Op::T,
                        &act.x_embed,
                        Op::N,
                        F::ZERO,
                        &mut dw[dw_ih],
                    );
                    let de = layout.range(e_idx);
                    for (row, &id) in d_in.chunks_exact(inw).zip(tok) {
                        let dst = &mut dw[de.start + id as usize * inw..de.start + (id as usize + 1) * inw];
                        for (a, &v) in dst.iter_mut().zip(row) {
                            *a += v;
                        }
                    }
                }
            },
        }
        grads.dx = match grads.dx.take() {
            Some(mut v) if want.dx => {
                v.clone_from(d_in);
                Some(v)
            }
            _ if want.dx => Some(d_in.clone()),
            _ => None,
        };
    }
    grads.dh0 = want.dh0.then_some(dh0);
}
