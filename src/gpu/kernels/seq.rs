//! The whole-sequence recurrence (issue 10): one dispatch per layer and direction runs all T
//! steps, forward (rnn_seq_forward.wgsl) and backward (rnn_seq_backward.wgsl), where the
//! per-step chain of `rnn` records T. Both compute the same fma chain per element, so a
//! schedule may record either (`Kernels::recurrence`) and get the same bits.

use super::launch::{dispatch, groups_1d, u, At, Dispatch};
use super::rnn::{Pre, StepWeights};
use super::{params, Kernel};
use crate::config::str_enum;
use crate::error::{Error, Result};

str_enum!(
    /// How a schedule records a layer's recurrence.
    Recurrence("recurrence") {
        /// one fused dispatch per time step (rnn_step_*.wgsl): the per-step chain
        Step => "step",
        /// one dispatch for all T steps (rnn_seq_*.wgsl), the forward product's W_hh streamed
        /// through workgroup tiles with coalesced loads: for real GPUs
        Seq => "seq",
        /// the same with W_hh read straight from storage, as the step kernels read it (no
        /// workgroup memory unless W_hh is resident)
        SeqDirect => "seq-direct",
        /// per layer (`RecurrencePlan::resolved`): `seq` where its re-reads of W_hh stay
        /// small, `step` otherwise; a guessed rule, kept as the hardware default of
        /// `--tune off` (with `--tune quick|full` the tuner measures instead)
        Auto => "auto",
    }
);

/// How a schedule records each layer's recurrence (what the tuner times): the kind
/// and, for the whole-sequence kernels, their sequences per workgroup and how much
/// workgroup memory their W_hh tile uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrencePlan {
    pub kind: Recurrence,
    /// 1..=SEQ_BLOCK_MAX
    pub block: usize,
    /// vec4s, SEQ_TILE_MIN..= the size compiled for the device (`Kernels::seq_tile`)
    pub tile: usize,
}

/// Sequences per workgroup of the whole-sequence kernels: the default, and the most their
/// block layout takes (shaders/common/seq_block.wgsl).
pub const SEQ_BLOCK: usize = 4;
pub const SEQ_BLOCK_MAX: usize = 32;

/// W_hh tile sizes in vec4s: the least the kernels take (a streamed tile of the widest
/// chunk, 65 vec4s per row, needs 8 rows), and the most compiled (64 KiB, the most
/// workgroup storage adapters offer today: W_hh resident up to H = 124).
pub const SEQ_TILE_MIN: usize = 8 * 65;
pub const SEQ_TILE_MAX: usize = 4096;

/// `Auto`'s limit on the floats of W_hh the whole-sequence kernels read per step (every
/// block of sequences reads all of it): 2^22, 16 MiB, a few µs from the cache of a GPU
/// with TB/s of it, about the launch of a step that the whole sequence saves. Workloads A,
/// C, D, E and G fall below it, B and the large-batch one (B = 4096, H = 1024) above. The
/// tuner (`--tune quick|full`) measures both kinds instead; this guess stays as `--tune
/// off`'s fixed choice on hardware.
pub const SEQ_REREAD_MAX: usize = 1 << 22;

/// The environment variable that forces a recurrence on every device: `step`, `seq`,
/// `seq-direct` or `auto`, the last three optionally with `:BW`, the sequences per workgroup.
pub const RECURRENCE_ENV: &str = "WGRNN_RECURRENCE";

/// vec4s of the W_hh tile compiled for a device with `bytes` of workgroup storage (the
/// pipeline constant WT4 of seq_block.wgsl): all of it, up to SEQ_TILE_MAX.
pub fn seq_tile_size(bytes: u32) -> usize {
    (bytes as usize / 16).clamp(1, SEQ_TILE_MAX)
}

impl RecurrencePlan {
    /// WGRNN_RECURRENCE (empty counts as unset), else the device's fixed default (`--tune
    /// off`; the tuner times the alternatives otherwise): the per-step chain on a software
    /// adapter, where it measured faster (a barrier in a shader halves lavapipe's speed),
    /// `Auto` on hardware, where each launch costs 5–30 µs; the whole `tile` compiled.
    pub fn choose(software: bool, tile: usize) -> Result<RecurrencePlan> {
        let default = |kind| RecurrencePlan {
            kind,
            block: SEQ_BLOCK,
            tile,
        };
        match std::env::var(RECURRENCE_ENV).ok().filter(|v| !v.trim().is_empty()) {
            Some(v) => RecurrencePlan::parse(&v, tile),
            // below WebGPU's minimum of workgroup storage the whole-sequence kernels cannot run
            None if software || tile < SEQ_TILE_MIN => Ok(default(Recurrence::Step)),
            None => Ok(default(Recurrence::Auto)),
        }
    }

