//! The GPU path as an `Engine`. Parameters, gradients, optimiser state and every hidden
//! state stay on the device; per call only the batch goes up, and only what the caller asks
//! for comes back. The schedule follows DESIGN.md: batched input projection, one fused
//! dispatch per layer and step each way, batched head / loss / weight-gradient products,
//! then clipping and the optimiser, all in one encoder and one submission.

use std::collections::HashMap;
use std::sync::Arc;

use super::buffers::{tensor, upload, Scale, Staging};
use super::context::GpuContext;
use super::kernels::{self, act_code, at, Dispatch, Kernels, Pre};
use super::scheduler::{Op, Program};
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{Head, ModelConfig, SeqShape};
use crate::engine::{Engine, EngineKind, Outputs};
use crate::engine::{Grads, Want};
use crate::error::{Error, Result};
use crate::optim::{OptimConfig, OptimKind, OptimState};
use crate::params::ParamLayout;

/// Index of Σ g² in the scalars buffer (index 0 holds the loss).
const NORM_SQ: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    Forward,
    Grads(bool, bool),
    Train,
}

/// One slice of the batch run through the program: a batch whose activations exceed one
/// storage binding is split into chunks of at most `Shape::bc` sequences, processed one after
/// the other in the same encoder, their gradients and losses summed.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    /// sequences in this chunk and the index of its first one in the batch
    b: usize,
    b0: usize,
}

/// Full-batch copies of the inputs a chunked batch uploads once per step: each chunk copies
/// its slice into the chunk-sized buffers (uploads land before the submission, so the
/// chunk buffers themselves cannot be refilled between chunks).
struct ChunkIo {
    /// (chunks, T_in, B_c, I) inputs and (chunks, T_out, B_c, ·) targets, chunk-major
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    /// (L, B, H) initial states
    h0: wgpu::Buffer,
}

/// Buffers and programs for one batch shape (B, T).
struct Shape {
    b: usize,
    t: usize,
    /// the slices of the batch (one unless it is split)
    chunks: Vec<Chunk>,
    /// `Some` when the batch is split
    io: Option<ChunkIo>,
    /// per layer (T+1, B_c, H); row 0 is h0, row t the state after step t. Every buffer
    /// below is sized for one chunk (B_c sequences) except `last`.
    hs: Vec<wgpu::Buffer>,
    /// (T, B, H) of the layer being swept
    dz: wgpu::Buffer,
    /// (T, B, H) gradient arriving from the head or the layer above
    dh: wgpu::Buffer,
    /// (T_in, B, I) dense inputs or (T_in, B) token ids
    x: wgpu::Buffer,
    /// (T_out, B) class ids or (T_out, B, O) values
    y: wgpu::Buffer,
    /// (T_in, B, E) embedded inputs
    xe: wgpu::Buffer,
    /// (N, O) each
    logits: wgpu::Buffer,
    out: wgpu::Buffer,
    g: wgpu::Buffer,
    /// (N)
    loss_rows: wgpu::Buffer,
    /// (T_in, B, in_0)
    dx: wgpu::Buffer,
    /// (L, B, H) each
    dh0: wgpu::Buffer,
    last: wgpu::Buffer,
    /// (B, H) zeros, the initial state when the batch has none
    zeros: Vec<f32>,
    programs: HashMap<Mode, Program>,
    /// index of the optimiser dispatch in this shape's Train program
    opt_op: usize,
}

impl Shape {
    /// Bytes of every device buffer of this shape, programs' parameter blocks included.
    fn bytes(&self) -> u64 {
        let bufs = [
            &self.dz,
            &self.dh,
            &self.x,
            &self.y,
            &self.xe,
            &self.logits,
            &self.out,
            &self.g,
            &self.loss_rows,
            &self.dx,
            &self.dh0,
            &self.last,
        ];
        let io = self.io.iter().flat_map(|io| [&io.x, &io.y, &io.h0]);
        self.hs.iter().chain(bufs).chain(io).map(|b| b.size()).sum::<u64>()
            + self.programs.values().map(Program::uniform_bytes).sum::<u64>()
    }
}

/// Batch shapes whose buffers and programs are kept: training and evaluation batches
/// alternate, and reallocating on every switch would allocate inside the training loop.
const SHAPE_CACHE: usize = 2;

pub struct GpuEngine {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    cfg: ModelConfig,
    layout: ParamLayout,
    opt: OptimConfig,
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    slots: Vec<wgpu::Buffer>,
    /// [loss, Σ g², padding...]
    scalars: wgpu::Buffer,
    /// bound where a kernel's binding is unused (SGD without momentum)
    dummy: wgpu::Buffer,
    /// the most recently used shape first, at most SHAPE_CACHE of them
    shapes: Vec<Shape>,
    staging: Staging,
    /// updates done
    step: u64,
    /// (L, B, H) state after the last train_step, once its batch shape has been replaced
    last_host: Option<Vec<f32>>,
    /// whether the `last` buffer of shape `last_shape` holds the state of the latest train_step
    last_on_device: bool,
    /// (B, T) of the latest train_step
    last_shape: (usize, usize),
    /// host time spent recording the latest step's command encoder
    record_time: std::time::Duration,
    /// a smaller storage-binding limit than the adapter's, to exercise batch splitting
    binding_limit: Option<u64>,
}

