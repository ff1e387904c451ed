//! The WGSL kernels (one per `shaders/*.wgsl` file, named after its CPU twin), compiled once
//! per device, and one builder per kernel that turns sizes and element offsets into a
//! `Dispatch` (parameters, buffers, workgroup counts).

use crate::error::{Error, Result};

use super::context::GpuContext;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Matmul,
    MatmulBlocked,
    MatmulSg,
    RnnStepForward,
    RnnStepBackward,
    RnnStepForwardSg,
    RnnStepBackwardSg,
    SoftmaxCe,
    Mse,
    ReduceSum,
    ColSum,
    EmbedGather,
    TokenScatter,
    ClipValue,
    Sgd,
    Adam,
    Adagrad,
}

/// Every kernel's shader file with its source (the file alone, without its preludes: see
/// `Kernel::source`), for the registry and the naga validation test.
pub const SHADERS: &[(&str, &str)] = &[
    ("matmul.wgsl", include_str!("../../shaders/matmul.wgsl")),
    ("matmul_blocked.wgsl", include_str!("../../shaders/matmul_blocked.wgsl")),
    ("matmul_sg.wgsl", include_str!("../../shaders/matmul_sg.wgsl")),
    (
        "rnn_step_forward.wgsl",
        include_str!("../../shaders/rnn_step_forward.wgsl"),
    ),
    (
        "rnn_step_backward.wgsl",
        include_str!("../../shaders/rnn_step_backward.wgsl"),
    ),
    (
        "rnn_step_forward_sg.wgsl",
        include_str!("../../shaders/rnn_step_forward_sg.wgsl"),
    ),
    (
        "rnn_step_backward_sg.wgsl",
        include_str!("../../shaders/rnn_step_backward_sg.wgsl"),
    ),
    ("softmax_ce.wgsl", include_str!("../../shaders/softmax_ce.wgsl")),
    ("mse.wgsl", include_str!("../../shaders/mse.wgsl")),
    ("reduce_sum.wgsl", include_str!("../../shaders/reduce_sum.wgsl")),
    ("col_sum.wgsl", include_str!("../../shaders/col_sum.wgsl")),
    ("embed_gather.wgsl", include_str!("../../shaders/embed_gather.wgsl")),
    ("token_scatter.wgsl", include_str!("../../shaders/token_scatter.wgsl")),
    ("clip_value.wgsl", include_str!("../../shaders/clip_value.wgsl")),
    ("sgd.wgsl", include_str!("../../shaders/sgd.wgsl")),
    ("adam.wgsl", include_str!("../../shaders/adam.wgsl")),
    ("adagrad.wgsl", include_str!("../../shaders/adagrad.wgsl")),
];

/// WGSL has no #include: code shared by several kernels lives in `shaders/common/*.wgsl`
/// and is prepended to each kernel file that uses it (`Kernel::source`). These files hold
/// only functions and `var<private>` state; bindings stay in the kernel files, and a shared
/// file calls back into functions each including kernel defines (see the files' headers).
/// A prelude alone is not a valid module (no entry point, unresolved calls).
pub const SG_TILE_WGSL: (&str, &str) = ("common/sg_tile.wgsl", include_str!("../../shaders/common/sg_tile.wgsl"));
/// The recurrent steps' activations and their derivatives.
pub const RNN_ACT_WGSL: (&str, &str) = ("common/rnn_act.wgsl", include_str!("../../shaders/common/rnn_act.wgsl"));

