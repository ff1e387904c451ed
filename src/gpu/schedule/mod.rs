//! The DESIGN.md schedule as data: which kernels, clears and copies one engine call runs,
//! in order, as a pure function of the model's buffers, the batch shape's buffers, the
//! kernels this device runs fastest and the mode. `forward` holds the input projection,
//! the recurrence and the head; `backward` the reverse sweep and the weight gradients; this
//! file the chunk loop, clipping and the optimiser.

mod backward;
mod forward;
mod table;

use super::kernels::{self, at, mat, Acc, Dispatch, Kernels, Mat, OptBufs, SeqAt};
use super::program::Op;
use super::scalars::{BIAS_CORR, LOSS, NORM_SQ};
use super::workspace::{x_width, y_width, Chunk, Mode, Shape};
use crate::config::{Head, ModelConfig, SeqShape};
use crate::engine::Want;
use crate::error::{Error, Result};
use crate::optim::{OptimConfig, OptimKind};
use crate::params::ParamLayout;

/// The model side of a schedule: configuration and the buffers that outlive batch shapes.
#[derive(Clone, Copy)]
pub struct Model<'a> {
    pub cfg: &'a ModelConfig,
    pub layout: &'a ParamLayout,
    pub opt: &'a OptimConfig,
    pub params: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    /// optimiser state, each like the parameters
    pub slots: &'a [wgpu::Buffer],
    /// (SCALARS)
    pub scalars: &'a wgpu::Buffer,
    /// (PROBE_WORDS): the non-finite probe the optimiser kernels write (`scalars`)
    pub probe: &'a wgpu::Buffer,
    /// bound where a kernel's binding is unused (SGD without momentum)
    pub dummy: &'a wgpu::Buffer,
    /// where an embedding's token tables (dirs, V, H) start in `params`, past the
    /// parameters (`workspace::table_floats`); None where the buffer has no room for them
    pub table: Option<usize>,
}

/// The ops of one call of `mode` on a batch of shape `sh`.
pub fn ops(m: Model, sh: &Shape, kernels: &Kernels, mode: Mode) -> Result<Vec<Op>> {
    // dropout is part of training: loss_and_grads and train_step, never forward
    let train = mode != Mode::Forward;
    // dx asks for the gradient of the embedded inputs, which the token-table path skips
    let dx = matches!(mode, Mode::Grads { dx: true, .. });
    let table = m
        .table
        .zip(sh.tok_table.as_ref())
        .filter(|_| !dx)
        .map(|(off, scratch)| table::Table { off, scratch });
    let s = Sched {
        m,
        sh,
        k: kernels,
        train,
        table,
    };
    let [whole] = sh.chunks[..] else {
        if mode != Mode::Train {
            return Err(Error::gpu(
                format!(
                    "a batch of {} sequences exceeds one storage binding; only training steps are split into chunks",
                    sh.b
                ),
                "evaluate in smaller batches (--batch)",
            ));
        }
        let mut ops = Vec::new();
        for (i, &ch) in sh.chunks.iter().enumerate() {
            ops.extend(s.chunk_in(ch)?);
            ops.extend(s.forward(ch, i > 0, false)?);
            ops.extend(s.backward(Want::default(), ch, i > 0)?);
            ops.extend(s.last_state(ch));
        }
        s.update(&mut ops, None)?;
        return Ok(ops);
    };
    // a training step sums its loss in the same dispatch as Σ g² (`update`)
    let mut ops = s.forward(whole, false, mode == Mode::Train)?;
    match mode {
        Mode::Forward => {}
        Mode::Grads { dx, dh0 } => ops.extend(s.backward(Want { dx, dh0 }, whole, false)?),
        Mode::Train => {
            ops.extend(s.backward(Want::default(), whole, false)?);
            s.update(&mut ops, Some(whole))?;
            ops.extend(s.last_state(whole));
        }
    }
    Ok(ops)
}

/// What every op builder of one schedule reads.
struct Sched<'a> {
    m: Model<'a>,
    sh: &'a Shape,
    k: &'a Kernels,
    /// a training program (train_step, loss_and_grads): dropout applies
    train: bool,
    /// layer 0's embedding runs through token tables (`workspace::token_table`)
    table: Option<table::Table<'a>>,
}

impl<'a> Sched<'a> {
    /// C = op(A)·op(B) (or C + ... under `Acc::Add`) with the device's matmul kernel.
    fn mm(&self, c: Mat, a: Mat, b: Mat, acc: Acc) -> Result<Op> {
        Ok(Op::Dispatch(self.product(c, a, b, acc, None)?))
    }