impl GpuEngine {
    pub fn new(ctx: Arc<GpuContext>, cfg: ModelConfig, opt: OptimConfig, params: Vec<f32>) -> Result<Self> {
        cfg.validate()?;
        opt.validate()?;
        let layout = ParamLayout::new(&cfg);
        if params.len() != layout.total {
            return Err(Error::shape(
                "GpuEngine::new",
                "params",
                params.len(),
                layout.total,
                "use ParamLayout::init",
            ));
        }
        let kernels = ctx.kernels()?;
        let n = layout.total;
        let c = ctx.clone();
        ctx.scoped("allocating parameters", || {
            let params_buf = tensor(&c, "parameters", n, Scale::Model)?;
            let grads = tensor(&c, "gradients", n, Scale::Model)?;
            let slots = (0..opt.kind.slots())
                .map(|i| tensor(&c, &format!("optimiser state {i}"), n, Scale::Model))
                .collect::<Result<Vec<_>>>()?;
            let scalars = tensor(&c, "scalars", 64, Scale::Model)?;
            let dummy = tensor(&c, "unused binding", 64, Scale::Model)?;
            upload(&c, &params_buf, 0, &params);
            Ok(GpuEngine {
                ctx: c.clone(),
                kernels,
                cfg,
                layout,
                opt,
                params: params_buf,
                grads,
                slots,
                scalars,
                dummy,
                shapes: Vec::new(),
                staging: Staging::default(),
                step: 0,
                last_host: None,
                last_on_device: false,
                last_shape: (0, 0),
                record_time: std::time::Duration::ZERO,
                binding_limit: None,
            })
        })
    }

    /// Kernel launches per training step for a batch of shape (B, T) (for reports).
    pub fn dispatches_per_step(&mut self, b: usize, t: usize) -> Result<usize> {
        self.ensure_shape(b, t)?;
        Ok(self.program(Mode::Train)?.dispatches())
    }

    /// Host time spent recording the latest training step's commands (zero before the first).
    pub fn last_record_ms(&self) -> f64 {
        self.record_time.as_secs_f64() * 1e3
    }

    /// Bytes of every device buffer the engine holds now: parameters, gradients, optimiser
    /// state, the cached batch shapes' activations and programs, and the read-back staging.
    pub fn gpu_buffer_bytes(&self) -> u64 {
        let model = [&self.params, &self.grads, &self.scalars, &self.dummy];
        model
            .into_iter()
            .chain(self.slots.iter())
            .map(|b| b.size())
            .sum::<u64>()
            + self.shapes.iter().map(Shape::bytes).sum::<u64>()
            + self.staging.bytes()
    }

    /// Pretends the adapter's largest storage binding is `bytes` (None: the real limit), so
    /// tests can split small batches into chunks as a large batch would be. Drops the cached
    /// batch shapes.
    pub fn set_binding_limit(&mut self, bytes: Option<u64>) -> Result<()> {
        if self.last_on_device {
            self.last_host = Some(self.read_last()?);
            self.last_on_device = false;
        }
        self.shapes.clear();
        self.binding_limit = bytes;
        Ok(())
    }