impl Kernel {
    pub const ALL: [Kernel; 17] = [
        Kernel::Matmul,
        Kernel::MatmulBlocked,
        Kernel::MatmulSg,
        Kernel::RnnStepForward,
        Kernel::RnnStepBackward,
        Kernel::RnnStepForwardSg,
        Kernel::RnnStepBackwardSg,
        Kernel::SoftmaxCe,
        Kernel::Mse,
        Kernel::ReduceSum,
        Kernel::ColSum,
        Kernel::EmbedGather,
        Kernel::TokenScatter,
        Kernel::ClipValue,
        Kernel::Sgd,
        Kernel::Adam,
        Kernel::Adagrad,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// (file name, WGSL source)
    pub fn shader(self) -> (&'static str, &'static str) {
        SHADERS[self.index()]
    }

    /// The shared files prepended to this kernel's file, in order.
    pub fn preludes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kernel::MatmulSg => &[SG_TILE_WGSL],
            Kernel::RnnStepForward | Kernel::RnnStepBackward => &[RNN_ACT_WGSL],
            Kernel::RnnStepForwardSg | Kernel::RnnStepBackwardSg => &[RNN_ACT_WGSL, SG_TILE_WGSL],
            _ => &[],
        }
    }

    /// The module source the pipeline is compiled from: the preludes, then the kernel file.
    /// Joined once per pipeline, with no per-shape templating (sizes are uniforms). Naga's
    /// line numbers in errors count from the start of this string, not of the kernel file.
    pub fn source(self) -> String {
        let mut src = String::new();
        for (_, prelude) in self.preludes() {
            src.push_str(prelude);
            src.push('\n');
        }
        src.push_str(self.shader().1);
        src
    }

    /// Kernels that use subgroup built-ins: compiled only on devices with the SUBGROUP
    /// feature, each with a plain twin that needs nothing.
    pub fn needs_subgroups(self) -> bool {
        matches!(
            self,
            Kernel::MatmulSg | Kernel::RnnStepForwardSg | Kernel::RnnStepBackwardSg
        )
    }
}

/// Whether the subgroup kernels can run here: the feature, and subgroups of a multiple of 8
/// lanes (their teams of 8 must not straddle subgroups) that fill 64-invocation workgroups.
pub fn subgroups_usable(ctx: &GpuContext) -> bool {
    ctx.device.features().contains(wgpu::Features::SUBGROUP)
        && ctx.info.subgroup_min_size >= 8
        && ctx.info.subgroup_max_size <= 64
}

/// The compiled pipelines, one per kernel, in `Kernel::ALL` order (`None`: a subgroup
/// kernel on a device without usable subgroups).
pub struct Kernels {
    pipelines: Vec<Option<wgpu::ComputePipeline>>,
    /// the fastest matrix product and recurrent step kernels this device runs
    pub matmul: Kernel,
    pub step_forward: Kernel,
    pub step_backward: Kernel,
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        ctx.scoped("compiling shaders", || {
            let sg = subgroups_usable(ctx);
            let pipelines = Kernel::ALL
                .iter()
                .map(|k| {
                    if k.needs_subgroups() && !sg {
                        return None;
                    }
                    let file = k.shader().0;
                    let module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(file),
                        source: wgpu::ShaderSource::Wgsl(k.source().into()),
                    });
                    // The layout is derived from the shader: every binding is whole buffers
                    // plus one uniform slice, the same for all dispatches of a kernel.
                    Some(ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(file),
                        layout: None,
                        module: &module,
                        entry_point: Some("main"),
                        compilation_options: Default::default(),
                        cache: None,
                    }))
                })
                .collect();
            let pick = |fast, plain| if sg { fast } else { plain };
            Ok(Kernels {
                pipelines,
                matmul: pick(Kernel::MatmulSg, Kernel::MatmulBlocked),
                step_forward: pick(Kernel::RnnStepForwardSg, Kernel::RnnStepForward),
                step_backward: pick(Kernel::RnnStepBackwardSg, Kernel::RnnStepBackward),
            })
        })
    }

    pub fn pipeline(&self, k: Kernel) -> Result<&wgpu::ComputePipeline> {
        self.pipelines[k.index()].as_ref().ok_or_else(|| {
            Error::gpu(
                format!("{k:?} needs subgroups of 8 to 64 lanes, which this adapter lacks"),
                "use the plain kernel variant",
            )
        })
    }

    /// Whether `k` can run on this device.
    pub fn available(&self, k: Kernel) -> bool {
        self.pipelines[k.index()].is_some()
    }
}

/// Bytes of one dispatch's parameter block in the uniform buffer (16 words).
pub const PARAM_WORDS: usize = 16;

