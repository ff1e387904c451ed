//! The WGSL kernels (one per `shaders/*.wgsl` file, named after its CPU twin), compiled once
//! per device. `params` mirrors each shader's `struct P`; `launch` (with `matmul` for the
//! matrix products, `rnn` for the recurrent steps and heads, `update` for the optimisers)
//! turns sizes and element offsets into a `Dispatch` (parameters, buffers, workgroup counts).

mod launch;
mod matmul;
pub mod params;
mod rnn;
mod seq;
mod update;

use std::any::Any;
use std::sync::Arc;

pub use launch::*;
pub use matmul::*;
pub use rnn::*;
pub use seq::*;
pub use update::*;

use super::context::GpuContext;
use crate::config::str_enum;
use crate::error::{Error, Result};

/// WGSL has no #include: code shared by several kernels lives in `shaders/common/*.wgsl`
/// and is prepended to each kernel file that uses it (`Kernel::source`). A shared file calls
/// back into functions and constants each including kernel defines (see the files' headers);
/// bindings stay in the kernel files, except where several kernels differ only in constants
/// (`MM_TILE_MATMUL_WGSL`). A prelude alone is not a valid module (no entry point,
/// unresolved calls).
pub const SG_TILE_WGSL: (&str, &str) = (
    "common/sg_tile.wgsl",
    include_str!("../../../shaders/common/sg_tile.wgsl"),
);
/// The recurrent steps' activations and their derivatives.
pub const RNN_ACT_WGSL: (&str, &str) = (
    "common/rnn_act.wgsl",
    include_str!("../../../shaders/common/rnn_act.wgsl"),
);
/// The slots of the per-call `info` buffer (`gpu::batch_info`): loss scale, dropout key,
/// sequence lengths.
pub const BATCH_INFO_WGSL: (&str, &str) = (
    "common/batch_info.wgsl",
    include_str!("../../../shaders/common/batch_info.wgsl"),
);
/// The dropout masks, the twin of `crate::dropout`.
pub const DROPOUT_WGSL: (&str, &str) = (
    "common/dropout.wgsl",
    include_str!("../../../shaders/common/dropout.wgsl"),
);
/// The workgroup-tiled matrix product of the `MatmulTile*` and `RnnStep*Tile` kernels (each
/// file gives sizes, loads and the epilogue).
pub const MM_TILE_WGSL: (&str, &str) = (
    "common/mm_tile.wgsl",
    include_str!("../../../shaders/common/mm_tile.wgsl"),
);
/// The `MatmulTile*` kernels' parameters, bindings, loads and store (each file gives sizes).
pub const MM_TILE_MATMUL_WGSL: (&str, &str) = (
    "common/mm_tile_matmul.wgsl",
    include_str!("../../../shaders/common/mm_tile_matmul.wgsl"),
);
/// The forward step kernels' parameters, bindings and epilogue (their variants differ only
/// in how they compute the recurrent product).
pub const RNN_STEP_FORWARD_IO_WGSL: (&str, &str) = (
    "common/rnn_step_forward_io.wgsl",
    include_str!("../../../shaders/common/rnn_step_forward_io.wgsl"),
);
/// The reverse step kernels' parameters, bindings and epilogue.
pub const RNN_STEP_BACKWARD_IO_WGSL: (&str, &str) = (
    "common/rnn_step_backward_io.wgsl",
    include_str!("../../../shaders/common/rnn_step_backward_io.wgsl"),
);
/// The optimisers' check of the values they write for non-finite ones.
pub const PROBE_WGSL: (&str, &str) = ("common/probe.wgsl", include_str!("../../../shaders/common/probe.wgsl"));
/// The block layout, W_hh tile and accumulators of the whole-sequence kernels.
pub const SEQ_BLOCK_WGSL: (&str, &str) = (
    "common/seq_block.wgsl",
    include_str!("../../../shaders/common/seq_block.wgsl"),
);
/// Every shared file, for the tests that check each is used.
pub const PRELUDES: &[(&str, &str)] = &[
    SG_TILE_WGSL,
    RNN_ACT_WGSL,
    BATCH_INFO_WGSL,
    DROPOUT_WGSL,
    MM_TILE_WGSL,
    MM_TILE_MATMUL_WGSL,
    RNN_STEP_FORWARD_IO_WGSL,
    RNN_STEP_BACKWARD_IO_WGSL,
    PROBE_WGSL,
    SEQ_BLOCK_WGSL,
];