    /// Makes the (B, T) buffers current: reuses a cached shape, or allocates one and evicts
    /// the least recently used beyond SHAPE_CACHE.
    fn ensure_shape(&mut self, b: usize, t: usize) -> Result<()> {
        if let Some(i) = self.shapes.iter().position(|s| s.b == b && s.t == t) {
            self.shapes[..=i].rotate_right(1);
            return Ok(());
        }
        if self.shapes.len() >= SHAPE_CACHE {
            let old = self.shapes.len() - 1;
            let evicted = (self.shapes[old].b, self.shapes[old].t);
            if self.last_on_device && self.last_shape == evicted {
                self.last_host = Some(self.read_last()?);
                self.last_on_device = false;
            }
            self.shapes.truncate(old);
        }
        let cfg = &self.cfg;
        let (hd, o, l) = (cfg.hidden, cfg.output, cfg.layers);
        let (t_in, n) = (cfg.input_steps(t), cfg.target_steps(t) * b);
        let sc = Scale::PerBatch { batch: b };
        let ctx = &self.ctx;
        let x_width = match cfg.input {
            crate::config::Input::Dense { size } => size,
            crate::config::Input::Tokens { .. } => 1,
        };
        let y_width = if cfg.head == Head::Softmax { 1 } else { o };
        // Floats per sequence of the largest chunk-sized buffer, and how many sequences fit
        // in one binding: the batch is split into the fewest equal chunks that fit.
        let per_seq = [
            (t + 1) * hd,
            t_in * cfg.embed().unwrap_or(0),
            t_in * cfg.in_width(0),
            cfg.target_steps(t) * o,
        ]
        .into_iter()
        .max()
        .unwrap_or(1)
        .max(1) as u64;
        let limit = [
            ctx.limits.max_storage_buffer_binding_size,
            ctx.limits.max_buffer_size,
            self.binding_limit.unwrap_or(u64::MAX),
        ]
        .into_iter()
        .min()
        .unwrap_or(u64::MAX);
        let fit = ((limit / 4 / per_seq) as usize).clamp(1, b.max(1));
        let nchunks = b.div_ceil(fit).max(1);
        let bc = b.div_ceil(nchunks);
        let chunks: Vec<Chunk> = (0..nchunks)
            .map(|c| Chunk {
                b: bc.min(b - c * bc),
                b0: c * bc,
            })
            .collect();
        let full = (b, n);
        // from here on the buffers are chunk-sized
        let (b, n) = (bc, cfg.target_steps(t) * bc);
        let shape = ctx.scoped("allocating batch buffers", || {
            let io = if chunks.len() > 1 {
                Some(ChunkIo {
                    x: tensor(ctx, "inputs (T_in, B, I)", t_in * full.0 * x_width, sc)?,
                    y: tensor(ctx, "targets (T_out, B, O)", full.1 * y_width, sc)?,
                    h0: tensor(ctx, "initial states (L, B, H)", l * full.0 * hd, sc)?,
                })
            } else {
                None
            };
            Ok(Shape {
                b: full.0,
                t,
                chunks,
                io,
                hs: (0..l)
                    .map(|i| {
                        tensor(
                            ctx,
                            &format!("hidden states (T+1, B, H) of layer {i}"),
                            (t + 1) * b * hd,
                            sc,
                        )
                    })
                    .collect::<Result<_>>()?,
                dz: tensor(ctx, "dz (T, B, H)", t * b * hd, sc)?,
                dh: tensor(ctx, "dh (T, B, H)", t * b * hd, sc)?,
                x: tensor(ctx, "inputs (T_in, B, I)", t_in * b * x_width, sc)?,
                y: tensor(ctx, "targets (T_out, B, O)", n * y_width, sc)?,
                xe: tensor(
                    ctx,
                    "embedded inputs (T_in, B, E)",
                    t_in * b * cfg.embed().unwrap_or(0),
                    sc,
                )?,
                logits: tensor(ctx, "logits (N, O)", n * o, sc)?,
                out: tensor(ctx, "outputs (N, O)", n * o, sc)?,
                g: tensor(ctx, "dL/dlogits (N, O)", n * o, sc)?,
                loss_rows: tensor(ctx, "per-row losses (N)", n, sc)?,
                dx: tensor(ctx, "dx (T_in, B, in_0)", t_in * b * cfg.in_width(0), sc)?,
                dh0: tensor(ctx, "dh0 (L, B, H)", l * b * hd, sc)?,
                last: tensor(ctx, "final state (L, B, H)", l * full.0 * hd, sc)?,
                zeros: vec![0.0; full.0 * hd],
                programs: HashMap::new(),
                opt_op: 0,
            })
        })?;
        self.shapes.insert(0, shape);
        Ok(())
    }

    /// The current (most recently used) batch shape.
    fn shape(&self) -> Result<&Shape> {
        self.shapes
            .first()
            .ok_or_else(|| Error::gpu("no batch shape allocated", "internal error"))
    }

    fn shape_mut(&mut self) -> Result<&mut Shape> {
        self.shapes
            .first_mut()
            .ok_or_else(|| Error::gpu("no batch shape allocated", "internal error"))
    }

    /// The program for `mode` at the current shape, built on first use.
    fn program(&mut self, mode: Mode) -> Result<&Program> {
        let missing = !self.shape()?.programs.contains_key(&mode);
        if missing {
            let ops = self.ops(mode)?;
            let prog = Program::new(&self.ctx, &self.kernels, &ops)?;
            self.shape_mut()?.programs.insert(mode, prog);
        }
        self.shape()?
            .programs
            .get(&mode)
            .ok_or_else(|| Error::gpu("program missing", "internal error"))
    }

    fn ops(&mut self, mode: Mode) -> Result<Vec<Op>> {
        let chunks = self.shape()?.chunks.clone();
        let [whole] = chunks[..] else {
            if mode != Mode::Train {
                return Err(Error::gpu(
                    format!(
                        "a batch of {} sequences exceeds one storage binding; only training steps are split into chunks",
                        self.shape()?.b
                    ),
                    "evaluate in smaller batches (--batch)",
                ));
            }
            let mut ops = Vec::new();
            for (i, &ch) in chunks.iter().enumerate() {
                ops.extend(self.chunk_in_ops(ch)?);
                ops.extend(self.forward_ops(ch, i > 0, false)?);
                ops.extend(self.backward_ops(Want::default(), ch, i > 0)?);
                ops.extend(self.last_state_ops(ch)?);
            }
            self.push_update(&mut ops, None)?;
            return Ok(ops);
        };
        // a training step sums its loss in the same dispatch as Σ g² (push_update)
        let mut ops = self.forward_ops(whole, false, mode == Mode::Train)?;
        match mode {
            Mode::Forward => {}
            Mode::Grads(dx, dh0) => ops.extend(self.backward_ops(Want { dx, dh0 }, whole, false)?),
            Mode::Train => {
                ops.extend(self.backward_ops(Want::default(), whole, false)?);
                let factor = self.loss_factor()?;
                self.push_update(&mut ops, Some((whole, factor)))?;
                ops.extend(self.last_state_ops(whole)?);
            }
        }
        Ok(ops)
    }