/// One word of a parameter block: every WGSL parameter struct is a flat list of 4-byte
/// u32 / f32 fields, so the block is just their bits in declaration order.
#[derive(Clone, Copy, Debug)]
pub enum W {
    U(usize),
    F(f32),
}

/// One kernel launch: parameters, the buffers bound at bindings 1.. in order, and the
/// workgroup counts.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub kernel: Kernel,
    pub params: [u32; PARAM_WORDS],
    pub buffers: Vec<wgpu::Buffer>,
    pub groups: [u32; 3],
}

/// A buffer and an element offset into it.
#[derive(Clone, Copy, Debug)]
pub struct At<'a> {
    pub buf: &'a wgpu::Buffer,
    pub off: usize,
}

pub fn at(buf: &wgpu::Buffer, off: usize) -> At<'_> {
    At { buf, off }
}

/// Largest workgroup count per dimension every adapter allows.
const MAX_GROUPS: u32 = 65535;

fn words(ws: &[W]) -> Result<[u32; PARAM_WORDS]> {
    let mut out = [0u32; PARAM_WORDS];
    for (o, w) in out.iter_mut().zip(ws) {
        *o = match *w {
            W::U(v) => u32::try_from(v).map_err(|_| {
                Error::gpu(
                    format!("kernel parameter {v} does not fit in 32 bits"),
                    "use a smaller batch or model",
                )
            })?,
            W::F(v) => v.to_bits(),
        };
    }
    Ok(out)
}

/// Workgroups for `n` independent items at `per_group` items per workgroup, spread over x
/// and y when one dimension is not enough (the shaders fold gid.y back in).
fn groups_1d(n: usize, per_group: usize) -> Result<[u32; 3]> {
    let g = n.div_ceil(per_group).max(1);
    let x = g.min(MAX_GROUPS as usize);
    let y = g.div_ceil(x);
    if y > MAX_GROUPS as usize {
        return Err(Error::gpu(
            format!("{n} work items exceed the dispatch limit"),
            "use a smaller batch",
        ));
    }
    Ok([x as u32, y as u32, 1])
}

/// Workgroups for the step kernels: 8×8 invocations of 4×4 (B, H) blocks each; batch
/// tiles beyond the y limit spill into z.
fn groups_tiles(batch: usize, hidden: usize) -> Result<[u32; 3]> {
    let gx = hidden.div_ceil(32).max(1);
    let gy_total = batch.div_ceil(32).max(1);
    let gy = gy_total.min(MAX_GROUPS as usize);
    let gz = gy_total.div_ceil(gy);
    if gx > MAX_GROUPS as usize || gz > MAX_GROUPS as usize {
        return Err(Error::gpu(
            format!("a recurrent step of B={batch}, H={hidden} exceeds the dispatch limit"),
            "use a smaller batch or hidden size",
        ));
    }
    Ok([gx as u32, gy as u32, gz as u32])
}

/// Workgroups for the subgroup kernels: a subgroup of S lanes owns a 16 × 2S tile of the
/// (m, n) output, 64 / S subgroups per workgroup, tiles listed in one dimension. S is only
/// known to lie in 8..=64 (a power of two), so enough workgroups for the worst S are launched;
/// the surplus subgroups clamp their loads and write nothing.
fn groups_sg(m: usize, n: usize) -> Result<[u32; 3]> {
    let worst = [8, 16, 32, 64]
        .iter()
        .map(|&s| (m.div_ceil(16) * n.div_ceil(2 * s)).div_ceil(64 / s))
        .max()
        .unwrap_or(1);
    groups_1d(worst, 1)
}

fn dispatch(kernel: Kernel, params: &[W], bufs: &[&wgpu::Buffer], groups: [u32; 3]) -> Result<Dispatch> {
    Ok(Dispatch {
        kernel,
        params: words(params)?,
        buffers: bufs.iter().map(|&b| b.clone()).collect(),
        groups,
    })
}

