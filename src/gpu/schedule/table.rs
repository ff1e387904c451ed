//! The token-table path of an embedding at layer 0. With token ids the input projection
//! W_ih · E[tok] is row tok of the (V, H) table E · W_ih^T, so the forward pass computes
//! one V×E×H product per direction and the step kernels gather from it, and the backward
//! pass sums dz per token into S (V, H) and takes dW_ih = S^T · E and dE = Σ_d S_d · W_ih,d:
//! three V×E×H products where the embedded inputs cost three T_in·B×E×H ones.

use super::Sched;
use crate::config::Input;
use crate::error::{Error, Result};
use crate::gpu::kernels::{self, at, mat, Acc, At, Mat, Pre};
use crate::gpu::program::Op;
use crate::gpu::workspace::Chunk;

/// Where the token tables live.
#[derive(Clone, Copy)]
pub(super) struct Table<'a> {
    /// element offset of the (dirs, V, H) tables in the parameter buffer, where the step
    /// kernels read their weights
    pub off: usize,
    /// (dirs, V, H): the tables before their copy into the parameters, then the sums S
    pub scratch: &'a wgpu::Buffer,
}

impl<'a> Sched<'a> {
    fn vocab(&self) -> Result<usize> {
        match self.m.cfg.input {
            Input::Tokens { vocab, .. } => Ok(vocab),
            Input::Dense { .. } => Err(Error::gpu("token tables without tokens", "internal error")),
        }
    }

    /// Direction `d`'s (V, H) block of the scratch buffer.
    fn scratch_of(&self, tab: Table<'a>, d: usize) -> Result<Mat<'a>> {
        let (v, hd) = (self.vocab()?, self.m.cfg.hidden);
        Ok(mat(tab.scratch, d * v * hd, v, hd))
    }

    /// Every direction's table E (V, E) · W_ih^T (E, H) into the parameters' tail. The
    /// weights do not change within a call, so a split batch computes them for its first
    /// chunk only. A product cannot write the buffer it reads, hence the scratch and a copy.
    pub(super) fn token_tables(&self, ops: &mut Vec<Op>, ch: Chunk, tab: Table<'a>, e_idx: usize) -> Result<()> {
        if ch.b0 > 0 {
            return Ok(());
        }
        let lay = self.m.layout;
        for (d, li) in lay.layers[0].iter().enumerate() {
            let w_ih = self.weight(li.w_ih).t();
            ops.push(self.mm(self.scratch_of(tab, d)?, self.weight(e_idx), w_ih, Acc::Set)?);
        }
        ops.push(Op::Copy {
            src: tab.scratch.clone(),
            src_off: 0,
            dst: self.m.params.clone(),
            dst_off: tab.off,
            len: self.m.cfg.dirs() * self.vocab()? * self.m.cfg.hidden,
        });
        Ok(())
    }

    /// Layer 0's input at the steps of `tok` (token ids) as the step kernels gather it: a
    /// column of W_ih for one-hot tokens, a row of direction `d`'s table on the token-table
    /// path; None where the input projection left it in place.
    pub(super) fn token_pre(&self, d: usize, tok: At<'a>) -> Option<Pre<'a>> {
        let (cfg, hd) = (self.m.cfg, self.m.cfg.hidden);
        let Input::Tokens { vocab, embed } = cfg.input else {
            return None;
        };
        let (table, strides) = match (embed, self.table) {
            (None, _) => (self.off(self.m.layout.layers[0][d].w_ih), (vocab, 1)),
            (Some(_), Some(tab)) => (tab.off + d * vocab * hd, (1, hd)),
            (Some(_), None) => return None,
        };
        Some(Pre::Tokens {
            tok,
            vocab,
            table,
            strides,
        })
    }

    /// Direction `d`'s S (V, H), the sum of its dz over each token's (t, b) rows (in row
    /// order: deterministic), then one pair: dW_ih (H, E) = S^T · E (V, E) and its share of
    /// dE (V, E) = Σ_d S_d (V, H) · W_ih,d (H, E) (directions in order).
    pub(super) fn table_weight_grad(
        &self,
        ops: &mut Vec<Op>,
        ch: Chunk,
        d: usize,
        tab: Table<'a>,
        acc: Acc,
    ) -> Result<()> {
        let (m, sh) = (self.m, self.sh);
        let (cfg, lay) = (m.cfg, m.layout);
        let (b, hd, v) = (ch.b, cfg.hidden, self.vocab()?);
        let e_idx = lay
            .embed
            .ok_or_else(|| Error::gpu("token tables without an embedding", "internal error"))?;
        let s = self.scratch_of(tab, d)?;
        ops.push(Op::Dispatch(kernels::token_scatter(
            cfg.input_steps(sh.t) * b,
            hd,
            v,
            at(&sh.dz, d * sh.t * b * hd),
            &sh.x,
            s.at,
            (hd, 1),
            false,
        )?));
        let w_ih = lay.layers[0][d].w_ih;
        let dw = self.product(self.grad(w_ih), s.t(), self.weight(e_idx), acc, None)?;
        let add = if d > 0 { Acc::Add } else { acc };
        let de = self.product(self.grad(e_idx), s, self.weight(w_ih), add, None)?;
        ops.push(Self::mm_pair(dw, de));
        Ok(())
    }
}