    /// Copies of a chunk's inputs, targets and initial states into the chunk buffers.
    fn chunk_in_ops(&self, ch: Chunk) -> Result<Vec<Op>> {
        let (cfg, sh) = (&self.cfg, self.shape()?);
        let io = sh
            .io
            .as_ref()
            .ok_or_else(|| Error::gpu("chunk inputs missing", "internal error"))?;
        let x_width = match cfg.input {
            crate::config::Input::Dense { size } => size,
            crate::config::Input::Tokens { .. } => 1,
        };
        let y_width = if cfg.head == Head::Softmax { 1 } else { cfg.output };
        let (xs, ys) = (cfg.input_steps(sh.t) * x_width, cfg.target_steps(sh.t) * y_width);
        let hd = cfg.hidden;
        let mut ops = vec![
            Op::Copy {
                src: io.x.clone(),
                src_off: ch.b0 * xs,
                dst: sh.x.clone(),
                dst_off: 0,
                len: ch.b * xs,
            },
            Op::Copy {
                src: io.y.clone(),
                src_off: ch.b0 * ys,
                dst: sh.y.clone(),
                dst_off: 0,
                len: ch.b * ys,
            },
        ];
        for (l, h) in sh.hs.iter().enumerate() {
            ops.push(Op::Copy {
                src: io.h0.clone(),
                src_off: (l * sh.b + ch.b0) * hd,
                dst: h.clone(),
                dst_off: 0,
                len: ch.b * hd,
            });
        }
        Ok(ops)
    }

    /// The chunk's final states into `last` (L, B, H).
    fn last_state_ops(&self, ch: Chunk) -> Result<Vec<Op>> {
        let sh = self.shape()?;
        let hd = self.cfg.hidden;
        Ok(sh
            .hs
            .iter()
            .enumerate()
            .map(|(l, h)| Op::Copy {
                src: h.clone(),
                src_off: sh.t * ch.b * hd,
                dst: sh.last.clone(),
                dst_off: (l * sh.b + ch.b0) * hd,
                len: ch.b * hd,
            })
            .collect())
    }

    /// Appends clipping, Σ g² and the optimiser (once per step, after every chunk's
    /// gradients) and notes where the optimiser dispatch sits for `set_params`. `loss`: a
    /// chunk whose loss sum was deferred to share Σ g²'s dispatch.
    fn push_update(&mut self, ops: &mut Vec<Op>, loss: Option<(Chunk, f32)>) -> Result<()> {
        let total = self.layout.total;
        if let Some(v) = self.opt.clip.value {
            ops.push(Op::Dispatch(kernels::clip_value(total, at(&self.grads, 0), v)?));
        }
        // Σ g² always: clipping by norm needs it, and train_step reads it back with the loss
        // to report a non-finite gradient as the CPU path does.
        let norm = kernels::Sum {
            n: total,
            src: at(&self.grads, 0),
            square: true,
            factor: 1.0,
            dst: at(&self.scalars, NORM_SQ),
            accumulate: false,
        };
        let d = match loss {
            Some((ch, factor)) => kernels::reduce_sums(self.loss_sum(ch, factor, false)?, norm)?,
            None => kernels::reduce_sum(norm.n, norm.src, true, 1.0, norm.dst, false)?,
        };
        ops.push(Op::Dispatch(d));
        self.shape_mut()?.opt_op = ops.len();
        ops.push(Op::Dispatch(self.optimizer_dispatch(self.step + 1)?));
        Ok(())
    }

    /// The optimiser launch for update number `k` (Adam's bias corrections depend on it).
    fn optimizer_dispatch(&self, k: u64) -> Result<Dispatch> {
        let (n, lr, wd) = (self.layout.total, self.opt.lr, self.opt.weight_decay);
        let clip = self.opt.clip.norm.map(|m| (m, NORM_SQ));
        let slot = |i: usize| self.slots.get(i).unwrap_or(&self.dummy);
        match self.opt.kind {
            OptimKind::Sgd { momentum } => kernels::sgd(
                n,
                lr,
                wd,
                momentum,
                clip,
                &self.params,
                &self.grads,
                slot(0),
                &self.scalars,
            ),
            OptimKind::Adam { beta1, beta2, eps } => {
                // 1 - β^k in f64, rounded once, as the CPU reference does
                let k = i32::try_from(k).unwrap_or(i32::MAX);
                let bc1 = (1.0 - (beta1 as f64).powi(k)) as f32;
                let bc2 = (1.0 - (beta2 as f64).powi(k)) as f32;
                kernels::adam(
                    n,
                    lr,
                    wd,
                    (beta1, beta2, eps),
                    (bc1, bc2),
                    clip,
                    &self.params,
                    &self.grads,
                    slot(0),
                    slot(1),
                    &self.scalars,
                )
            }
            OptimKind::Adagrad { eps } => {
                kernels::adagrad(n, lr, wd, eps, clip, &self.params, &self.grads, slot(0), &self.scalars)
            }
        }
    }