/// C (m, n) = beta·C + op(A) (m, k) · op(B) (k, n); `ta`/`tb` = operand stored transposed.
/// Twin of `cpu::gemm`. `kernel` is `Matmul` (naive), `MatmulBlocked` (4×4 per invocation)
/// or `MatmulSg` (16×2 per lane, A shared by subgroup broadcasts).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: At,
    ta: bool,
    b: At,
    tb: bool,
    accumulate: bool,
    c: At,
) -> Result<Dispatch> {
    let (tile_n, tile_m) = match kernel {
        Kernel::Matmul => (16, 16),
        Kernel::MatmulBlocked => (32, 32),
        Kernel::MatmulSg => {
            let p = matmul_params(m, n, k, &a, ta, &b, tb, accumulate, &c);
            return dispatch(kernel, &p, &[a.buf, b.buf, c.buf], groups_sg(m, n)?);
        }
        _ => {
            return Err(Error::gpu(
                format!("{kernel:?} is not a matmul kernel"),
                "internal error",
            ))
        }
    };
    let gx = n.div_ceil(tile_n).max(1);
    let gy_total = m.div_ceil(tile_m).max(1);
    let gy = gy_total.min(MAX_GROUPS as usize);
    let gz = gy_total.div_ceil(gy);
    if gx > MAX_GROUPS as usize || gz > MAX_GROUPS as usize {
        return Err(Error::gpu(
            format!("matmul {m}x{n} exceeds the dispatch limit"),
            "use a smaller batch or model",
        ));
    }
    let p = matmul_params(m, n, k, &a, ta, &b, tb, accumulate, &c);
    dispatch(kernel, &p, &[a.buf, b.buf, c.buf], [gx as u32, gy as u32, gz as u32])
}

/// A matmul dispatch that also writes the row sums Σ_q op(A)[i, q] at elements `rs_off + i`
/// and `rs2_off + i` of C's buffer (added to the first when the product accumulates): the
/// bias gradients Σ dz beside dW = dz^T · h, in the same dispatch.
pub fn with_row_sums(mut d: Dispatch, rs_off: usize, rs2_off: usize) -> Result<Dispatch> {
    if !matches!(d.kernel, Kernel::Matmul | Kernel::MatmulBlocked | Kernel::MatmulSg) {
        return Err(Error::gpu(
            format!("{:?} is not a matmul kernel", d.kernel),
            "internal error",
        ));
    }
    let w = words(&[W::U(1), W::U(rs_off), W::U(rs2_off)])?;
    d.params[9..12].copy_from_slice(&w[..3]);
    Ok(d)
}

#[allow(clippy::too_many_arguments)]
fn matmul_params(m: usize, n: usize, k: usize, a: &At, ta: bool, b: &At, tb: bool, accumulate: bool, c: &At) -> [W; 9] {
    [
        W::U(m),
        W::U(n),
        W::U(k),
        W::U(a.off),
        W::U(b.off),
        W::U(c.off),
        W::U(ta as usize),
        W::U(tb as usize),
        W::U(accumulate as usize),
    ]
}

/// Activation code shared by the step kernels.
pub fn act_code(a: crate::config::Activation) -> usize {
    match a {
        crate::config::Activation::Tanh => 0,
        crate::config::Activation::Sigmoid => 1,
        crate::config::Activation::Relu => 2,
    }
}

/// Workgroups for a step kernel: `RnnStep*` (8×8 invocations of 4×4 blocks) or `RnnStep*Sg`.
fn step_groups(kernel: Kernel, batch: usize, hidden: usize) -> Result<[u32; 3]> {
    match kernel {
        Kernel::RnnStepForward | Kernel::RnnStepBackward => groups_tiles(batch, hidden),
        Kernel::RnnStepForwardSg | Kernel::RnnStepBackwardSg => groups_sg(batch, hidden),
        _ => Err(Error::gpu(
            format!("{kernel:?} is not a recurrent step kernel"),
            "internal error",
        )),
    }
}

