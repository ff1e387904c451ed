//! Backward pass (SPEC §2): one reverse sweep per layer and direction, top layer first. The
//! weight gradients are one matrix product over all (t, b) pairs after each sweep.

use super::forward::{layer_out, resize, Activations};
use super::loss::{mse_backward, softmax_ce_backward, zero_invalid};
use super::matmul::{gemm_with, Op};
use super::packed::{Kernel, PackedW, Side};
use super::sweep::{self, Dir, Recurrent};
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
    /// per direction (T, B, H): the gradient arriving at the current layer's states, then
    /// its dz
    dh: Vec<Vec<F>>,
    /// (N, 2H) the gradient reaching a bidirectional head's rows
    dy: Vec<F>,
    /// (T, B, in) the gradient with respect to the current layer's input: the output of the
    /// layer below, or for layer 0 the inputs of the T_in steps that carry one (the dense,
    /// one-hot or embedded vectors)
    d_in: Vec<F>,
    /// (B, H) the dz rows a state gradient comes from
    first: Vec<F>,
    /// (B, H) the gradient reaching the reverse direction's padding states: its h0's
    carry: Vec<F>,
    /// W_hh of the direction being swept, packed for the f32 kernels
    packed: PackedW,
}

/// What every part of one backward pass reads.
struct Pass<'a, F> {
    cfg: &'a ModelConfig,
    layout: &'a ParamLayout,
    params: &'a [F],
    batch: &'a Batch<F>,
    act: &'a Activations<F>,
    want: Want,
    kernel: Kernel,
    /// (B) sequence lengths when some is shorter than T
    lens: Option<&'a [u32]>,
}

impl<F: Real> Pass<'_, F> {
    fn w(&self, idx: usize) -> &[F] {
        &self.params[self.layout.range(idx)]
    }
}

/// column sums of a (rows, w) matrix added into `acc` (w)
fn add_col_sums<F: Real>(m: &[F], w: usize, acc: &mut [F]) {
    for row in m.chunks_exact(w) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
}