    /// Forward pass, head and loss of one chunk (loss into scalars[0], added to it when
    /// `acc`: a later chunk of a split batch; left to `push_update` when `defer_loss`).
    fn forward_ops(&self, ch: Chunk, acc: bool, defer_loss: bool) -> Result<Vec<Op>> {
        let (cfg, lay, sh) = (&self.cfg, &self.layout, self.shape()?);
        let (b, t, hd, o) = (ch.b, sh.t, cfg.hidden, cfg.output);
        let (t_in, n, bh) = (cfg.input_steps(t), cfg.target_steps(t) * b, b * hd);
        let p = &self.params;
        let mut ops = Vec::new();
        let mut d = |r: Result<Dispatch>| -> Result<()> {
            ops.push(Op::Dispatch(r?));
            Ok(())
        };
        for (l, li) in lay.layers.iter().enumerate() {
            let w_ih = lay.tensors[li.w_ih].offset;
            let h = &sh.hs[l];
            // Input projection of every step at once into rows 1..=T_in (the pre-activations).
            if l > 0 {
                d(kernels::matmul(
                    self.kernels.matmul,
                    t * b,
                    hd,
                    hd,
                    at(&sh.hs[l - 1], bh),
                    false,
                    at(p, w_ih),
                    true,
                    false,
                    at(h, bh),
                ))?;
            } else {
                match (cfg.input, lay.embed) {
                    (crate::config::Input::Dense { size }, _) => d(kernels::matmul(
                        self.kernels.matmul,
                        t_in * b,
                        hd,
                        size,
                        at(&sh.x, 0),
                        false,
                        at(p, w_ih),
                        true,
                        false,
                        at(h, bh),
                    ))?,
                    // one-hot · W_ih^T is the column W_ih[:, tok]: each step kernel gathers it
                    (crate::config::Input::Tokens { .. }, None) => {}
                    (_, Some(e_idx)) => {
                        let e = cfg.in_width(0);
                        let table = lay.tensors[e_idx].offset;
                        d(kernels::embed_gather(
                            t_in * b,
                            e,
                            at(p, table),
                            e,
                            1,
                            &sh.x,
                            at(&sh.xe, 0),
                        ))?;
                        d(kernels::matmul(
                            self.kernels.matmul,
                            t_in * b,
                            hd,
                            e,
                            at(&sh.xe, 0),
                            false,
                            at(p, w_ih),
                            true,
                            false,
                            at(h, bh),
                        ))?;
                    }
                }
            }
            for s in 1..=t {
                d(kernels::rnn_step_forward(
                    self.kernels.step_forward,
                    b,
                    hd,
                    p,
                    lay.tensors[li.w_hh].offset,
                    lay.tensors[li.b_ih].offset,
                    lay.tensors[li.b_hh].offset,
                    h,
                    s * bh,
                    (s - 1) * bh,
                    match (cfg.input, lay.embed) {
                        _ if l == 0 && s > t_in => Pre::None,
                        (crate::config::Input::Tokens { vocab, .. }, None) if l == 0 => Pre::Tokens {
                            tok: at(&sh.x, (s - 1) * b),
                            vocab,
                            wih_off: w_ih,
                        },
                        _ => Pre::InPlace,
                    },
                    act_code(cfg.activation),
                ))?;
            }
        }
        let top = &sh.hs[cfg.layers - 1];
        let rows = head_rows_off(cfg, b, t);
        let head_w = lay.tensors[lay.head_w].offset;
        let head_b = at(p, lay.tensors[lay.head_b].offset);
        d(kernels::matmul(
            self.kernels.matmul,
            n,
            o,
            hd,
            at(top, rows),
            false,
            at(p, head_w),
            true,
            false,
            at(&sh.logits, 0),
        ))?;
        // the mean runs over the whole batch, not the chunk
        let scale = cfg.loss_scale(sh.b, t);
        match cfg.head {
            Head::Softmax => {
                d(kernels::softmax_ce(
                    n,
                    o,
                    head_b,
                    scale as f32,
                    &sh.logits,
                    &sh.y,
                    &sh.out,
                    &sh.g,
                    &sh.loss_rows,
                ))?;
            }
            Head::Linear | Head::Sigmoid => {
                let gscale = (scale as f32) * ((2.0 / o as f64) as f32);
                d(kernels::mse(
                    n,
                    o,
                    head_b,
                    cfg.head == Head::Sigmoid,
                    gscale,
                    &sh.logits,
                    &sh.y,
                    &sh.out,
                    &sh.g,
                    &sh.loss_rows,
                ))?;
            }
        }
        let factor = self.loss_factor()?;
        if !defer_loss {
            let l = self.loss_sum(ch, factor, acc)?;
            d(kernels::reduce_sum(l.n, l.src, l.square, l.factor, l.dst, l.accumulate))?;
        }
        Ok(ops)
    }