/// Where a forward step finds its input pre-activation pre_t.
#[derive(Clone, Copy, Debug)]
pub enum Pre<'a> {
    /// no input at this step: pre_t = 0
    None,
    /// already in row t of `h` (written by the batched input projection)
    InPlace,
    /// one-hot tokens: pre_t[b, j] = W_ih[j, tok[tok.off + b]], W_ih (H, V) at `wih_off` in `w`
    Tokens { tok: At<'a>, vocab: usize, wih_off: usize },
}

/// h_t = f(pre_t + b_ih + b_hh + W_hh h_{t-1}) in the layer buffer `h` (T+1, B, H).
/// `w` holds W_hh and the biases at element offsets `w_off`, `bih_off`, `bhh_off`.
/// `kernel` is `RnnStepForward` or `RnnStepForwardSg` (same bindings and parameters).
#[allow(clippy::too_many_arguments)]
pub fn rnn_step_forward(
    kernel: Kernel,
    batch: usize,
    hidden: usize,
    w: &wgpu::Buffer,
    w_off: usize,
    bih_off: usize,
    bhh_off: usize,
    h: &wgpu::Buffer,
    cur_off: usize,
    prev_off: usize,
    pre: Pre,
    act: usize,
) -> Result<Dispatch> {
    // without token inputs `w` fills the unread token binding (never `h`, bound read-write)
    let (mode, tok, vocab, wih_off) = match pre {
        Pre::None => (0, at(w, 0), 1, 0),
        Pre::InPlace => (1, at(w, 0), 1, 0),
        Pre::Tokens { tok, vocab, wih_off } => (2, tok, vocab, wih_off),
    };
    let p = [
        W::U(batch),
        W::U(hidden),
        W::U(cur_off),
        W::U(prev_off),
        W::U(w_off),
        W::U(bih_off),
        W::U(bhh_off),
        W::U(mode),
        W::U(act),
        W::U(tok.off),
        W::U(vocab),
        W::U(wih_off),
    ];
    dispatch(kernel, &p, &[w, h, tok.buf], step_groups(kernel, batch, hidden)?)
}

/// dz_t = (dh_t + W_hh^T dz_{t+1}) ⊙ f'(h_t); `next_off` = None at t = T.
/// `kernel` is `RnnStepBackward` or `RnnStepBackwardSg` (same bindings and parameters).
#[allow(clippy::too_many_arguments)]
pub fn rnn_step_backward(
    kernel: Kernel,
    batch: usize,
    hidden: usize,
    w: At,
    dh: At,
    h: At,
    dz: &wgpu::Buffer,
    dz_off: usize,
    next_off: Option<usize>,
    act: usize,
) -> Result<Dispatch> {
    let p = [
        W::U(batch),
        W::U(hidden),
        W::U(dh.off),
        W::U(h.off),
        W::U(dz_off),
        W::U(next_off.unwrap_or(0)),
        W::U(next_off.is_some() as usize),
        W::U(w.off),
        W::U(act),
    ];
    dispatch(
        kernel,
        &p,
        &[w.buf, dh.buf, h.buf, dz],
        step_groups(kernel, batch, hidden)?,
    )
}

/// Softmax + cross-entropy + gradient for `rows` rows of `classes` logits (bias at
/// `bias`); `loss_rows` gets -log p[y] per row, `g` the gradient times `scale`.
#[allow(clippy::too_many_arguments)]
pub fn softmax_ce(
    rows: usize,
    classes: usize,
    bias: At,
    scale: f32,
    logits: &wgpu::Buffer,
    y: &wgpu::Buffer,
    probs: &wgpu::Buffer,
    g: &wgpu::Buffer,
    loss_rows: &wgpu::Buffer,
) -> Result<Dispatch> {
    let p = [W::U(rows), W::U(classes), W::U(bias.off), W::F(scale)];
    dispatch(
        Kernel::SoftmaxCe,
        &p,
        &[bias.buf, logits, y, probs, g, loss_rows],
        groups_1d(rows, 64)?,
    )
}

