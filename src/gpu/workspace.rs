//! The per-batch-shape side of the engine: the (B, T) buffers and their compiled programs,
//! the split of a batch too large for one storage binding into chunks, the batch upload,
//! a cache of the two most recent shapes, and the final hidden state carried from one
//! training step to the next.

use std::collections::HashMap;

use super::batch_info;
use super::buffers::{tensor, upload, Scale, Staging};
use super::context::GpuContext;
use super::program::Program;
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{Head, Input, ModelConfig, SeqShape};
use crate::error::{checked_product, Error, Result};

/// What a program computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Forward,
    /// loss and gradients (and dx, dh0 when set), no update
    Grads {
        dx: bool,
        dh0: bool,
    },
    Train,
}

/// One slice of the batch run through the program: a batch whose activations exceed one
/// storage binding is split into chunks of at most `B_c` sequences, processed one after
/// the other in the same encoder, their gradients and losses summed.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    /// sequences in this chunk and the index of its first one in the batch
    pub b: usize,
    pub b0: usize,
}

/// Full-batch copies of the inputs a chunked batch uploads once per step: each chunk copies
/// its slice into the chunk-sized buffers (uploads land before the submission, so the
/// chunk buffers themselves cannot be refilled between chunks).
pub struct ChunkIo {
    /// (chunks, T_in, B_c, I) inputs and (chunks, T_out, B_c, ·) targets, chunk-major
    pub x: wgpu::Buffer,
    pub y: wgpu::Buffer,
    /// (L·dirs, B, H) initial states
    pub h0: wgpu::Buffer,
}

/// Buffers and programs for one batch shape (B, T).
pub struct Shape {
    pub b: usize,
    pub t: usize,
    /// the slices of the batch (one unless it is split)
    pub chunks: Vec<Chunk>,
    /// `Some` when the batch is split
    pub io: Option<ChunkIo>,
    /// [layer][direction] (T+1, B_c, H): h0 and the state after every step, at the rows
    /// `state_row` names (the forward direction from row 0, the reverse one backwards from
    /// row T). Every buffer below is sized for one chunk (B_c sequences) except `info` and
    /// `last`.
    pub hs: Vec<Vec<wgpu::Buffer>>,
    /// per layer, its output as the layer above or the head reads it, (T, B, H·dirs) =
    /// [h_fwd ; h_rev] ⊙ dropout mask, where that is not just the forward states' rows
    /// (`None`): bidirectional layers, and dropout below the top. The top layer's has
    /// T_out steps.
    pub ys: Vec<Option<wgpu::Buffer>>,
    /// (dirs·T + 1, B, H) of the layer being swept: each direction's dz (T, B, H), then,
    /// bidirectional, the reverse direction's dz at each sequence's length (for dh0)
    pub dz: wgpu::Buffer,
    /// (T, B, H·dirs) gradient arriving from the head or the layer above; many-to-one has one
    /// more row, where the head's gradient arrives
    pub dh: wgpu::Buffer,
    /// (T_in, B, I) dense inputs or (T_in, B) token ids
    pub x: wgpu::Buffer,
    /// (T_out, B) class ids or (T_out, B, O) values
    pub y: wgpu::Buffer,
    /// (T_in, B, E) embedded inputs
    pub xe: wgpu::Buffer,
    /// (dirs, V, H) scratch of the token-table path (`token_table`): the tables E·W_ih^T
    /// before their copy into the parameters' tail, then the per-token sums of dz
    pub tok_table: Option<wgpu::Buffer>,
    /// (N, O) each
    pub logits: wgpu::Buffer,
    pub out: wgpu::Buffer,
    pub g: wgpu::Buffer,
    /// (N)
    pub loss_rows: wgpu::Buffer,
    /// (T_in, B, in_0)
    pub dx: wgpu::Buffer,
    /// (L·dirs, B, H) each
    pub dh0: wgpu::Buffer,
    pub last: wgpu::Buffer,
    /// the per-call words of the whole batch (`batch_info`): loss scale, dropout key, lengths
    pub info: wgpu::Buffer,
    /// (B, H) zeros, the initial state when the batch has none
    zeros: Vec<f32>,
    pub programs: HashMap<Mode, Program>,
}