    /// The loss of one chunk: its per-row losses times `factor` into scalars[0].
    fn loss_sum(&self, ch: Chunk, factor: f32, acc: bool) -> Result<kernels::Sum<'_>> {
        let sh = self.shape()?;
        Ok(kernels::Sum {
            n: self.cfg.target_steps(sh.t) * ch.b,
            src: at(&sh.loss_rows, 0),
            square: false,
            factor,
            dst: at(&self.scalars, 0),
            accumulate: acc,
        })
    }

    /// The factor that turns the summed per-row losses into the loss (reduction and MSE's 1/O).
    fn loss_factor(&self) -> Result<f32> {
        let (cfg, sh) = (&self.cfg, self.shape()?);
        let scale = cfg.loss_scale(sh.b, sh.t);
        Ok(match cfg.head {
            Head::Softmax => scale as f32,
            Head::Linear | Head::Sigmoid => (scale / cfg.output as f64) as f32,
        })
    }

    /// BPTT of one chunk and every weight gradient into the gradient buffer (SPEC §2),
    /// added to it when `acc` (a later chunk of a split batch).
    fn backward_ops(&self, want: Want, ch: Chunk, acc: bool) -> Result<Vec<Op>> {
        let (cfg, lay, sh) = (&self.cfg, &self.layout, self.shape()?);
        let (b, t, hd, o) = (ch.b, sh.t, cfg.hidden, cfg.output);
        let (t_in, n, bh) = (cfg.input_steps(t), cfg.target_steps(t) * b, b * hd);
        let (p, gr) = (&self.params, &self.grads);
        let off = |i: usize| lay.tensors[i].offset;
        let mut ops = Vec::new();
        let top = &sh.hs[cfg.layers - 1];

        // Head: dW_ho (O, H) = g^T (O, N) · rows (N, H); db_o = column sums of g, i.e. the
        // row sums of g^T, in the same dispatch.
        let d = kernels::matmul(
            self.kernels.matmul,
            o,
            hd,
            n,
            at(&sh.g, 0),
            true,
            at(top, head_rows_off(cfg, b, t)),
            false,
            acc,
            at(gr, off(lay.head_w)),
        )?;
        ops.push(Op::Dispatch(kernels::with_row_sums(
            d,
            off(lay.head_b),
            off(lay.head_b),
        )?));
        // dh of the top layer = g · W_ho; many-to-one has it at the last step only.
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
        ops.push(Op::Dispatch(kernels::matmul(
            self.kernels.matmul,
            n,
            hd,
            o,
            at(&sh.g, 0),
            false,
            at(p, off(lay.head_w)),
            false,
            false,
            at(&sh.dh, dh_head),
        )?));

        for l in (0..cfg.layers).rev() {
            let li = lay.layers[l];
            let h = &sh.hs[l];
            let inw = cfg.in_width(l);
            for s in (1..=t).rev() {
                ops.push(Op::Dispatch(kernels::rnn_step_backward(
                    self.kernels.step_backward,
                    b,
                    hd,
                    at(p, off(li.w_hh)),
                    at(&sh.dh, (s - 1) * bh),
                    at(h, s * bh),
                    &sh.dz,
                    (s - 1) * bh,
                    (s < t).then_some(s * bh),
                    act_code(cfg.activation),
                )?));
            }
            // dW_hh (H, H) = dz^T (H, T·B) · h_{t-1} (T·B, H); both biases get Σ dz (the row
            // sums of dz^T) from the same dispatch.
            let d = kernels::matmul(
                self.kernels.matmul,
                hd,
                hd,
                t * b,
                at(&sh.dz, 0),
                true,
                at(h, 0),
                false,
                acc,
                at(gr, off(li.w_hh)),
            )?;
            ops.push(Op::Dispatch(kernels::with_row_sums(d, off(li.b_ih), off(li.b_hh))?));
            if want.dh0 {
                ops.push(Op::Dispatch(kernels::matmul(
                    self.kernels.matmul,
                    b,
                    hd,
                    hd,
                    at(&sh.dz, 0),
                    false,
                    at(p, off(li.w_hh)),
                    false,
                    false,
                    at(&sh.dh0, l * bh),
                )?));
            }
            if l > 0 {
                let below = &sh.hs[l - 1];
                ops.push(Op::Dispatch(kernels::matmul(
                    self.kernels.matmul,
                    hd,
                    inw,
                    t * b,
                    at(&sh.dz, 0),
                    true,
                    at(below, bh),
                    false,
                    acc,
                    at(gr, off(li.w_ih)),
                )?));
                // dh of the layer below = dz · W_ih (T·B, H)
                ops.push(Op::Dispatch(kernels::matmul(
                    self.kernels.matmul,
                    t * b,
                    inw,
                    hd,
                    at(&sh.dz, 0),
                    false,
                    at(p, off(li.w_ih)),
                    false,
                    false,
                    at(&sh.dh, 0),
                )?));
                continue;
            }
            if want.dx || lay.embed.is_some() {
                ops.push(Op::Dispatch(kernels::matmul(
                    self.kernels.matmul,
                    t_in * b,
                    inw,
                    hd,
                    at(&sh.dz, 0),
                    false,
                    at(p, off(li.w_ih)),
                    false,
                    false,
                    at(&sh.dx, 0),
                )?));
            }
            match (cfg.input, lay.embed) {
                (crate::config::Input::Dense { .. }, _) => {
                    ops.push(Op::Dispatch(kernels::matmul(
                        self.kernels.matmul,
                        hd,
                        inw,
                        t_in * b,
                        at(&sh.dz, 0),
                        true,
                        at(&sh.x, 0),
                        false,
                        acc,
                        at(gr, off(li.w_ih)),
                    )?));
                }
                (crate::config::Input::Tokens { vocab, .. }, None) => {
                    // dW_ih[j, tok] += dz[(t, b), j]: row j of W_ih has stride V
                    ops.push(Op::Dispatch(kernels::token_scatter(
                        t_in * b,
                        hd,
                        vocab,
                        at(&sh.dz, 0),
                        &sh.x,
                        at(gr, off(li.w_ih)),
                        1,
                        vocab,
                        acc,
                    )?));
                }
                (crate::config::Input::Tokens { vocab, .. }, Some(e_idx)) => {
                    ops.push(Op::Dispatch(kernels::matmul(
                        self.kernels.matmul,
                        hd,
                        inw,
                        t_in * b,
                        at(&sh.dz, 0),
                        true,
                        at(&sh.xe, 0),
                        false,
                        acc,
                        at(gr, off(li.w_ih)),
                    )?));
                    // dE[tok, e] += dxe[(t, b), e]
                    ops.push(Op::Dispatch(kernels::token_scatter(
                        t_in * b,
                        inw,
                        vocab,
                        at(&sh.dx, 0),
                        &sh.x,
                        at(gr, off(e_idx)),
                        inw,
                        1,
                        acc,
                    )?));
                }
            }
        }
        Ok(ops)
    }

    /// Queues the batch upload (inputs, targets, initial states): straight into the
    /// buffers the program reads, or, for a split batch, chunk-major into the full-batch
    /// copies that each chunk's ops copy from.
    fn upload_batch(&self, batch: &Batch<f32>) -> Result<()> {
        let sh = self.shape()?;
        let ctx = &self.ctx;
        let bh = sh.b * self.cfg.hidden;
        let Some(io) = &sh.io else {
            match &batch.inputs {
                Inputs::Dense(x) => upload(ctx, &sh.x, 0, x),
                Inputs::Tokens(x) => upload(ctx, &sh.x, 0, x),
            }
            match &batch.targets {
                Targets::Classes(y) => upload(ctx, &sh.y, 0, y),
                Targets::Values(y) => upload(ctx, &sh.y, 0, y),
            }
            for (l, h) in sh.hs.iter().enumerate() {
                let src = match &batch.h0 {
                    Some(h0) => &h0[l * bh..(l + 1) * bh],
                    None => &sh.zeros[..],
                };
                upload(ctx, h, 0, src);
            }
            return Ok(());
        };
        let (t_in, t_out) = (self.cfg.input_steps(sh.t), self.cfg.target_steps(sh.t));
        match &batch.inputs {
            Inputs::Dense(x) => upload(ctx, &io.x, 0, &chunk_major(x, t_in, sh.b, &sh.chunks)),
            Inputs::Tokens(x) => upload(ctx, &io.x, 0, &chunk_major(x, t_in, sh.b, &sh.chunks)),
        }
        match &batch.targets {
            Targets::Classes(y) => upload(ctx, &io.y, 0, &chunk_major(y, t_out, sh.b, &sh.chunks)),
            Targets::Values(y) => upload(ctx, &io.y, 0, &chunk_major(y, t_out, sh.b, &sh.chunks)),
        }
        for l in 0..self.cfg.layers {
            let src = match &batch.h0 {
                Some(h0) => &h0[l * bh..(l + 1) * bh],
                None => &sh.zeros[..],
            };
            upload(ctx, &io.h0, l * bh, src);
        }
        Ok(())
    }

    /// Validates the batch, allocates its shape, uploads it and makes sure the program for
    /// `mode` exists.
    fn prepare(&mut self, batch: &Batch<f32>, mode: Mode) -> Result<()> {
        batch.validate(&self.cfg)?;
        self.ensure_shape(batch.batch, batch.steps)?;
        self.program(mode)?;
        self.upload_batch(batch)
    }

    /// A command encoder with the program for `mode` recorded into it; the recording time is
    /// kept for `last_record_ms`.
    fn encoder(&mut self, mode: Mode) -> Result<wgpu::CommandEncoder> {
        let start = std::time::Instant::now();
        let mut enc = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgrnn step"),
        });
        self.shape()?
            .programs
            .get(&mode)
            .ok_or_else(|| Error::gpu("program missing", "internal error"))?
            .record(&mut enc);
        self.record_time = start.elapsed();
        Ok(enc)
    }

    fn check_loss(&self, loss: f32) -> Result<f32> {
        if !loss.is_finite() {
            return Err(Error::NonFinite {
                what: "loss".into(),
                step: self.step + 1,
            });
        }
        Ok(loss)
    }

    fn read(&mut self, op: &str, regions: &[(&wgpu::Buffer, usize, usize)]) -> Result<Vec<Vec<f32>>> {
        let ctx = self.ctx.clone();
        let enc = ctx.device.create_command_encoder(&Default::default());
        let staging = &mut self.staging;
        ctx.scoped(op, || staging.submit_and_read(&ctx, enc, regions))
    }

    /// The final state of the latest train_step, from its shape's `last` buffer.
    fn read_last(&mut self) -> Result<Vec<f32>> {
        let (b, t) = self.last_shape;
        let sh = self
            .shapes
            .iter()
            .find(|s| s.b == b && s.t == t)
            .ok_or_else(|| Error::gpu("the last training shape was evicted", "internal error"))?;
        let (last, len) = (sh.last.clone(), self.cfg.layers * sh.b * self.cfg.hidden);
        Ok(self.read("reading the final state", &[(&last, 0, len)])?.remove(0))
    }
}