    /// The plan recorded for a layer of `hidden` units on `batch` sequences (per chunk):
    /// `Auto` resolved to `Seq` or `Step`.
    pub fn resolved(self, batch: usize, hidden: usize) -> RecurrencePlan {
        let kind = match self.kind {
            Recurrence::Auto if batch.div_ceil(self.block).saturating_mul(hidden * hidden) <= SEQ_REREAD_MAX => {
                Recurrence::Seq
            }
            Recurrence::Auto => Recurrence::Step,
            kind => kind,
        };
        RecurrencePlan { kind, ..self }
    }

    /// `name` or `name:BW` (WGRNN_RECURRENCE's syntax), with the whole `tile`.
    pub fn parse(v: &str, tile: usize) -> Result<RecurrencePlan> {
        let bad = || {
            let hint = format!(
                "allowed: {}, all but step optionally :BW with BW in 1..={SEQ_BLOCK_MAX}",
                Recurrence::ALL.join(" | ")
            );
            Error::config(RECURRENCE_ENV, v, hint)
        };
        let (name, block) = match v.trim().split_once(':') {
            Some((name, bw)) => (name, bw.parse().map_err(|_| bad())?),
            None => (v.trim(), SEQ_BLOCK),
        };
        let kind = name.parse().map_err(|_| bad())?;
        RecurrencePlan { kind, block, tile }.check(tile).map_err(|_| bad())
    }

    /// The plan, if the kernels compiled with a tile of `compiled` vec4s take it.
    pub fn check(self, compiled: usize) -> Result<RecurrencePlan> {
        if !(1..=SEQ_BLOCK_MAX).contains(&self.block) {
            let hint = format!("use 1..={SEQ_BLOCK_MAX}");
            return Err(Error::config("sequences per workgroup", self.block, hint));
        }
        if !(SEQ_TILE_MIN..=compiled).contains(&self.tile) {
            let hint = format!("use {SEQ_TILE_MIN}..={compiled} on this adapter");
            return Err(Error::config("W_hh tile vec4s", self.tile, hint));
        }
        Ok(self)
    }
}

/// `step`, or `kind:BW` (WGRNN_RECURRENCE's syntax): for reports.
impl std::fmt::Display for RecurrencePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Recurrence::Step => write!(f, "step"),
            kind => write!(f, "{kind}:{}", self.block),
        }
    }
}

/// Where the whole-sequence forward kernel finds the input pre-activations: `pre` for steps
/// 1..=`steps` (a token binding's offset is that of step 1; step t's ids follow at
/// (t - 1)·B), none after (one-to-many).
#[derive(Clone, Copy, Debug)]
pub struct SeqPre<'a> {
    pub pre: Pre<'a>,
    pub steps: usize,
}

/// Where a whole-sequence kernel runs: T steps of B sequences of H units, the direction, and
/// for the lengths in the per-call `info` buffer the index of the chunk's first sequence;
/// how: the plan (`Seq`: W_hh streamed through workgroup tiles, `SeqDirect`: read from
/// storage; sequences per workgroup; the tile).
#[derive(Clone, Copy, Debug)]
pub struct SeqAt<'a> {
    pub batch: usize,
    pub hidden: usize,
    pub steps: usize,
    pub reverse: bool,
    pub info: &'a wgpu::Buffer,
    pub b0: usize,
    pub plan: RecurrencePlan,
}

impl SeqAt<'_> {
    /// The kernels' `flags`: bit 0 the reverse direction, bit 1 W_hh through tiles (bit 2,
    /// the forward kernel's biases, is the caller's).
    fn flags(&self) -> u32 {
        self.reverse as u32 | ((self.plan.kind == Recurrence::Seq) as u32) << 1
    }

    /// One workgroup per block of sequences.
    fn groups(&self) -> Result<[u32; 3]> {
        groups_1d(self.batch, self.plan.block)
    }
}

