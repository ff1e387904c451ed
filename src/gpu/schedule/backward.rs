//! Backward (SPEC §2): the head's gradients, then per layer from the top the reverse sweep
//! (one fused step dispatch per t) and every weight gradient as one product over all (t, b)
//! pairs, the bias gradients riding along as row sums.

use super::Sched;
use crate::config::{Input, SeqShape};
use crate::engine::Want;
use crate::error::Result;
use crate::gpu::kernels::{self, act_code, at, mat, Acc};
use crate::gpu::program::Op;
use crate::gpu::workspace::Chunk;

impl Sched<'_> {
    /// BPTT of one chunk and every weight gradient into the gradient buffer, added to it
    /// when `acc` (a later chunk of a split batch).
    pub(super) fn backward(&self, want: Want, ch: Chunk, acc: bool) -> Result<Vec<Op>> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay) = (m.cfg, m.layout);
        let (b, t, hd, o) = (ch.b, sh.t, cfg.hidden, cfg.output);
        let (t_in, n, bh) = (cfg.input_steps(t), cfg.target_steps(t) * b, b * hd);
        let acc = Acc::add_if(acc);
        let mut ops = Vec::new();
        let g = mat(&sh.g, 0, n, o);
        let top = mat(&sh.hs[cfg.layers - 1], self.head_rows_off(b), n, hd);

        // dW_ho (O, H) = g^T · rows; db_o = column sums of g (the row sums of g^T) beside it.
        let hb = self.off(lay.head_b.expect("head bias"));
        ops.push(self.mm_row_sums(self.grad(lay.head_w), g.t(), top, acc, (hb, hb))?);
        // dh of the top layer (N, H) = g · W_ho; many-to-one has it at the last step only.
        let dh_head = if cfg.seq == SeqShape::ManyToOne {
            ops.push(Op::Clear {
                buf: sh.dh.clone(),
                off: 0,
                len: t * bh,
            });
            (t - 1) * bh
        } else {
            0
        };
        ops.push(self.mm(mat(&sh.dh, dh_head, n, hd), g, self.weight(lay.head_w), Acc::Set)?);

        // dz over all steps (T·B, H), and its first T_in steps (T_in·B, H)
        let dz = mat(&sh.dz, 0, t * b, hd);
        let dz_in = mat(&sh.dz, 0, t_in * b, hd);
        for l in (0..cfg.layers).rev() {
            let li = lay.layers[l][0];
            let h = &sh.hs[l];
            let inw = cfg.in_width(l);
            for s in (1..=t).rev() {
                ops.push(Op::Dispatch(kernels::rnn_step_backward(
                    self.k.step_backward,
                    b,
                    hd,
                    at(m.params, self.off(li.w_hh)),
                    at(&sh.dh, (s - 1) * bh),
                    at(h, s * bh),
                    at(&sh.dz, (s - 1) * bh),
                    (s < t).then_some(s * bh),
                    act_code(cfg.activation),
                )?));
            }
            // dW_hh (H, H) = dz^T · h_{t-1} (T·B, H); both biases get Σ dz beside it.
            let h_prev = mat(h, 0, t * b, hd);
            let rs = (self.off(li.b_ih.expect("bias")), self.off(li.b_hh.expect("bias")));
            ops.push(self.mm_row_sums(self.grad(li.w_hh), dz.t(), h_prev, acc, rs)?);
            if want.dh0 {
                // dh0 (B, H) = dz_1 · W_hh
                let dz1 = mat(&sh.dz, 0, b, hd);
                ops.push(self.mm(mat(&sh.dh0, l * bh, b, hd), dz1, self.weight(li.w_hh), Acc::Set)?);
            }
            if l > 0 {
                let below = mat(&sh.hs[l - 1], bh, t * b, inw);
                ops.push(self.mm(self.grad(li.w_ih), dz.t(), below, acc)?);
                // dh of the layer below (T·B, H) = dz · W_ih
                ops.push(self.mm(mat(&sh.dh, 0, t * b, inw), dz, self.weight(li.w_ih), Acc::Set)?);
                continue;
            }
            if want.dx || lay.embed.is_some() {
                // dx (T_in·B, in_0) = dz · W_ih
                let dx = mat(&sh.dx, 0, t_in * b, inw);
                ops.push(self.mm(dx, dz_in, self.weight(li.w_ih), Acc::Set)?);
            }
            match (cfg.input, lay.embed) {
                (Input::Dense { .. }, _) => {
                    let x = mat(&sh.x, 0, t_in * b, inw);
                    ops.push(self.mm(self.grad(li.w_ih), dz_in.t(), x, acc)?);
                }
                (Input::Tokens { vocab, .. }, None) => {
                    // dW_ih[j, tok] += dz[(t, b), j]: row j of W_ih has stride V
                    ops.push(Op::Dispatch(kernels::token_scatter(
                        t_in * b,
                        hd,
                        vocab,
                        at(&sh.dz, 0),
                        &sh.x,
                        at(m.grads, self.off(li.w_ih)),
                        (1, vocab),
                        acc == Acc::Add,
                    )?));
                }
                (Input::Tokens { vocab, .. }, Some(e_idx)) => {
                    let xe = mat(&sh.xe, 0, t_in * b, inw);
                    ops.push(self.mm(self.grad(li.w_ih), dz_in.t(), xe, acc)?);
                    // dE[tok, e] += dxe[(t, b), e]
                    ops.push(Op::Dispatch(kernels::token_scatter(
                        t_in * b,
                        inw,
                        vocab,
                        at(&sh.dx, 0),
                        &sh.x,
                        at(m.grads, self.off(e_idx)),
                        (inw, 1),
                        acc == Acc::Add,
                    )?));
                }
            }
        }
        Ok(ops)
    }
}