/// The one list of kernels: each line gives the variant, its shader file, the preludes
/// prepended to it and whether it uses subgroup built-ins. The enum, `SHADERS` and
/// `Kernel::ALL` are generated from it, so they cannot drift apart.
macro_rules! kernel_table {
    ($($kernel:ident => $file:literal, [$($prelude:ident),*], subgroups: $sg:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel {
            $($kernel),*
        }

        /// Every kernel's shader file with its source (the file alone, without its
        /// preludes: see `Kernel::source`), in `Kernel::ALL` order.
        pub const SHADERS: &[(&str, &str)] = &[
            $(($file, include_str!(concat!("../../../shaders/", $file)))),*
        ];

        impl Kernel {
            pub const ALL: [Kernel; SHADERS.len()] = [$(Kernel::$kernel),*];

            /// The shared files prepended to this kernel's file, in order.
            pub fn preludes(self) -> &'static [(&'static str, &'static str)] {
                match self {
                    $(Kernel::$kernel => &[$($prelude),*]),*
                }
            }

            /// Kernels that use subgroup built-ins: compiled only on devices with the
            /// SUBGROUP feature, each with a plain twin that needs nothing.
            pub fn needs_subgroups(self) -> bool {
                match self {
                    $(Kernel::$kernel => $sg),*
                }
            }
        }
    };
}

kernel_table! {
    Matmul => "matmul.wgsl", [], subgroups: false;
    MatmulBlocked => "matmul_blocked.wgsl", [], subgroups: false;
    MatmulSg => "matmul_sg.wgsl", [SG_TILE_WGSL], subgroups: true;
    MatmulTile32 => "matmul_tile32.wgsl", [MM_TILE_WGSL, MM_TILE_MATMUL_WGSL], subgroups: false;
    MatmulTile64 => "matmul_tile64.wgsl", [MM_TILE_WGSL, MM_TILE_MATMUL_WGSL], subgroups: false;
    MatmulTile128 => "matmul_tile128.wgsl", [MM_TILE_WGSL, MM_TILE_MATMUL_WGSL], subgroups: false;
    RnnStepForward => "rnn_step_forward.wgsl", [RNN_ACT_WGSL, BATCH_INFO_WGSL, RNN_STEP_FORWARD_IO_WGSL], subgroups: false;
    RnnStepBackward => "rnn_step_backward.wgsl", [RNN_ACT_WGSL, BATCH_INFO_WGSL, RNN_STEP_BACKWARD_IO_WGSL], subgroups: false;
    RnnStepForwardSg => "rnn_step_forward_sg.wgsl", [RNN_ACT_WGSL, BATCH_INFO_WGSL, RNN_STEP_FORWARD_IO_WGSL, SG_TILE_WGSL], subgroups: true;
    RnnStepBackwardSg => "rnn_step_backward_sg.wgsl", [RNN_ACT_WGSL, BATCH_INFO_WGSL, RNN_STEP_BACKWARD_IO_WGSL, SG_TILE_WGSL], subgroups: true;
    RnnStepForwardTile => "rnn_step_forward_tile.wgsl", [RNN_ACT_WGSL, BATCH_INFO_WGSL, RNN_STEP_FORWARD_IO_WGSL, MM_TILE_WGSL], subgroups: false;
    RnnStepBackwardTile => "rnn_step_backward_tile.wgsl", [RNN_ACT_WGSL, BATCH_INFO_WGSL, RNN_STEP_BACKWARD_IO_WGSL, MM_TILE_WGSL], subgroups: false;
    RnnSeqForward => "rnn_seq_forward.wgsl", [RNN_ACT_WGSL, BATCH_INFO_WGSL, SEQ_BLOCK_WGSL], subgroups: false;
    RnnSeqBackward => "rnn_seq_backward.wgsl", [RNN_ACT_WGSL, BATCH_INFO_WGSL, SEQ_BLOCK_WGSL], subgroups: false;
    LayerOutput => "layer_output.wgsl", [BATCH_INFO_WGSL, DROPOUT_WGSL], subgroups: false;
    SoftmaxCe => "softmax_ce.wgsl", [BATCH_INFO_WGSL], subgroups: false;
    Mse => "mse.wgsl", [BATCH_INFO_WGSL], subgroups: false;
    ReduceSum => "reduce_sum.wgsl", [], subgroups: false;
    ColSum => "col_sum.wgsl", [], subgroups: false;
    EmbedGather => "embed_gather.wgsl", [], subgroups: false;
    TokenScatter => "token_scatter.wgsl", [], subgroups: false;
    ClipValue => "clip_value.wgsl", [], subgroups: false;
    Sgd => "sgd.wgsl", [PROBE_WGSL], subgroups: false;
    Adam => "adam.wgsl", [PROBE_WGSL], subgroups: false;
    Adagrad => "adagrad.wgsl", [PROBE_WGSL], subgroups: false;
}

