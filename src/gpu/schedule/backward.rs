//! Backward (SPEC §2): the head's gradients, then per layer from the top the reverse sweep
//! of each direction (one fused step dispatch per t) and every weight gradient as one
//! product over all (t, b) pairs, the bias gradients riding along as row sums.

use super::Sched;
use crate::config::{Input, SeqShape};
use crate::engine::Want;
use crate::error::Result;
use crate::gpu::kernels::{self, act_code, at, mat, Acc, Dispatch, Mat, Recurrence, SeqGrad, StepAt, StepGrad};
use crate::gpu::program::Op;
use crate::gpu::workspace::Chunk;

impl Sched<'_> {
    /// BPTT of one chunk and every weight gradient into the gradient buffer, added to it
    /// when `acc` (a later chunk of a split batch).
    pub(super) fn backward(&self, want: Want, ch: Chunk, acc: bool) -> Result<Vec<Op>> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay) = (m.cfg, m.layout);
        let (b, t, o, w) = (ch.b, sh.t, cfg.output, cfg.out_width());
        let n = cfg.target_steps(t) * b;
        let acc = Acc::add_if(acc);
        let mut ops = Vec::new();
        let g = mat(&sh.g, 0, n, o);
        let top = self.output_rows(cfg.layers - 1, b);

        // dW_ho (O, H·dirs) = g^T · rows; db_o = column sums of g (the row sums of g^T) beside it.
        ops.push(match lay.head_b {
            Some(hb) => self.mm_row_sums(self.grad(lay.head_w), g.t(), top, acc, (self.off(hb), self.off(hb)))?,
            None => self.mm(self.grad(lay.head_w), g.t(), top, acc)?,
        });
        // dy of the top layer (N, H·dirs) = g · W_ho; many-to-one has it in dh's extra row T
        // only, where the sweeps read it at each direction's last step
        let dh_head = if cfg.seq == SeqShape::ManyToOne {
            ops.push(Op::Clear {
                buf: sh.dh.clone(),
                off: 0,
                len: t * b * w,
            });
            t * b * w
        } else {
            0
        };
        ops.push(self.mm(mat(&sh.dh, dh_head, n, w), g, self.weight(lay.head_w), Acc::Set)?);

        for l in (0..cfg.layers).rev() {
            if let Some(mask) = self.dropout_at(l, ch) {
                let dy = at(&sh.dh, 0);
                ops.push(Op::Dispatch(kernels::dropout_grad(&sh.info, dy, (t, b, w), mask)?));
            }
            for d in 0..cfg.dirs() {
                self.sweep(&mut ops, ch, l, d, want)?;
                self.weight_grads(&mut ops, ch, l, d, want, acc)?;
            }
            self.input_grads(&mut ops, ch, l, want, acc)?;
        }
        Ok(ops)
    }

    /// The first `steps` steps of direction `d`'s dz (steps·B, H) in the dz buffer.
    fn dz_of(&self, ch: Chunk, d: usize, steps: usize) -> Mat<'_> {
        let bh = ch.b * self.m.cfg.hidden;
        mat(&self.sh.dz, d * self.sh.t * bh, steps * ch.b, self.m.cfg.hidden)
    }

    /// Where the reverse direction's dz at each sequence's length goes (B, H), past both
    /// directions' dz: the step it computed first, whose dz gives its dh0.
    fn rev_first_off(&self, ch: Chunk) -> usize {
        2 * self.sh.t * ch.b * self.m.cfg.hidden
    }

    /// The reverse sweep of direction `d` of layer `l`: one fused step per t, from the last
    /// step the direction computed to its first.
    fn sweep(&self, ops: &mut Vec<Op>, ch: Chunk, l: usize, d: usize, want: Want) -> Result<()> {
        let (cfg, sh) = (self.m.cfg, self.sh);
        let (b, t, hd, w) = (ch.b, sh.t, cfg.hidden, cfg.out_width());
        let (bh, bw) = (b * hd, b * w);
        let dz0 = d * t * bh;
        // many-to-one: the head's gradient waits in dh's extra row T for each direction's
        // last step (T forward, 1 reverse)
        let head_row = cfg.seq == SeqShape::ManyToOne && l + 1 == cfg.layers;
        let w_hh = at(self.m.params, self.off(self.m.layout.layers[l][d].w_hh));
        let first_off = (d == 1 && want.dh0).then(|| self.rev_first_off(ch));
        let span = self.seq_span(ch, d);
        if span.plan.kind != Recurrence::Step {
            let grad = SeqGrad {
                w_hh,
                dh: at(&sh.dh, d * hd),
                dh_stride: w,
                head_row,
                h: &sh.hs[l][d],
                dz: at(&sh.dz, dz0),
                first_off,
            };
            let act = act_code(cfg.activation);
            ops.push(Op::Dispatch(kernels::rnn_seq_backward(span, grad, act)?));
            return Ok(());
        }
        for s in self.sweep_order(d, true) {
            let last = if d == 0 { s == t } else { s == 1 };
            let dh_row = if head_row && last { t } else { s - 1 };
            let (next, carry) = if d == 0 {
                ((s < t).then(|| dz0 + s * bh), (s > 1).then(|| (s - 2) * bw))
            } else {
                ((s > 1).then(|| dz0 + (s - 2) * bh), None)
            };
            let grad = StepGrad {
                w_hh,
                dh: at(&sh.dh, dh_row * bw + d * hd),
                dh_stride: w,
                h: at(&sh.hs[l][d], sh.state_row(d, s) * bh),
                dz: at(&sh.dz, dz0 + (s - 1) * bh),
                next_off: next,
                carry_off: carry,
                first_off,
            };
            let step = StepAt {
                info: &sh.info,
                t: s,
                b0: ch.b0,
            };
            let (k, act) = (self.k.step.backward(), act_code(cfg.activation));
            ops.push(Op::Dispatch(kernels::rnn_step_backward(k, b, hd, grad, act, step)?));
        }
        Ok(())
    }

    /// The weight gradients of direction `d` of layer `l` from its dz, and its dh0.
    fn weight_grads(&self, ops: &mut Vec<Op>, ch: Chunk, l: usize, d: usize, want: Want, acc: Acc) -> Result<()> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay) = (m.cfg, m.layout);
        let (b, t, hd) = (ch.b, sh.t, cfg.hidden);
        let bh = b * hd;
        let li = lay.layers[l][d];
        // dW_hh (H, H) = dz^T · h_prev (T·B, H), the previous states (h_{t-1}, or hr_{t+1});
        // both biases get Σ dz beside it.
        let prev_row = if d == 0 { 0 } else { sh.state_row(d, 2) };
        let h_prev = mat(&sh.hs[l][d], prev_row * bh, t * b, hd);
        let biases = li.b_ih.zip(li.b_hh).map(|(bi, bhh)| (self.off(bi), self.off(bhh)));
        let dw_hh = self.product(self.grad(li.w_hh), self.dz_of(ch, d, t).t(), h_prev, acc, biases)?;
        // dW_ih shares dz^T and the gradient buffer with dW_hh: one pair
        let dw_ih = self.input_weight_grad(ops, ch, l, d, acc)?;
        ops.push(match dw_ih {
            Some(dw_ih) => Self::mm_pair(dw_hh, dw_ih),
            None => Op::Dispatch(dw_hh),
        });
        if want.dh0 {
            // dh0 (B, H) = dz · W_hh at the direction's first step: t = 1, or each
            // sequence's length for the reverse direction
            let first = if d == 0 { 0 } else { self.rev_first_off(ch) };
            let row = l * cfg.dirs() + d;
            let dst = mat(&sh.dh0, row * bh, b, hd);
            ops.push(self.mm(dst, mat(&sh.dz, first, b, hd), self.weight(li.w_hh), Acc::Set)?);
        }
        Ok(())
    }

    /// dW_ih of direction `d` of layer `l`: the product dz^T · input, or None where other ops
    /// (pushed here) compute it from the token ids.
    fn input_weight_grad(
        &self,
        ops: &mut Vec<Op>,
        ch: Chunk,
        l: usize,
        d: usize,
        acc: Acc,
    ) -> Result<Option<Dispatch>> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay) = (m.cfg, m.layout);
        let (b, t, hd) = (ch.b, sh.t, cfg.hidden);
        let t_in = cfg.input_steps(t);
        let (dz_in, dw) = (self.dz_of(ch, d, t_in).t(), self.grad(lay.layers[l][d].w_ih));
        if l > 0 {
            return Ok(Some(self.product(
                dw,
                self.dz_of(ch, d, t).t(),
                self.output_rows(l - 1, b),
                acc,
                None,
            )?));
        }
        let input = match (cfg.input, lay.embed, self.table) {
            (Input::Dense { .. }, ..) => &sh.x,
            (Input::Tokens { vocab, .. }, None, _) => {
                // dW_ih[j, tok] += dz[(t, b), j]: row j of W_ih has stride V
                ops.push(Op::Dispatch(kernels::token_scatter(
                    t_in * b,
                    hd,
                    vocab,
                    at(&sh.dz, d * t * b * hd),
                    &sh.x,
                    at(m.grads, dw.at.off),
                    (1, vocab),
                    acc == Acc::Add,
                )?));
                return Ok(None);
            }
            (Input::Tokens { .. }, Some(_), Some(tab)) => {
                self.table_weight_grad(ops, ch, d, tab, acc)?;
                return Ok(None);
            }
            (Input::Tokens { .. }, Some(_), None) => &sh.xe,
        };
        let x = mat(input, 0, t_in * b, cfg.in_width(0));
        Ok(Some(self.product(dw, dz_in, x, acc, None)?))
    }

    /// The gradient leaving layer `l` downwards, summed over its directions: dh of the
    /// layer below (T·B, H·dirs), or at layer 0 dx (and the embedding's gradient from it).
    fn input_grads(&self, ops: &mut Vec<Op>, ch: Chunk, l: usize, want: Want, acc: Acc) -> Result<()> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay) = (m.cfg, m.layout);
        let (b, t) = (ch.b, sh.t);
        let t_in = cfg.input_steps(t);
        let inw = cfg.in_width(l);
        if l == 0 && self.table.is_some() {
            // dE rode along with dW_ih (`table_weight_grad`)
            return Ok(());
        }
        let (dst, steps) = if l > 0 {
            (mat(&sh.dh, 0, t * b, inw), t)
        } else if want.dx || lay.embed.is_some() {
            (mat(&sh.dx, 0, t_in * b, inw), t_in)
        } else {
            return Ok(());
        };
        // (steps·B, in) = Σ_d dz_d · W_ih[l, d]
        for (d, li) in lay.layers[l].iter().enumerate() {
            let add = Acc::add_if(d > 0);
            ops.push(self.mm(dst, self.dz_of(ch, d, steps), self.weight(li.w_ih), add)?);
        }
        if let (0, Input::Tokens { vocab, .. }, Some(e_idx)) = (l, cfg.input, lay.embed) {
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
        Ok(())
    }
}