    /// `mm` that also writes the row sums of op(A) at two offsets of C's buffer (a bias
    /// gradient beside its weight gradient).
    fn mm_row_sums(&self, c: Mat, a: Mat, b: Mat, acc: Acc, rs: (usize, usize)) -> Result<Op> {
        Ok(Op::Dispatch(self.product(c, a, b, acc, Some(rs))?))
    }

    /// The dispatch of `mm` (`mm_row_sums` with `rs`).
    fn product(&self, c: Mat, a: Mat, b: Mat, acc: Acc, rs: Option<(usize, usize)>) -> Result<Dispatch> {
        match rs {
            Some(rs) => kernels::matmul_row_sums(self.k.matmul, c, a, b, acc, rs),
            None => kernels::matmul(self.k.matmul, c, a, b, acc),
        }
    }

    /// Two products that share A's and C's buffers, which the tuner may run as one dispatch.
    fn mm_pair(first: Dispatch, second: Dispatch) -> Op {
        Op::Pair(Box::new([first, second]))
    }

    fn off(&self, tensor: usize) -> usize {
        self.m.layout.tensors[tensor].offset
    }

    /// The parameter matrix `tensor` (rows, cols) in `buf` (the parameters or gradients).
    fn matrix(&self, buf: &'a wgpu::Buffer, tensor: usize) -> Mat<'a> {
        let spec = &self.m.layout.tensors[tensor];
        let (rows, cols) = match spec.shape[..] {
            [r, c] => (r, c),
            _ => (spec.shape.iter().product(), 1),
        };
        mat(buf, spec.offset, rows, cols)
    }

    fn weight(&self, tensor: usize) -> Mat<'a> {
        self.matrix(self.m.params, tensor)
    }

    fn grad(&self, tensor: usize) -> Mat<'a> {
        self.matrix(self.m.grads, tensor)
    }

    /// Layer `l`'s output as the layer above (T·B_c rows) or the head (N rows: the top
    /// layer) reads it, (rows, H·dirs): its own buffer (`Shape::ys`), or the rows of its
    /// forward states (1..=T, or many-to-one's final row T).
    fn output_rows(&self, l: usize, b: usize) -> Mat<'a> {
        let (cfg, sh) = (self.m.cfg, self.sh);
        let top = l + 1 == cfg.layers;
        let rows = if top { cfg.target_steps(sh.t) } else { sh.t } * b;
        if let Some(y) = &sh.ys[l] {
            return mat(y, 0, rows, cfg.out_width());
        }
        let first = match cfg.seq {
            SeqShape::ManyToOne if top => sh.t,
            _ => 1,
        };
        mat(&sh.hs[l][0], first * b * cfg.hidden, rows, cfg.hidden)
    }

    /// Where and how the recurrence of direction `d` runs on chunk `ch`: its plan decides
    /// between the per-step chain and a whole-sequence kernel (the same for every layer:
    /// they have one hidden width).
    fn seq_span(&self, ch: Chunk, d: usize) -> SeqAt<'a> {
        let (hidden, sh) = (self.m.cfg.hidden, self.sh);
        SeqAt {
            batch: ch.b,
            hidden,
            steps: sh.t,
            reverse: d == 1,
            info: &sh.info,
            b0: ch.b0,
            plan: self.k.recurrence.resolved(ch.b, hidden),
        }
    }

    /// The steps of direction `d` in the order its recurrence runs them (1..=T forward,
    /// T..=1 reverse), or in the reverse of that for its `backward` sweep.
    fn sweep_order(&self, d: usize, backward: bool) -> Vec<usize> {
        let mut steps: Vec<usize> = (1..=self.sh.t).collect();
        if (d == 1) != backward {
            steps.reverse();
        }
        steps
    }

    /// The factor that turns the summed per-row losses into the loss: MSE's factor (the head
    /// kernels scale each row by the batch's reduction scale, which the mean of a ragged
    /// batch takes from its lengths, per call).
    fn loss_factor(&self) -> f32 {
        let cfg = self.m.cfg;
        match cfg.head {
            Head::Softmax => 1.0,
            Head::Linear | Head::Sigmoid => cfg.mse_factors().0 as f32,
        }
    }

    /// The loss of one chunk: its per-row losses times the loss factor into scalars[LOSS]
    /// (added to it when `acc`: a later chunk of a split batch).
    fn loss_sum(&self, ch: Chunk, acc: bool) -> kernels::Sum<'a> {
        kernels::Sum {
            n: self.m.cfg.target_steps(self.sh.t) * ch.b,
            src: at(&self.sh.loss_rows, 0),
            square: false,
            factor: self.loss_factor(),
            dst: at(self.m.scalars, LOSS),
            accumulate: acc,
        }
    }

    /// Copies of a chunk's inputs, targets and initial states into the chunk buffers (the
    /// per-call words stay whole: the kernels index them by the chunk's first sequence).
    fn chunk_in(&self, ch: Chunk) -> Result<Vec<Op>> {
        let (cfg, sh) = (self.m.cfg, self.sh);
        let io = sh
            .io
            .as_ref()
            .ok_or_else(|| Error::gpu("chunk inputs missing", "internal error"))?;
        let xs = cfg.input_steps(sh.t) * x_width(cfg);
        let ys = cfg.target_steps(sh.t) * y_width(cfg);
        let hd = cfg.hidden;
        let copy = |src: &wgpu::Buffer, src_off, dst: &wgpu::Buffer, dst_off, len| Op::Copy {
            src: src.clone(),
            src_off,
            dst: dst.clone(),
            dst_off,
            len,
        };
        let mut ops = vec![
            copy(&io.x, ch.b0 * xs, &sh.x, 0, ch.b * xs),
            copy(&io.y, ch.b0 * ys, &sh.y, 0, ch.b * ys),
        ];
        for (r, d, h) in sh.directions() {
            let bh = ch.b * hd;
            ops.push(copy(&io.h0, (r * sh.b + ch.b0) * hd, h, sh.h0_row(d) * bh, bh));
        }
        Ok(ops)
    }

    /// The chunk's final states into `last` (L·dirs, B, H).
    fn last_state(&self, ch: Chunk) -> Vec<Op> {
        let (sh, hd) = (self.sh, self.m.cfg.hidden);
        sh.directions()
            .map(|(r, d, h)| Op::Copy {
                src: h.clone(),
                src_off: sh.final_row(d) * ch.b * hd,
                dst: sh.last.clone(),
                dst_off: (r * sh.b + ch.b0) * hd,
                len: ch.b * hd,
            })
            .collect()
    }

    /// Clipping, Σ g² and the optimiser, once per step after every chunk's gradients.
    /// `loss`: a chunk whose loss sum was deferred to share Σ g²'s dispatch.
    fn update(&self, ops: &mut Vec<Op>, loss: Option<Chunk>) -> Result<()> {
        push_update(self.m, ops, loss.map(|ch| self.loss_sum(ch, false)))
    }
}