str_enum!(
    /// The matrix-product kernels by name (`bench --kernel`, WGRNN_MATMUL, the tuning cache):
    /// the naive reference, the two written for lavapipe, and the workgroup-tiled ones for
    /// real GPUs, named after their tile of C. All give the same bits.
    MatmulKernel("matmul kernel") {
        Naive => "naive",
        Blocked => "blocked",
        Sg => "sg",
        Tile32 => "tile32",
        Tile64 => "tile64",
        Tile128 => "tile128",
    }
);

str_enum!(
    /// The per-step recurrence kernels by name, each a forward and a reverse kernel with the
    /// same parameters: the plain 4 × 4 blocks and the subgroup variant, both written for
    /// lavapipe, and the workgroup-tiled one for real GPUs (32 × 32 tiles). All give the
    /// same bits.
    StepKernel("step kernel") {
        Plain => "plain",
        Sg => "sg",
        Tile32 => "tile32",
    }
);

impl StepKernel {
    /// (forward, reverse) kernels
    pub fn kernels(self) -> (Kernel, Kernel) {
        match self {
            StepKernel::Plain => (Kernel::RnnStepForward, Kernel::RnnStepBackward),
            StepKernel::Sg => (Kernel::RnnStepForwardSg, Kernel::RnnStepBackwardSg),
            StepKernel::Tile32 => (Kernel::RnnStepForwardTile, Kernel::RnnStepBackwardTile),
        }
    }

    pub fn forward(self) -> Kernel {
        self.kernels().0
    }

    pub fn backward(self) -> Kernel {
        self.kernels().1
    }

    pub fn every() -> impl Iterator<Item = StepKernel> {
        <StepKernel as clap::ValueEnum>::value_variants().iter().copied()
    }
}

impl MatmulKernel {
    pub fn kernel(self) -> Kernel {
        match self {
            MatmulKernel::Naive => Kernel::Matmul,
            MatmulKernel::Blocked => Kernel::MatmulBlocked,
            MatmulKernel::Sg => Kernel::MatmulSg,
            MatmulKernel::Tile32 => Kernel::MatmulTile32,
            MatmulKernel::Tile64 => Kernel::MatmulTile64,
            MatmulKernel::Tile128 => Kernel::MatmulTile128,
        }
    }

    /// The name of a matrix-product kernel; `None` for other kernels.
    pub fn of(k: Kernel) -> Option<MatmulKernel> {
        Self::every().find(|m| m.kernel() == k)
    }

    pub fn every() -> impl Iterator<Item = MatmulKernel> {
        <MatmulKernel as clap::ValueEnum>::value_variants().iter().copied()
    }
}

impl Kernel {
    fn index(self) -> usize {
        self as usize
    }

