//! Forward: per layer and direction the batched input projection (all steps in one
//! product, or layer 0's token tables: `table`), then one fused step dispatch per t; the
//! layer's output where it needs a buffer of its own (both directions side by side,
//! dropout); then the head product over all (t, b) rows, softmax or MSE, and the loss sum.

use super::Sched;
use crate::config::{Head, Input, SeqShape};
use crate::error::Result;
use crate::gpu::kernels::{
    self, act_code, at, mat, Acc, HeadBufs, HeadRows, MaskAt, Pre, Recurrence, SeqPre, StepAt, StepWeights,
};
use crate::gpu::program::Op;
use crate::gpu::workspace::Chunk;

impl Sched<'_> {
    /// Forward pass, head and loss of one chunk (loss into scalars[LOSS], added to it when
    /// `acc`: a later chunk of a split batch; left to `update` when `defer_loss`).
    pub(super) fn forward(&self, ch: Chunk, acc: bool, defer_loss: bool) -> Result<Vec<Op>> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay, p) = (m.cfg, m.layout, m.params);
        let (b, o) = (ch.b, cfg.output);
        let n = cfg.target_steps(sh.t) * b;
        let mut ops = Vec::new();
        for l in 0..cfg.layers {
            for d in 0..cfg.dirs() {
                self.input_projection(&mut ops, ch, l, d)?;
                self.recurrence(&mut ops, ch, l, d)?;
            }
            self.layer_output(&mut ops, ch, l)?;
        }
        // logits (N, O) = the top layer's output rows (N, H·dirs) · W_ho^T
        let top = self.output_rows(cfg.layers - 1, b);
        ops.push(self.mm(mat(&sh.logits, 0, n, o), top, self.weight(lay.head_w).t(), Acc::Set)?);
        let head_b = lay.head_b.map(|i| at(p, self.off(i)));
        let io = HeadBufs {
            logits: &sh.logits,
            y: &sh.y,
            out: &sh.out,
            g: &sh.g,
            loss_rows: &sh.loss_rows,
            info: &sh.info,
        };
        let rows = HeadRows {
            rows: n,
            batch: b,
            b0: ch.b0,
            masked: cfg.seq != SeqShape::ManyToOne,
        };
        ops.push(Op::Dispatch(match cfg.head {
            Head::Softmax => kernels::softmax_ce(rows, o, head_b, io)?,
            Head::Linear | Head::Sigmoid => {
                let gfactor = cfg.mse_factors().1 as f32;
                kernels::mse(rows, o, head_b, cfg.head == Head::Sigmoid, gfactor, io)?
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

    /// The input projection of every step of direction `d` of layer `l` at once, into the
    /// rows of its steps 1..=T_in (the pre-activations the step kernels read in place).
    fn input_projection(&self, ops: &mut Vec<Op>, ch: Chunk, l: usize, d: usize) -> Result<()> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay, p) = (m.cfg, m.layout, m.params);
        let (b, t, hd) = (ch.b, sh.t, cfg.hidden);
        let t_in = cfg.input_steps(t);
        let li = lay.layers[l][d];
        let pre = |steps: usize| mat(&sh.hs[l][d], sh.state_row(d, 1) * b * hd, steps * b, hd);
        if l > 0 {
            // (T·B, H) = y_below (T·B, H·dirs) · W_ih^T
            let below = self.output_rows(l - 1, b);
            ops.push(self.mm(pre(t), below, self.weight(li.w_ih).t(), Acc::Set)?);
            return Ok(());
        }
        match (cfg.input, lay.embed, self.table) {
            (Input::Dense { size }, ..) => {
                let x = mat(&sh.x, 0, t_in * b, size);
                ops.push(self.mm(pre(t_in), x, self.weight(li.w_ih).t(), Acc::Set)?);
            }
            // one-hot · W_ih^T is the column W_ih[:, tok]: each step kernel gathers it
            (Input::Tokens { .. }, None, _) => {}
            // the tables of both directions at once, before the first direction's steps
            (_, Some(e_idx), Some(tab)) if d == 0 => self.token_tables(ops, ch, tab, e_idx)?,
            (_, Some(_), Some(_)) => {}
            (_, Some(e_idx), None) => {
                let e = cfg.in_width(0);
                // the embedded inputs serve both directions
                if d == 0 {
                    ops.push(Op::Dispatch(kernels::embed_gather(
                        t_in * b,
                        e,
                        at(p, self.off(e_idx)),
                        (e, 1),
                        &sh.x,
                        at(&sh.xe, 0),
                    )?));
                }
                let xe = mat(&sh.xe, 0, t_in * b, e);
                ops.push(self.mm(pre(t_in), xe, self.weight(li.w_ih).t(), Acc::Set)?);
            }
        }
        Ok(())
    }

    /// The recurrence of direction `d` of layer `l`: one fused step per t, forward in time
    /// for d = 0, backward for d = 1.
    fn recurrence(&self, ops: &mut Vec<Op>, ch: Chunk, l: usize, d: usize) -> Result<()> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay) = (m.cfg, m.layout);
        let (b, t, hd) = (ch.b, sh.t, cfg.hidden);
        let (t_in, bh) = (cfg.input_steps(t), b * hd);
        let li = lay.layers[l][d];
        let w = StepWeights {
            w: m.params,
            w_hh: self.off(li.w_hh),
            bias: li.b_ih.zip(li.b_hh).map(|(i, h)| (self.off(i), self.off(h))),
        };
        let h = &sh.hs[l][d];
        if self.seq_span(ch, d).plan.kind != Recurrence::Step {
            return self.recurrence_seq(ops, ch, l, d, w);
        }
        for s in self.sweep_order(d, false) {
            let pre = match l {
                0 if s > t_in => Pre::None,
                0 => self.token_pre(d, at(&sh.x, (s - 1) * b)).unwrap_or(Pre::InPlace),
                _ => Pre::InPlace,
            };
            // the previous state: h_{t-1}, or hr_{t+1} for the reverse direction
            let prev = if d == 0 { s - 1 } else { s + 1 };
            let rows = (sh.state_row(d, s) * bh, sh.state_row(d, prev) * bh);
            let step = StepAt {
                info: &sh.info,
                t: s,
                b0: ch.b0,
            };
            let (k, act) = (self.k.step.forward(), act_code(cfg.activation));
            ops.push(Op::Dispatch(kernels::rnn_step_forward(
                k, b, hd, w, h, rows, pre, act, step,
            )?));
        }
        Ok(())
    }

    /// The recurrence of direction `d` of layer `l` in one dispatch (`Recurrence::Seq`):
    /// the same steps as the per-step chain, with the same inputs.
    fn recurrence_seq(&self, ops: &mut Vec<Op>, ch: Chunk, l: usize, d: usize, w: StepWeights) -> Result<()> {
        let (m, sh) = (self.m, self.sh);
        let cfg = m.cfg;
        let t = sh.t;
        let pre = match l {
            0 => self.token_pre(d, at(&sh.x, 0)).unwrap_or(Pre::InPlace),
            _ => Pre::InPlace,
        };
        let pre = SeqPre {
            pre,
            steps: if l == 0 { cfg.input_steps(t) } else { t },
        };
        let span = self.seq_span(ch, d);
        let act = act_code(cfg.activation);
        ops.push(Op::Dispatch(kernels::rnn_seq_forward(span, w, &sh.hs[l][d], pre, act)?));
        Ok(())
    }

    /// Layer `l`'s output buffer (`Shape::ys`), where it has one: both directions' states
    /// side by side, times the dropout mask in training. The top layer's many-to-one output
    /// is [h_T ; hr_1], the two final states.
    fn layer_output(&self, ops: &mut Vec<Op>, ch: Chunk, l: usize) -> Result<()> {
        let (cfg, sh) = (self.m.cfg, self.sh);
        let Some(y) = &sh.ys[l] else {
            return Ok(());
        };
        let (b, t, hd) = (ch.b, sh.t, cfg.hidden);
        let top = l + 1 == cfg.layers;
        let (steps, fwd_row) = match cfg.seq {
            SeqShape::ManyToOne if top => (1, t),
            _ => (t, 1),
        };
        let h = &sh.hs[l];
        let fwd = at(&h[0], fwd_row * b * hd);
        let rev = at(&h[h.len() - 1], sh.state_row(h.len() - 1, 1) * b * hd);
        let dims = (steps, b, hd, cfg.dirs());
        let mask = self.dropout_at(l, ch);
        ops.push(Op::Dispatch(kernels::layer_output(
            &sh.info,
            (fwd, rev),
            at(y, 0),
            dims,
            mask,
        )?));
        Ok(())
    }

    /// Where layer `l`'s dropout mask is drawn, if this program applies one: training, on
    /// the output of every layer but the top.
    pub(super) fn dropout_at(&self, l: usize, ch: Chunk) -> Option<MaskAt> {
        let cfg = self.m.cfg;
        (self.train && cfg.dropout.is_active() && l + 1 < cfg.layers).then_some(MaskAt {
            layer: l,
            t0: 1,
            b0: ch.b0,
        })
    }
}