/// (steps, B, w) time-major data reordered chunk by chunk: (chunks, steps, B_c, w), so each
/// chunk's slice is contiguous. Only split batches pay for this copy.
fn chunk_major<T: Copy>(v: &[T], steps: usize, b: usize, chunks: &[Chunk]) -> Vec<T> {
    let w = v.len() / (steps * b).max(1);
    let mut out = Vec::with_capacity(v.len());
    for ch in chunks {
        for t in 0..steps {
            let row = (t * b + ch.b0) * w;
            out.extend_from_slice(&v[row..row + ch.b * w]);
        }
    }
    out
}

/// Element offset of the rows that feed the head in the top layer's (T+1, B, H) buffer.
fn head_rows_off(cfg: &ModelConfig, b: usize, t: usize) -> usize {
    match cfg.seq {
        SeqShape::ManyToOne => t * b * cfg.hidden,
        _ => b * cfg.hidden,
    }
}

impl Engine for GpuEngine {
    fn describe(&self) -> String {
        format!("gpu ({})", self.ctx.describe())
    }
    fn kind(&self) -> EngineKind {
        EngineKind::Gpu
    }
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    fn optim_config(&self) -> &OptimConfig {
        &self.opt
    }

    fn train_step(&mut self, batch: &Batch<f32>, want_loss: bool) -> Result<Option<f32>> {
        let ctx = self.ctx.clone();
        ctx.scoped("train_step", || {
            self.prepare(batch, Mode::Train)?;
            let k = self.step + 1;
            let d = self.optimizer_dispatch(k)?;
            let op = self.shape()?.opt_op;
            self.program(Mode::Train)?.set_params(&ctx, op, &d.params);
            let enc = self.encoder(Mode::Train)?;
            let shape = (self.shape()?.b, self.shape()?.t);
            let loss = if want_loss {
                // [loss, Σ g²] in one read
                let scalars = self.scalars.clone();
                let v = self.staging.submit_and_read(&ctx, enc, &[(&scalars, 0, NORM_SQ + 1)])?;
                let loss = self.check_loss(v[0][0])?;
                if !v[0][NORM_SQ].is_finite() {
                    return Err(Error::NonFinite {
                        what: "gradient".into(),
                        step: k,
                    });
                }
                Some(loss)
            } else {
                ctx.queue.submit([enc.finish()]);
                None
            };
            self.step = k;
            self.last_on_device = true;
            self.last_shape = shape;
            self.last_host = None;
            Ok(loss)
        })
    }

