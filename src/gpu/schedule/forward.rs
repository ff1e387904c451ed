//! Forward: per layer the batched input projection (all steps in one product), then one
//! fused step dispatch per t; then the head product over all (t, b) rows, softmax or MSE,
//! and the loss sum.

use super::Sched;
use crate::config::{Head, Input};
use crate::error::Result;
use crate::gpu::kernels::{self, act_code, at, mat, Acc, HeadBufs, Pre, StepWeights};
use crate::gpu::program::Op;
use crate::gpu::workspace::Chunk;

impl Sched<'_> {
    /// Forward pass, head and loss of one chunk (loss into scalars[LOSS], added to it when
    /// `acc`: a later chunk of a split batch; left to `update` when `defer_loss`).
    pub(super) fn forward(&self, ch: Chunk, acc: bool, defer_loss: bool) -> Result<Vec<Op>> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay, p) = (m.cfg, m.layout, m.params);
        let (b, t, hd, o) = (ch.b, sh.t, cfg.hidden, cfg.output);
        let (t_in, n, bh) = (cfg.input_steps(t), cfg.target_steps(t) * b, b * hd);
        let mut ops = Vec::new();
        for (l, li) in lay.layers.iter().map(|d| &d[0]).enumerate() {
            let h = &sh.hs[l];
            // Input projection of every step at once into rows 1..=T_in (the pre-activations).
            if l > 0 {
                // (T·B, H) = h_below (T·B, H) · W_ih^T
                let below = mat(&sh.hs[l - 1], bh, t * b, hd);
                ops.push(self.mm(mat(h, bh, t * b, hd), below, self.weight(li.w_ih).t(), Acc::Set)?);
            } else {
                match (cfg.input, lay.embed) {
                    (Input::Dense { size }, _) => {
                        let x = mat(&sh.x, 0, t_in * b, size);
                        ops.push(self.mm(mat(h, bh, t_in * b, hd), x, self.weight(li.w_ih).t(), Acc::Set)?);
                    }
                    // one-hot · W_ih^T is the column W_ih[:, tok]: each step kernel gathers it
                    (Input::Tokens { .. }, None) => {}
                    (_, Some(e_idx)) => {
                        let e = cfg.in_width(0);
                        ops.push(Op::Dispatch(kernels::embed_gather(
                            t_in * b,
                            e,
                            at(p, self.off(e_idx)),
                            (e, 1),
                            &sh.x,
                            at(&sh.xe, 0),
                        )?));
                        let xe = mat(&sh.xe, 0, t_in * b, e);
                        ops.push(self.mm(mat(h, bh, t_in * b, hd), xe, self.weight(li.w_ih).t(), Acc::Set)?);
                    }
                }
            }
            let w = StepWeights {
                w: p,
                w_hh: self.off(li.w_hh),
                b_ih: self.off(li.b_ih.expect("bias")),
                b_hh: self.off(li.b_hh.expect("bias")),
            };
            for s in 1..=t {
                let pre = match (cfg.input, lay.embed) {
                    _ if l == 0 && s > t_in => Pre::None,
                    (Input::Tokens { vocab, .. }, None) if l == 0 => Pre::Tokens {
                        tok: at(&sh.x, (s - 1) * b),
                        vocab,
                        wih_off: self.off(li.w_ih),
                    },
                    _ => Pre::InPlace,
                };
                let rows = (s * bh, (s - 1) * bh);
                let act = act_code(cfg.activation);
                let k = self.k.step_forward;
                ops.push(Op::Dispatch(kernels::rnn_step_forward(k, b, hd, w, h, rows, pre, act)?));
            }
        }
        // logits (N, O) = rows of the top layer (N, H) · W_ho^T
        let top = mat(&sh.hs[cfg.layers - 1], self.head_rows_off(b), n, hd);
        ops.push(self.mm(mat(&sh.logits, 0, n, o), top, self.weight(lay.head_w).t(), Acc::Set)?);
        let head_b = at(p, self.off(lay.head_b.expect("head bias")));
        let io = HeadBufs {
            logits: &sh.logits,
            y: &sh.y,
            out: &sh.out,
            g: &sh.g,
            loss_rows: &sh.loss_rows,
        };
        // the mean runs over the whole batch, not the chunk
        let scale = cfg.loss_scale(sh.b, t);
        ops.push(Op::Dispatch(match cfg.head {
            Head::Softmax => kernels::softmax_ce(n, o, head_b, scale as f32, io)?,
            Head::Linear | Head::Sigmoid => {
                let gscale = (scale as f32) * (cfg.mse_factors().1 as f32);
                kernels::mse(n, o, head_b, cfg.head == Head::Sigmoid, gscale, io)?
            }
        }));
        if !defer_loss {
            let l = self.loss_sum(ch, acc);
            ops.push(Op::Dispatch(kernels::reduce_sum(
                l.n,
                l.src,
                l.square,
                l.factor,
                l.dst,
                l.accumulate,
            )?));
        }
        Ok(ops)
    }
}