/// Whether layer `l`'s output gets a buffer of its own (`Shape::ys`) rather than being read
/// from its forward states: with both directions side by side, or a dropout mask on it.
pub fn output_copied(cfg: &ModelConfig, l: usize) -> bool {
    cfg.bidirectional || (cfg.dropout.is_active() && l + 1 < cfg.layers)
}

/// Floats of an embedding's token tables, one (V, H) per direction; 0 without an embedding.
pub fn table_floats(cfg: &ModelConfig) -> usize {
    match cfg.input {
        Input::Tokens { vocab, embed: Some(_) } => cfg.dirs() * vocab * cfg.hidden,
        _ => 0,
    }
}

/// Whether chunks of `bc` sequences of T steps run layer 0's embedding through token tables
/// (E·W_ih^T, one V×E×H product, then gathers) rather than through the embedded inputs
/// (T_in·B_c×E×H products): when there are no more tokens in the vocabulary than rows
/// gathered, V ≤ T_in·B_c.
pub fn token_table(cfg: &ModelConfig, t: usize, bc: usize) -> bool {
    match cfg.input {
        Input::Tokens { vocab, embed: Some(_) } => vocab <= cfg.input_steps(t) * bc,
        _ => false,
    }
}

/// Width of one input step of one sequence in `x`: features, or one token id.
pub fn x_width(cfg: &ModelConfig) -> usize {
    match cfg.input {
        Input::Dense { size } => size,
        Input::Tokens { .. } => 1,
    }
}

/// Width of one target step of one sequence in `y`: one class id, or O values.
pub fn y_width(cfg: &ModelConfig) -> usize {
    if cfg.head == Head::Softmax {
        1
    } else {
        cfg.output
    }
}