    /// (file name, WGSL source)
    pub fn shader(self) -> (&'static str, &'static str) {
        SHADERS[self.index()]
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
#[derive(Clone)]
pub struct Kernels {
    pipelines: Vec<Option<wgpu::ComputePipeline>>,
    /// The fixed kernel choice (`--tune off`, and the tuner's fallback): the fastest on
    /// lavapipe of those this device runs, where they were measured. The tuner
    /// (`gpu::tune`) may pick another matrix product per shape class.
    pub matmul: Kernel,
    pub step: StepKernel,
    /// per-step chain or whole sequence, and how (`RecurrencePlan::choose`)
    pub recurrence: RecurrencePlan,
    /// vec4s of the whole-sequence kernels' W_hh tile as compiled here (`seq_tile_size`)
    pub seq_tile: usize,
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        ctx.scoped("compiling shaders", || {
            let sg = subgroups_usable(ctx);
            let seq_tile = seq_tile_size(ctx.limits.max_compute_workgroup_storage_size);
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
                    // The whole-sequence kernels' W_hh tile takes the adapter's workgroup
                    // storage; they write every entry before reading it, so wgpu's zeroing of
                    // it at each launch (up to 64 KiB per workgroup) is skipped.
                    let tile = [("WT4", seq_tile as f64)];
                    let seq = k.preludes().contains(&SEQ_BLOCK_WGSL);
                    let constants: &[(&str, f64)] = if seq { &tile } else { &[] };
                    // The layout is derived from the shader: every binding is whole buffers
                    // plus one uniform slice, the same for all dispatches of a kernel.
                    Some(ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(file),
                        layout: None,
                        module: &module,
                        entry_point: Some("main"),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants,
                            zero_initialize_workgroup_memory: !seq,
                        },
                        cache: None,
                    }))
                })
                .collect();
            let pick = |fast, plain| if sg { fast } else { plain };
            let recurrence = RecurrencePlan::choose(ctx.is_software(), seq_tile)?;
            Ok(Kernels {
                pipelines,
                matmul: pick(Kernel::MatmulSg, Kernel::MatmulBlocked),
                step: if sg { StepKernel::Sg } else { StepKernel::Plain },
                recurrence,
                seq_tile,
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

    /// The matrix-product kernels this device runs, the naive reference first.
    pub fn matmuls(&self) -> Vec<MatmulKernel> {
        MatmulKernel::every().filter(|m| self.available(m.kernel())).collect()
    }

    /// The step kernels this device runs.
    pub fn steps(&self) -> Vec<StepKernel> {
        StepKernel::every()
            .filter(|s| self.available(s.forward()) && self.available(s.backward()))
            .collect()
    }

    /// The same pipelines with the per-step chain recorded with `step`.
    pub fn with_step(&self, step: StepKernel) -> Result<Kernels> {
        if !self.steps().contains(&step) {
            return Err(Error::gpu(
                format!("step kernel {step} needs subgroups, which this adapter lacks"),
                "use the plain step kernels",
            ));
        }
        Ok(Kernels { step, ..self.clone() })
    }

    /// The same pipelines with the recurrence recorded as `plan`.
    pub fn with_recurrence(&self, plan: RecurrencePlan) -> Result<Kernels> {
        Ok(Kernels {
            recurrence: plan.check(self.seq_tile)?,
            ..self.clone()
        })
    }
}

impl GpuContext {
    /// The compiled kernels (compiled once per device, shared by every engine on it).
    ///
    /// The cache lives in the context because pipelines belong to its device, but the
    /// context only holds it as `dyn Any`: this impl block sits here, so `context` never
    /// names `Kernels` and the imports run one way (context → kernels).
    pub fn kernels(&self) -> Result<Arc<Kernels>> {
        let mut slot = self.kernel_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = slot.as_ref().and_then(|a| a.clone().downcast::<Kernels>().ok()) {
            return Ok(k);
        }
        let k = Arc::new(Kernels::new(self)?);
        *slot = Some(k.clone() as Arc<dyn Any + Send + Sync>);
        Ok(k)
    }
}