    fn loss_and_grads(&mut self, batch: &Batch<f32>, want: Want) -> Result<(f32, Grads<f32>)> {
        let ctx = self.ctx.clone();
        ctx.scoped("loss_and_grads", || {
            let mode = Mode::Grads(want.dx, want.dh0);
            self.prepare(batch, mode)?;
            let enc = self.encoder(mode)?;
            let sh = self.shape()?;
            let (t_in, b) = (self.cfg.input_steps(sh.t), sh.b);
            let dx_len = if want.dx { t_in * b * self.cfg.in_width(0) } else { 0 };
            let dh0_len = if want.dh0 {
                self.cfg.layers * b * self.cfg.hidden
            } else {
                0
            };
            let (scalars, grads, dx, dh0) = (self.scalars.clone(), self.grads.clone(), sh.dx.clone(), sh.dh0.clone());
            let regions = [
                (&scalars, 0, 1),
                (&grads, 0, self.layout.total),
                (&dx, 0, dx_len),
                (&dh0, 0, dh0_len),
            ];
            let mut v = self.staging.submit_and_read(&ctx, enc, &regions)?;
            let loss = self.check_loss(v[0][0])?;
            let dh0 = want.dh0.then(|| std::mem::take(&mut v[3]));
            let dx = want.dx.then(|| std::mem::take(&mut v[2]));
            Ok((
                loss,
                Grads {
                    params: std::mem::take(&mut v[1]),
                    dx,
                    dh0,
                },
            ))
        })
    }

    fn forward(&mut self, batch: &Batch<f32>) -> Result<Outputs> {
        let ctx = self.ctx.clone();
        ctx.scoped("forward", || {
            self.prepare(batch, Mode::Forward)?;
            let enc = self.encoder(Mode::Forward)?;
            let sh = self.shape()?;
            let (b, t) = (sh.b, sh.t);
            let bh = b * self.cfg.hidden;
            let n = self.cfg.target_steps(t) * b;
            let scalars = self.scalars.clone();
            let out = sh.out.clone();
            let hs = sh.hs.clone();
            let mut regions = vec![(&scalars, 0, 1), (&out, 0, n * self.cfg.output)];
            regions.extend(hs.iter().map(|h| (h, t * bh, bh)));
            let v = self.staging.submit_and_read(&ctx, enc, &regions)?;
            Ok(Outputs {
                loss: v[0][0],
                out: v[1].clone(),
                final_state: v[2..].concat(),
            })
        })
    }

    fn last_state(&mut self) -> Result<Vec<f32>> {
        if self.last_on_device {
            return self.read_last();
        }
        Ok(self.last_host.clone().unwrap_or_default())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        let p = self.params.clone();
        Ok(self
            .read("reading parameters", &[(&p, 0, self.layout.total)])?
            .remove(0))
    }

    fn set_params(&mut self, p: &[f32]) -> Result<()> {
        if p.len() != self.layout.total {
            return Err(Error::shape(
                "set_params",
                "params",
                p.len(),
                self.layout.total,
                "the parameters belong to another model",
            ));
        }
        upload(&self.ctx, &self.params, 0, p);
        Ok(())
    }

    fn optim_state(&mut self) -> Result<OptimState<f32>> {
        let slots = self.slots.clone();
        let regions: Vec<_> = slots.iter().map(|s| (s, 0, self.layout.total)).collect();
        let slots = self.read("reading optimiser state", &regions)?;
        Ok(OptimState { step: self.step, slots })
    }

    fn set_optim_state(&mut self, s: &OptimState<f32>) -> Result<()> {
        s.check(&self.opt.kind, self.layout.total)?;
        for (buf, v) in self.slots.iter().zip(&s.slots) {
            upload(&self.ctx, buf, 0, v);
        }
        self.step = s.step;
        Ok(())
    }
}