/// Linear (or sigmoid) head + MSE; `gscale` = reduction scale · 2 / O; `loss_rows` gets
/// Σ_k (y_hat - y)² per row.
#[allow(clippy::too_many_arguments)]
pub fn mse(
    rows: usize,
    outputs: usize,
    bias: At,
    sigmoid_head: bool,
    gscale: f32,
    logits: &wgpu::Buffer,
    y: &wgpu::Buffer,
    y_hat: &wgpu::Buffer,
    g: &wgpu::Buffer,
    loss_rows: &wgpu::Buffer,
) -> Result<Dispatch> {
    let p = [
        W::U(rows),
        W::U(outputs),
        W::U(bias.off),
        W::U(sigmoid_head as usize),
        W::F(gscale),
    ];
    dispatch(
        Kernel::Mse,
        &p,
        &[bias.buf, logits, y, y_hat, g, loss_rows],
        groups_1d(rows, 64)?,
    )
}

/// One sum of `reduce_sums`: dst[dst.off] = factor · Σ src[src.off..+n] (of squares when
/// `square`), added to dst[dst.off] when `accumulate`.
#[derive(Clone, Copy, Debug)]
pub struct Sum<'a> {
    pub n: usize,
    pub src: At<'a>,
    pub square: bool,
    pub factor: f32,
    pub dst: At<'a>,
    pub accumulate: bool,
}

impl Sum<'_> {
    /// The WGSL `Sum` struct: 6 words and 2 of padding (a 32-byte uniform array stride).
    fn words(&self) -> [W; 8] {
        [
            W::U(self.n),
            W::U(self.src.off),
            W::U(self.dst.off),
            W::U(self.square as usize),
            W::F(self.factor),
            W::U(self.accumulate as usize),
            W::U(0),
            W::U(0),
        ]
    }
}

/// One sum in one workgroup (see `Sum`).
pub fn reduce_sum(n: usize, src: At, square: bool, factor: f32, dst: At, accumulate: bool) -> Result<Dispatch> {
    let s = Sum {
        n,
        src,
        square,
        factor,
        dst,
        accumulate,
    };
    let mut p = s.words().to_vec();
    p.extend(s.words());
    dispatch(Kernel::ReduceSum, &p, &[src.buf, dst.buf, src.buf], [1, 1, 1])
}

/// Two independent sums in one dispatch (one workgroup each); both write into `first`'s
/// destination buffer.
pub fn reduce_sums(first: Sum, second: Sum) -> Result<Dispatch> {
    if first.dst.buf != second.dst.buf {
        return Err(Error::gpu(
            "reduce_sums: the two sums need one destination buffer",
            "internal error",
        ));
    }
    let mut p = first.words().to_vec();
    p.extend(second.words());
    dispatch(
        Kernel::ReduceSum,
        &p,
        &[first.src.buf, first.dst.buf, second.src.buf],
        [2, 1, 1],
    )
}

/// dst (cols) = column sums of src (rows, cols) (plus dst when `accumulate`), written at
/// `dst.off` and at `dst2_off` (pass `dst.off` again for one copy).
/// The engine gets bias gradients from `with_row_sums` instead (no dispatch of their own);
/// this kernel stays as their standalone reference, like the naive matmul.
pub fn col_sum(rows: usize, cols: usize, src: At, dst: At, dst2_off: usize, accumulate: bool) -> Result<Dispatch> {
    let p = [
        W::U(rows),
        W::U(cols),
        W::U(src.off),
        W::U(dst.off),
        W::U(dst2_off),
        W::U(accumulate as usize),
    ];
    dispatch(Kernel::ColSum, &p, &[src.buf, dst.buf], groups_1d(cols, 64)?)
}

/// out (rows, cols)[r, c] = table[tok[r]·stride_v + c·stride_c].
pub fn embed_gather(
    rows: usize,
    cols: usize,
    table: At,
    stride_v: usize,
    stride_c: usize,
    tok: &wgpu::Buffer,
    out: At,
) -> Result<Dispatch> {
    let p = [
        W::U(rows),
        W::U(cols),
        W::U(table.off),
        W::U(stride_v),
        W::U(stride_c),
        W::U(out.off),
    ];
    dispatch(
        Kernel::EmbedGather,
        &p,
        &[table.buf, tok, out.buf],
        groups_1d(rows * cols, 64)?,
    )
}