/// The ops of `GpuEngine::apply_grads`: clipping, Σ g² and the optimiser on gradients
/// already in the gradient buffer (data-parallel training uploads the summed gradients).
pub fn update_ops(m: Model) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    push_update(m, &mut ops, None)?;
    Ok(ops)
}

/// Clipping, Σ g² and the optimiser, which also probes the weights and the state it writes
/// for non-finite values (the CPU path checks them after its update: the weights and the
/// last slot, Adam's v, SGD's velocity, Adagrad's sum); `loss`: a loss sum that shares
/// Σ g²'s dispatch.
fn push_update(m: Model, ops: &mut Vec<Op>, loss: Option<kernels::Sum>) -> Result<()> {
    let total = m.layout.total;
    if let Some(v) = m.opt.clip.value {
        ops.push(Op::Dispatch(kernels::clip_value(total, at(m.grads, 0), v)?));
    }
    // Σ g² always: clipping by norm needs it, and train_step reads it back with the loss
    // to report a non-finite gradient as the CPU path does.
    let norm = kernels::Sum {
        n: total,
        src: at(m.grads, 0),
        square: true,
        factor: 1.0,
        dst: at(m.scalars, NORM_SQ),
        accumulate: false,
    };
    ops.push(Op::Dispatch(match loss {
        Some(l) => kernels::reduce_sums(l, norm)?,
        None => kernels::reduce_sum(norm.n, norm.src, true, 1.0, norm.dst, false)?,
    }));
    let (lr, wd) = (m.opt.lr, m.opt.weight_decay);
    let clip = m.opt.clip.norm.map(|max| (max, NORM_SQ));
    let slot = |i: usize| m.slots.get(i).unwrap_or(m.dummy);
    let bufs = OptBufs {
        w: m.params,
        g: m.grads,
        scalars: m.scalars,
        probe: m.probe,
    };
    ops.push(Op::Dispatch(match m.opt.kind {
        OptimKind::Sgd { momentum } => kernels::sgd(total, lr, wd, momentum, clip, bufs, slot(0))?,
        OptimKind::Adam { beta1, beta2, eps } => kernels::adam(
            total,
            lr,
            wd,
            (beta1, beta2, eps),
            BIAS_CORR,
            clip,
            bufs,
            (slot(0), slot(1)),
        )?,
        OptimKind::Adagrad { eps } => kernels::adagrad(total, lr, wd, eps, clip, bufs, slot(0))?,
    }));
    Ok(())
}