/// Every step of `rnn_step_forward` for one direction in one dispatch: h_t = f(pre_t + b_ih +
/// b_hh + W_hh h_prev) in the direction's (T+1, B, H) buffer `h`, in the direction's order.
pub fn rnn_seq_forward(span: SeqAt, w: StepWeights, h: &wgpu::Buffer, pre: SeqPre, act: usize) -> Result<Dispatch> {
    // without token inputs `w` fills the unread token binding (never `h`, bound read-write)
    let (use_pre, tok, vocab, tab_off, (tab_sj, tab_st)) = match pre.pre {
        Pre::None => (0, At { buf: w.w, off: 0 }, 1, 0, (0, 0)),
        Pre::InPlace => (1, At { buf: w.w, off: 0 }, 1, 0, (0, 0)),
        Pre::Tokens {
            tok,
            vocab,
            table,
            strides,
        } => (2, tok, vocab, table, strides),
    };
    let (bih, bhh) = w.bias.unwrap_or((0, 0));
    let p = params::RnnSeqForwardP {
        batch: u(span.batch)?,
        hidden: u(span.hidden)?,
        steps: u(span.steps)?,
        flags: span.flags() | (w.bias.is_some() as u32) << 2,
        w_off: u(w.w_hh)?,
        bih_off: u(bih)?,
        bhh_off: u(bhh)?,
        act: u(act)?,
        use_pre,
        pre_steps: u(pre.steps)?,
        tok_off: u(tok.off)?,
        vocab: u(vocab)?,
        tab_off: u(tab_off)?,
        tab_sj: u(tab_sj)?,
        tab_st: u(tab_st)?,
        b0: u(span.b0)?,
        bw: u(span.plan.block)?,
        cap: u(span.plan.tile)?,
    };
    let bufs = [w.w, h, tok.buf, span.info];
    Ok(dispatch(Kernel::RnnSeqForward, &p, &bufs, span.groups()?))
}

/// The operands of a whole reverse sweep (see rnn_seq_backward.wgsl).
#[derive(Clone, Copy, Debug)]
pub struct SeqGrad<'a> {
    pub w_hh: At<'a>,
    /// dh of step t, sequence b at `dh.off + (t - 1)·B·dh_stride + b·dh_stride` (`dh.off`:
    /// this direction's first column)
    pub dh: At<'a>,
    pub dh_stride: usize,
    /// many-to-one's top layer: the direction's last step reads dh's extra row T
    pub head_row: bool,
    /// the direction's (T+1, B, H) states
    pub h: &'a wgpu::Buffer,
    /// dz (T, B, H) of the direction at `dz.off`
    pub dz: At<'a>,
    /// where dz also goes on each sequence's last step (the reverse direction, for dh0)
    pub first_off: Option<usize>,
}

/// Every step of `rnn_step_backward` for one direction in one dispatch, from the last step
/// the direction computed to its first; the forward direction passes a padding step's
/// state gradient on to the step before.
pub fn rnn_seq_backward(span: SeqAt, g: SeqGrad, act: usize) -> Result<Dispatch> {
    let p = params::RnnSeqBackwardP {
        batch: u(span.batch)?,
        hidden: u(span.hidden)?,
        steps: u(span.steps)?,
        flags: span.flags(),
        w_off: u(g.w_hh.off)?,
        act: u(act)?,
        dh_stride: u(g.dh_stride)?,
        dh_col: u(g.dh.off)?,
        head_row: g.head_row as u32,
        dz_off: u(g.dz.off)?,
        b0: u(span.b0)?,
        has_first: g.first_off.is_some() as u32,
        first_off: u(g.first_off.unwrap_or(0))?,
        bw: u(span.plan.block)?,
        cap: u(span.plan.tile)?,
    };
    let bufs = [g.w_hh.buf, g.dh.buf, g.h, g.dz.buf, span.info];
    Ok(dispatch(Kernel::RnnSeqBackward, &p, &bufs, span.groups()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse() {
        let plan = |kind, block| RecurrencePlan {
            kind,
            block,
            tile: 2048,
        };
        assert_eq!(
            RecurrencePlan::parse("step", 2048).unwrap(),
            plan(Recurrence::Step, SEQ_BLOCK)
        );
        assert_eq!(
            RecurrencePlan::parse(" seq:8 ", 2048).unwrap(),
            plan(Recurrence::Seq, 8)
        );
        assert_eq!(
            RecurrencePlan::parse("seq-direct:1", 2048).unwrap(),
            plan(Recurrence::SeqDirect, 1)
        );
        for bad in ["", "steps", "seq:0", "seq:33", "seq:x", "seq:"] {
            let e = RecurrencePlan::parse(bad, 2048).unwrap_err().to_string();
            assert!(e.contains(RECURRENCE_ENV) && !e.contains('\n'), "{bad:?}: {e}");
        }
        assert!(
            plan(Recurrence::Seq, 4).check(1024).is_err(),
            "a tile larger than compiled"
        );
        let auto = plan(Recurrence::Auto, 4);
        assert_eq!(auto.resolved(128, 256).kind, Recurrence::Seq, "workload G");
        assert_eq!(auto.resolved(4096, 1024).kind, Recurrence::Step, "the large batch");
        assert_eq!(
            plan(Recurrence::SeqDirect, 4).resolved(4096, 1024).kind,
            Recurrence::SeqDirect
        );
        assert_eq!(auto.resolved(128, 256).to_string(), "seq:4");
        assert_eq!(plan(Recurrence::Step, 4).to_string(), "step");
    }
}