/// Rows (R, H·dirs) split into each direction's (R, H) buffer.
fn split_dirs<F: Real>(src: &[F], hd: usize, dst: &mut [Vec<F>]) {
    let w = hd * dst.len();
    for (d, out) in dst.iter_mut().enumerate() {
        resize(out, src.len() / w * hd);
        for (o, row) in out.chunks_exact_mut(hd).zip(src.chunks_exact(w)) {
            o.copy_from_slice(&row[d * hd..(d + 1) * hd]);
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
    let p = Pass {
        cfg,
        layout,
        params,
        batch,
        act,
        want,
        kernel,
        lens: batch.lengths.as_deref().filter(|_| batch.is_ragged()),
    };
    // Biases and token columns accumulate; the padding between tensors must stay zero.
    resize(&mut grads.params, layout.total);
    grads.params.fill(F::ZERO);
    let mut dh0 = grads.dh0.take().filter(|_| want.dh0).unwrap_or_default();
    let rows = batch.batch * cfg.hidden;
    resize(&mut dh0, if want.dh0 { cfg.state_rows() * rows } else { 0 }); // (L·dirs, B, H)
    scratch.dh.resize_with(cfg.dirs(), Vec::new);

    head_backward(&p, scratch, &mut grads.params);
    for l in (0..cfg.layers).rev() {
        for d in 0..cfg.dirs() {
            direction_backward(&p, l, d, scratch, &mut grads.params, &mut dh0);
        }
        if l > 0 {
            hand_down(&p, l, scratch);
        } else {
            layer0_inputs(&p, scratch, grads);
        }
    }
    grads.dh0 = want.dh0.then_some(dh0);
}

/// g = dL/do, the head's weight gradients, and the gradient reaching the top layer's states
/// from the head, into each direction's dh (T, B, H).
fn head_backward<F: Real>(p: &Pass<F>, s: &mut Scratch<F>, dw: &mut [F]) {
    let (cfg, act) = (p.cfg, p.act);
    let (b, t, hd, o) = (p.batch.batch, p.batch.steps, cfg.hidden, cfg.output);
    let (n, w, bh) = (cfg.target_steps(t) * b, cfg.out_width(), b * hd);
    // g (N, O), already scaled by the reduction; padding rows carry no target
    let scale = F::from_f64(cfg.loss_scale_n(p.batch.target_count(cfg)));
    resize(&mut s.g, n * o);
    match &p.batch.targets {
        Targets::Classes(y) => softmax_ce_backward(&act.out, y, o, scale, &mut s.g),
        Targets::Values(y) => mse_backward(cfg.head, &act.out, y, o, scale, &mut s.g),
    }
    zero_invalid(&mut s.g, o, &act.valid);
    let g = &s.g;
    let rows = act.head_input(cfg, b, t); // (N, H·dirs)
    let layout = p.layout;
    gemm_with(
        p.kernel,
        o,
        w,
        n,
        g,
        Op::T,
        rows,
        Op::N,
        F::ZERO,
        &mut dw[layout.range(layout.head_w)],
    );
    if let Some(bi) = layout.head_b {
        add_col_sums(g, o, &mut dw[layout.range(bi)]);
    }

    // dy (N, H·dirs) = g · W_ho, then to the states the rows came from
    let w_ho = p.w(layout.head_w); // (O, H·dirs)
    let m2o = cfg.seq == SeqShape::ManyToOne;
    if !cfg.bidirectional {
        let dh = &mut s.dh[0];
        resize(dh, t * bh);
        let at = if m2o { (t - 1) * bh } else { 0 }; // many-to-one: h_T only
        dh[..at].fill(F::ZERO);
        gemm_with(p.kernel, n, hd, o, g, Op::N, w_ho, Op::N, F::ZERO, &mut dh[at..]);
        return;
    }
    resize(&mut s.dy, n * w);
    gemm_with(p.kernel, n, w, o, g, Op::N, w_ho, Op::N, F::ZERO, &mut s.dy);
    if !m2o {
        split_dirs(&s.dy, hd, &mut s.dh);
        return;
    }
    // many-to-one rows are [h_T ; hr_1]: time T forward, time 1 in reverse
    for (d, dh) in s.dh.iter_mut().enumerate() {
        resize(dh, t * bh);
        dh.fill(F::ZERO);
        let time = match Dir::of(d) {
            Dir::Forward => t,
            Dir::Reverse => 1,
        };
        let at = time - 1;
        for (seq, row) in s.dy.chunks_exact(w).enumerate() {
            let dst = at * bh + seq * hd;
            dh[dst..dst + hd].copy_from_slice(&row[d * hd..(d + 1) * hd]);
        }
    }
}

/// The sweep of direction d of layer l, its weight gradients, its state gradient, and its
/// share of the gradient with respect to the layer's input (into `d_in`).
fn direction_backward<F: Real>(p: &Pass<F>, l: usize, d: usize, s: &mut Scratch<F>, dw: &mut [F], dh0: &mut [F]) {
    let cfg = p.cfg;
    let (b, t, hd) = (p.batch.batch, p.batch.steps, cfg.hidden);
    let (bh, dir, row) = (b * hd, Dir::of(d), l * cfg.dirs() + d);
    let li = p.layout.layers[l][d];
    let hs = &p.act.h[row]; // (T+1, B, H)
    let w_hh = p.w(li.w_hh); // (H, H)
    let Scratch {
        dh,
        d_in,
        first,
        carry,
        packed,
        ..
    } = s;
    let dh = &mut dh[d]; // (T, B, H)

    // Reverse sweep, in place: dh becomes dz.
    if let Some(lens) = p.lens {
        resize(carry, bh);
        carry.fill(F::ZERO);
        sweep::fold_padding(dh, b, hd, dir, lens, carry);
    }
    let rec = Recurrent::new(p.kernel, w_hh, hd, Side::Backward, packed);
    sweep::backward(&rec, cfg.activation, hs, dh, b, hd, dir, p.lens);
    let dz = &dh[..];

    // dW_hh (H, H) = dz^T (H, T·B) · the states each step read (T·B, H)
    let prev = &hs[dir.prev_steps(t, bh)];
    gemm_with(
        p.kernel,
        hd,
        hd,
        t * b,
        dz,
        Op::T,
        prev,
        Op::N,
        F::ZERO,
        &mut dw[p.layout.range(li.w_hh)],
    );
    if let (Some(bi), Some(bh2)) = (li.b_ih, li.b_hh) {
        let (db_ih, db_hh) = (p.layout.range(bi), p.layout.range(bh2));
        add_col_sums(dz, hd, &mut dw[db_ih.clone()]);
        dw.copy_within(db_ih, db_hh.start);
    }
    if p.want.dh0 {
        // dh0 = W_hh^T dz at the step this direction computed first
        sweep::first_steps(dz, b, hd, dir, p.lens, first);
        let dst = &mut dh0[row * bh..(row + 1) * bh];
        gemm_with(p.kernel, b, hd, hd, first, Op::N, w_hh, Op::N, F::ZERO, dst);
        if p.lens.is_some() && dir == Dir::Reverse {
            for (a, &c) in dst.iter_mut().zip(carry.iter()) {
                *a += c;
            }
        }
    }

    // dW_ih (H, in) = dz^T · x, and d_in (T, B, in) += dz · W_ih
    let w_ih = p.w(li.w_ih);
    let inw = cfg.in_width(l);
    let beta = if d == 0 { F::ZERO } else { F::ONE };
    let dw_ih = &mut dw[p.layout.range(li.w_ih)];
    if l > 0 {
        let x = layer_out(&p.act.h, &p.act.y, l - 1, bh); // (T, B, in)
        gemm_with(p.kernel, hd, inw, t * b, dz, Op::T, x, Op::N, F::ZERO, dw_ih);
        resize(d_in, t * b * inw);
        gemm_with(p.kernel, t * b, inw, hd, dz, Op::N, w_ih, Op::N, beta, d_in);
        return;
    }
    let t_in = cfg.input_steps(t);
    let dz_in = &dz[..t_in * bh]; // steps that carry an input
    if p.want.dx || p.layout.embed.is_some() {
        resize(d_in, t_in * b * inw); // (T_in, B, in_0)
        gemm_with(p.kernel, t_in * b, inw, hd, dz_in, Op::N, w_ih, Op::N, beta, d_in);
    }
    match (&p.batch.inputs, p.layout.embed) {
        (Inputs::Dense(x), _) => gemm_with(p.kernel, hd, inw, t_in * b, dz_in, Op::T, x, Op::N, F::ZERO, dw_ih),
        (Inputs::Tokens(tok), None) => {
            // Scatter-add of dz rows into the columns W_ih[:, tok], in (t, b) order.
            for (row, &id) in dz_in.chunks_exact(hd).zip(tok) {
                for (j, &v) in row.iter().enumerate() {
                    dw_ih[j * inw + id as usize] += v;
                }
            }
        }
        (Inputs::Tokens(_), Some(_)) => {
            let xe = &p.act.x_embed; // (T_in, B, E)
            gemm_with(p.kernel, hd, inw, t_in * b, dz_in, Op::T, xe, Op::N, F::ZERO, dw_ih);
        }
    }
}

/// The gradient with respect to layer l's input becomes the gradient reaching the states of
/// layer l-1 (through its dropout mask), split by direction.
fn hand_down<F: Real>(p: &Pass<F>, l: usize, s: &mut Scratch<F>) {
    let mask = &p.act.mask[l - 1];
    if !mask.is_empty() {
        for (v, &m) in s.d_in.iter_mut().zip(mask) {
            *v *= m;
        }
    }
    if p.cfg.bidirectional {
        split_dirs(&s.d_in, p.cfg.hidden, &mut s.dh);
    } else {
        std::mem::swap(&mut s.dh[0], &mut s.d_in);
    }
}

/// Layer 0: the embedding table's gradient (a scatter-add of d_in rows), and dx on request.
fn layer0_inputs<F: Real>(p: &Pass<F>, s: &Scratch<F>, grads: &mut Grads<F>) {
    let inw = p.cfg.in_width(0);
    if let (Inputs::Tokens(tok), Some(e_idx)) = (&p.batch.inputs, p.layout.embed) {
        let de = p.layout.range(e_idx);
        for (row, &id) in s.d_in.chunks_exact(inw).zip(tok) {
            let dst = &mut grads.params[de.start + id as usize * inw..de.start + (id as usize + 1) * inw];
            for (a, &v) in dst.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
    grads.dx = match grads.dx.take() {
        Some(mut v) if p.want.dx => {
            v.clone_from(&s.d_in);
            Some(v)
        }
        _ if p.want.dx => Some(s.d_in.clone()),
        _ => None,
    };
}