impl Shape {
    /// Allocates the buffers of a (B, T) batch, split into the fewest equal chunks whose
    /// buffers each fit in a binding of `limit` bytes.
    fn new(ctx: &GpuContext, cfg: &ModelConfig, b: usize, t: usize, limit: u64) -> Result<Shape> {
        let (hd, o, rows) = (cfg.hidden, cfg.output, cfg.state_rows());
        let (t_in, w, dirs) = (cfg.input_steps(t), cfg.out_width(), cfg.dirs());
        let sc = Scale::PerBatch { batch: b };
        let dh_rows = t + (cfg.seq == SeqShape::ManyToOne) as usize;
        let dz_rows = dirs * t + (dirs - 1);
        // floats per sequence of the largest chunk-sized buffer; checked, with the whole
        // batch's and the states' sizes, so that no size product below can wrap
        let per_seq = [
            checked_product("states (T+1)·H", &[t + 1, hd])?,
            checked_product("layer outputs T·H·dirs", &[t, w])?,
            checked_product("dh (T+1)·H·dirs", &[dh_rows, w])?,
            checked_product("dz (dirs·T+1)·H", &[dz_rows, hd])?,
            checked_product("embedded inputs T·E", &[t_in, cfg.embed().unwrap_or(0)])?,
            checked_product("inputs T·I", &[t_in, cfg.in_width(0)])?,
            checked_product("outputs T·O", &[cfg.target_steps(t), o])?,
        ]
        .into_iter()
        .max()
        .unwrap_or(1)
        .max(1);
        checked_product("batch buffers B·T·width", &[b, per_seq, x_width(cfg).max(y_width(cfg))])?;
        checked_product("states L·dirs·B·H", &[rows, b, hd])?;
        let per_seq = per_seq as u64;
        let fit = ((limit / 4 / per_seq) as usize).clamp(1, b.max(1));
        let nchunks = b.div_ceil(fit).max(1);
        let bc = b.div_ceil(nchunks);
        let chunks: Vec<Chunk> = (0..nchunks)
            .map(|c| Chunk {
                b: bc.min(b - c * bc),
                b0: c * bc,
            })
            .collect();
        let (xw, yw) = (x_width(cfg), y_width(cfg));
        // every buffer but `io`, `info` and `last` is chunk-sized: B_c sequences, N_c = T_out·B_c rows
        let n = cfg.target_steps(t) * bc;
        ctx.scoped("allocating batch buffers", || {
            let io = if chunks.len() > 1 {
                Some(ChunkIo {
                    x: tensor(ctx, "inputs (T_in, B, I)", t_in * b * xw, sc)?,
                    y: tensor(ctx, "targets (T_out, B, O)", cfg.target_steps(t) * b * yw, sc)?,
                    h0: tensor(ctx, "initial states (L·dirs, B, H)", rows * b * hd, sc)?,
                })
            } else {
                None
            };
            let hs = (0..cfg.layers)
                .map(|l| {
                    (0..dirs)
                        .map(|d| {
                            let what = format!("hidden states (T+1, B, H) of layer {l} direction {d}");
                            tensor(ctx, &what, (t + 1) * bc * hd, sc)
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<_>>()?;
            let ys = (0..cfg.layers)
                .map(|l| {
                    let steps = if l + 1 == cfg.layers { cfg.target_steps(t) } else { t };
                    let what = format!("output (T, B, H·dirs) of layer {l}");
                    output_copied(cfg, l)
                        .then(|| tensor(ctx, &what, steps * bc * w, sc))
                        .transpose()
                })
                .collect::<Result<_>>()?;
            Ok(Shape {
                b,
                t,
                chunks,
                io,
                hs,
                ys,
                dz: tensor(ctx, "dz (dirs·T+1, B, H)", dz_rows * bc * hd, sc)?,
                dh: tensor(ctx, "dh (T, B, H·dirs)", dh_rows * bc * w, sc)?,
                x: tensor(ctx, "inputs (T_in, B, I)", t_in * bc * xw, sc)?,
                y: tensor(ctx, "targets (T_out, B, O)", n * yw, sc)?,
                xe: tensor(
                    ctx,
                    "embedded inputs (T_in, B, E)",
                    t_in * bc * cfg.embed().unwrap_or(0),
                    sc,
                )?,
                logits: tensor(ctx, "logits (N, O)", n * o, sc)?,
                out: tensor(ctx, "outputs (N, O)", n * o, sc)?,
                g: tensor(ctx, "dL/dlogits (N, O)", n * o, sc)?,
                loss_rows: tensor(ctx, "per-row losses (N)", n, sc)?,
                // dirs·V·H ≤ dirs·T_in·B_c·H: no larger than dz, so it fits a binding too
                tok_table: token_table(cfg, t, bc)
                    .then(|| tensor(ctx, "token tables (dirs, V, H)", table_floats(cfg), Scale::Model))
                    .transpose()?,
                dx: tensor(ctx, "dx (T_in, B, in_0)", t_in * bc * cfg.in_width(0), sc)?,
                dh0: tensor(ctx, "dh0 (L·dirs, B, H)", rows * bc * hd, sc)?,
                last: tensor(ctx, "final state (L·dirs, B, H)", rows * b * hd, sc)?,
                info: tensor(ctx, "lengths and per-call scalars (B)", batch_info::len(b), sc)?,
                zeros: vec![0.0; b * hd],
                programs: HashMap::new(),
            })
        })
    }

    /// The row of direction `d`'s state buffer that holds its state at step t: the forward
    /// direction's h_t at row t (h0 at row 0), the reverse direction's hr_t at row t - 1
    /// (its h0, hr_{T+1}, at row T), so both directions' T states are one block of rows.
    pub fn state_row(&self, d: usize, t: usize) -> usize {
        if d == 0 {
            t
        } else {
            t - 1
        }
    }

    /// The row of direction `d`'s initial state.
    pub fn h0_row(&self, d: usize) -> usize {
        if d == 0 {
            0
        } else {
            self.t
        }
    }

    /// Every direction's state buffer with its row r = l·dirs + d in (L·dirs, B, H) states
    /// and its direction d.
    pub fn directions(&self) -> impl Iterator<Item = (usize, usize, &wgpu::Buffer)> {
        self.hs.iter().flatten().enumerate().map(|(r, h)| {
            let dirs = self.hs[0].len();
            (r, r % dirs, h)
        })
    }

    /// The row of direction `d`'s final state: h_T, or hr_1 (PyTorch's h_n).
    pub fn final_row(&self, d: usize) -> usize {
        if d == 0 {
            self.t
        } else {
            0
        }
    }

    /// Bytes of every device buffer of this shape, programs' parameter blocks included.
    fn bytes(&self) -> u64 {
        let bufs = [
            &self.info,
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
        let states = self.hs.iter().flatten().chain(self.ys.iter().flatten());
        let states = states.chain(&self.tok_table);
        states.chain(bufs).chain(io).map(|b| b.size()).sum::<u64>()
            + self.programs.values().map(Program::uniform_bytes).sum::<u64>()
    }
}

/// Where a step's initial states come from.
pub enum H0<'a> {
    Zeros,
    /// (L·dirs, B, H) from the host
    Host(&'a [f32]),
    /// the carried final state of the previous training step, copied on the device
    Carried,
}

/// The (L·dirs, B, H) final state of the latest training step, kept where it is cheapest: on
/// the device while its shape is cached, on the host once that shape is evicted.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Carried {
    /// no training step yet
    #[default]
    None,
    /// in the `last` buffer of the cached shape (b, t)
    Device {
        b: usize,
        t: usize,
    },
    Host(Vec<f32>),
}

/// Batch shapes whose buffers and programs are kept: training and evaluation batches
/// alternate, and reallocating on every switch would allocate inside the training loop.
const SHAPE_CACHE: usize = 2;

#[derive(Default)]
pub struct Workspace {
    /// the most recently used shape first, at most SHAPE_CACHE of them
    shapes: Vec<Shape>,
    /// a smaller storage-binding limit than the adapter's, to exercise batch splitting
    binding_limit: Option<u64>,
    pub carried: Carried,
}

impl Workspace {
    /// Makes the (B, T) buffers current: reuses a cached shape, or allocates one and evicts
    /// the least recently used beyond SHAPE_CACHE (reading the carried state back first
    /// when it lives there).
    pub fn ensure(&mut self, ctx: &GpuContext, cfg: &ModelConfig, b: usize, t: usize, st: &mut Staging) -> Result<()> {
        if let Some(i) = self.shapes.iter().position(|s| s.b == b && s.t == t) {
            self.shapes[..=i].rotate_right(1);
            return Ok(());
        }
        if self.shapes.len() >= SHAPE_CACHE {
            let old = &self.shapes[self.shapes.len() - 1];
            if self.carried == (Carried::Device { b: old.b, t: old.t }) {
                self.carried = Carried::Host(self.read_carried(ctx, cfg, st)?);
            }
            self.shapes.pop();
        }
        let limit = [
            ctx.limits.max_storage_buffer_binding_size,
            ctx.limits.max_buffer_size,
            self.binding_limit.unwrap_or(u64::MAX),
        ]
        .into_iter()
        .min()
        .unwrap_or(u64::MAX);
        self.shapes.insert(0, Shape::new(ctx, cfg, b, t, limit)?);
        Ok(())
    }

    /// Pretends the adapter's largest storage binding is `bytes` (None: the real limit).
    /// Drops the cached shapes, so a carried state comes to the host first.
    pub fn set_binding_limit(
        &mut self,
        ctx: &GpuContext,
        cfg: &ModelConfig,
        bytes: Option<u64>,
        st: &mut Staging,
    ) -> Result<()> {
        if matches!(self.carried, Carried::Device { .. }) {
            self.carried = Carried::Host(self.read_carried(ctx, cfg, st)?);
        }
        self.shapes.clear();
        self.binding_limit = bytes;
        Ok(())
    }

    /// The current (most recently used) batch shape.
    pub fn current(&self) -> Result<&Shape> {
        self.shapes
            .first()
            .ok_or_else(|| Error::gpu("no batch shape allocated", "internal error"))
    }

    pub fn current_mut(&mut self) -> Result<&mut Shape> {
        self.shapes
            .first_mut()
            .ok_or_else(|| Error::gpu("no batch shape allocated", "internal error"))
    }

    pub fn bytes(&self) -> u64 {
        self.shapes.iter().map(Shape::bytes).sum()
    }

    /// Forgets every recorded program (the kernel choice changed); the buffers stay.
    pub fn drop_programs(&mut self) {
        self.shapes.iter_mut().for_each(|s| s.programs.clear());
    }

    /// The `last` buffer holding the carried state, if it is on the device.
    fn carried_buffer(&self) -> Option<&wgpu::Buffer> {
        let Carried::Device { b, t } = self.carried else {
            return None;
        };
        self.shapes.iter().find(|s| s.b == b && s.t == t).map(|s| &s.last)
    }

    /// The carried state on the host (empty before the first training step).
    pub fn read_carried(&self, ctx: &GpuContext, cfg: &ModelConfig, st: &mut Staging) -> Result<Vec<f32>> {
        match (&self.carried, self.carried_buffer()) {
            (Carried::Device { b, .. }, Some(last)) => {
                let len = cfg.state_rows() * b * cfg.hidden;
                Ok(st.read(ctx, "reading the final state", &[(last, 0, len)])?.remove(0))
            }
            (Carried::Host(v), _) => Ok(v.clone()),
            (Carried::None, _) => Ok(Vec::new()),
            (Carried::Device { .. }, None) => {
                Err(Error::gpu("the carried state's shape was evicted", "internal error"))
            }
        }
    }

    /// Queues the upload of the current shape's batch (inputs, targets, the per-call words
    /// `info`, and the initial states unless they are carried on the device): straight into
    /// the buffers the program reads, or, for a split batch, chunk-major into the
    /// full-batch copies that each chunk's ops copy from.
    pub fn upload_batch(
        &self,
        ctx: &GpuContext,
        cfg: &ModelConfig,
        batch: &Batch<f32>,
        h0: H0,
        info: &[u32],
    ) -> Result<()> {
        let sh = self.current()?;
        let bh = sh.b * cfg.hidden;
        upload(ctx, &sh.info, 0, info);
        let h0_row = |r: usize| match h0 {
            H0::Host(h0) => Some(&h0[r * bh..(r + 1) * bh]),
            H0::Zeros => Some(&sh.zeros[..]),
            H0::Carried => None,
        };
        let Some(io) = &sh.io else {
            match &batch.inputs {
                Inputs::Dense(x) => upload(ctx, &sh.x, 0, x),
                Inputs::Tokens(x) => upload(ctx, &sh.x, 0, x),
            }
            match &batch.targets {
                Targets::Classes(y) => upload(ctx, &sh.y, 0, y),
                Targets::Values(y) => upload(ctx, &sh.y, 0, y),
            }
            for (r, d, h) in sh.directions() {
                if let Some(src) = h0_row(r) {
                    upload(ctx, h, sh.h0_row(d) * bh, src);
                }
            }
            return Ok(());
        };
        let (t_in, t_out) = (cfg.input_steps(sh.t), cfg.target_steps(sh.t));
        match &batch.inputs {
            Inputs::Dense(x) => upload(ctx, &io.x, 0, &chunk_major(x, t_in, sh.b, &sh.chunks)),
            Inputs::Tokens(x) => upload(ctx, &io.x, 0, &chunk_major(x, t_in, sh.b, &sh.chunks)),
        }
        match &batch.targets {
            Targets::Classes(y) => upload(ctx, &io.y, 0, &chunk_major(y, t_out, sh.b, &sh.chunks)),
            Targets::Values(y) => upload(ctx, &io.y, 0, &chunk_major(y, t_out, sh.b, &sh.chunks)),
        }
        for r in 0..cfg.state_rows() {
            if let Some(src) = h0_row(r) {
                upload(ctx, &io.h0, r * bh, src);
            }
        }
        Ok(())
    }

    /// Records the copies of the carried (L·dirs, B, H) state into the current shape's
    /// initial states: the h0 row of each direction's states, or the full-batch copy a split
    /// batch reads.
    pub fn record_carry_in(&self, cfg: &ModelConfig, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let sh = self.current()?;
        let src = self
            .carried_buffer()
            .ok_or_else(|| Error::gpu("no carried state on the device", "internal error"))?;
        let bh = (sh.b * cfg.hidden) as u64 * 4;
        match &sh.io {
            Some(io) => enc.copy_buffer_to_buffer(src, 0, &io.h0, 0, cfg.state_rows() as u64 * bh),
            None => {
                for (r, d, h) in sh.directions() {
                    enc.copy_buffer_to_buffer(src, r as u64 * bh, h, sh.h0_row(d) as u64 * bh, bh);
                }
            }
        }
        Ok(())
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