/// out[tok[r]·stride_v + c·stride_c] = Σ_r src (rows, cols)[r, c] (the region is zeroed first
/// unless `accumulate`).
#[allow(clippy::too_many_arguments)]
pub fn token_scatter(
    rows: usize,
    cols: usize,
    vocab: usize,
    src: At,
    tok: &wgpu::Buffer,
    out: At,
    stride_v: usize,
    stride_c: usize,
    accumulate: bool,
) -> Result<Dispatch> {
    let p = [
        W::U(rows),
        W::U(cols),
        W::U(vocab),
        W::U(src.off),
        W::U(out.off),
        W::U(stride_v),
        W::U(stride_c),
        W::U(accumulate as usize),
    ];
    dispatch(Kernel::TokenScatter, &p, &[src.buf, tok, out.buf], groups_1d(cols, 64)?)
}

/// g = clamp(g, -limit, limit) over n elements.
pub fn clip_value(n: usize, g: At, limit: f32) -> Result<Dispatch> {
    let p = [W::U(n), W::U(g.off), W::F(limit)];
    dispatch(Kernel::ClipValue, &p, &[g.buf], groups_1d(n, 64)?)
}

/// Clipping by global norm inside the optimiser kernels: `Some((max_norm, index of Σ g²
/// in the scalars buffer))`.
pub type NormClip = Option<(f32, usize)>;

fn clip_words(c: NormClip) -> [W; 3] {
    match c {
        Some((max, idx)) => [W::U(1), W::F(max), W::U(idx)],
        None => [W::U(0), W::F(0.0), W::U(0)],
    }
}

/// SGD; `vel` is the velocity buffer (any buffer when `momentum` is 0).
#[allow(clippy::too_many_arguments)]
pub fn sgd(
    n: usize,
    lr: f32,
    wd: f32,
    momentum: f32,
    clip: NormClip,
    w: &wgpu::Buffer,
    g: &wgpu::Buffer,
    vel: &wgpu::Buffer,
    scalars: &wgpu::Buffer,
) -> Result<Dispatch> {
    let c = clip_words(clip);
    let p = [
        W::U(n),
        W::F(lr),
        W::F(wd),
        W::F(momentum),
        W::U((momentum != 0.0) as usize),
        c[0],
        c[1],
        c[2],
    ];
    dispatch(Kernel::Sgd, &p, &[w, g, vel, scalars], groups_1d(n, 64)?)
}

/// Adam; `bc1`, `bc2` = 1 - β^k for this step.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    n: usize,
    lr: f32,
    wd: f32,
    (b1, b2, eps): (f32, f32, f32),
    (bc1, bc2): (f32, f32),
    clip: NormClip,
    w: &wgpu::Buffer,
    g: &wgpu::Buffer,
    m: &wgpu::Buffer,
    v: &wgpu::Buffer,
    scalars: &wgpu::Buffer,
) -> Result<Dispatch> {
    let c = clip_words(clip);
    let p = [
        W::U(n),
        W::F(lr),
        W::F(wd),
        W::F(b1),
        W::F(b2),
        W::F(eps),
        W::F(bc1),
        W::F(bc2),
        c[0],
        c[1],
        c[2],
    ];
    dispatch(Kernel::Adam, &p, &[w, g, m, v, scalars], groups_1d(n, 64)?)
}

/// Adagrad; `s` the running sum of g².
#[allow(clippy::too_many_arguments)]
pub fn adagrad(
    n: usize,
    lr: f32,
    wd: f32,
    eps: f32,
    clip: NormClip,
    w: &wgpu::Buffer,
    g: &wgpu::Buffer,
    s: &wgpu::Buffer,
    scalars: &wgpu::Buffer,
) -> Result<Dispatch> {
    let c = clip_words(clip);
    let p = [W::U(n), W::F(lr), W::F(wd), W::F(eps), c[0], c[1], c[2]];
    dispatch(Kernel::Adagrad, &p, &[w, g, s, scalars], groups_1d(n, 64)?)
}
