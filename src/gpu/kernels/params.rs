//! The uniform parameter block of every kernel: one `#[repr(C)]` struct per WGSL `struct P`,
//! field by field with the shader's names (every field is a 4-byte u32 or f32, so the Rust
//! layout is the WGSL one). `tests/shaders_validate.rs` checks the names against the
//! shaders through `fields`.

use bytemuck::{Pod, Zeroable};

use super::Kernel;

/// Words of one dispatch's parameter block in the uniform buffer.
pub const PARAM_WORDS: usize = 32;

/// Declares each parameter struct once, with the kernels that read it; `fields` is
/// generated from the same list.
macro_rules! param_structs {
    ($($(#[$doc:meta])* $name:ident for [$($kernel:ident),+] { $($field:ident: $ty:ty,)* })*) => {
        $(
            $(#[$doc])*
            #[repr(C)]
            #[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
            pub struct $name {
                $(pub $field: $ty,)*
            }
            const _: () = assert!(std::mem::size_of::<$name>() <= PARAM_WORDS * 4);
        )*

        /// The field names of `kernel`'s `struct P`, in declaration order.
        pub fn fields(kernel: Kernel) -> &'static [&'static str] {
            match kernel {
                $($(Kernel::$kernel)|+ => &[$(stringify!($field)),*],)*
            }
        }

        /// Bytes of `kernel`'s parameter struct.
        pub fn size(kernel: Kernel) -> usize {
            match kernel {
                $($(Kernel::$kernel)|+ => std::mem::size_of::<$name>(),)*
            }
        }
    };
}

param_structs! {
    /// C (m, n) = beta·C + op(A) (m, k) · op(B) (k, n), plus optional row sums of op(A).
    MatmulP for [Matmul, MatmulBlocked, MatmulSg] {
        m: u32, n: u32, k: u32,
        a_off: u32, b_off: u32, c_off: u32,
        ta: u32, tb: u32,
        beta: u32,
        rowsum: u32, rs_off: u32, rs2_off: u32,
    }
    /// `MatmulP` (the same first 12 fields: `matmul_params` reads them), then a pair's second
    /// product (`pair` = 1), which shares A's and C's buffers and has no row sums.
    MatmulTileP for [MatmulTile32, MatmulTile64, MatmulTile128] {
        m: u32, n: u32, k: u32,
        a_off: u32, b_off: u32, c_off: u32,
        ta: u32, tb: u32,
        beta: u32,
        rowsum: u32, rs_off: u32, rs2_off: u32,
        pair: u32,
        m2: u32, n2: u32, k2: u32,
        a_off2: u32, b_off2: u32, c_off2: u32,
        ta2: u32, tb2: u32,
        beta2: u32,
    }
    RnnStepForwardP for [RnnStepForward, RnnStepForwardSg, RnnStepForwardTile] {
        batch: u32, hidden: u32,
        cur_off: u32, prev_off: u32,
        w_off: u32, bih_off: u32, bhh_off: u32,
        use_pre: u32,
        act: u32,
        tok_off: u32, vocab: u32, tab_off: u32, tab_sj: u32, tab_st: u32,
        has_bias: u32,
        step: u32, b0: u32,
    }
    RnnStepBackwardP for [RnnStepBackward, RnnStepBackwardSg, RnnStepBackwardTile] {
        batch: u32, hidden: u32,
        dh_off: u32, h_off: u32,
        dz_off: u32, next_off: u32,
        has_next: u32,
        w_off: u32,
        act: u32,
        dh_stride: u32,
        step: u32, b0: u32,
        carry: u32, carry_off: u32,
        has_first: u32, first_off: u32,
    }
    /// The whole recurrence of one direction of one layer (all T steps).
    RnnSeqForwardP for [RnnSeqForward] {
        batch: u32, hidden: u32, steps: u32,
        flags: u32,
        w_off: u32, bih_off: u32, bhh_off: u32,
        act: u32,
        use_pre: u32, pre_steps: u32,
        tok_off: u32, vocab: u32, tab_off: u32, tab_sj: u32, tab_st: u32,
        b0: u32,
        bw: u32, cap: u32,
    }
    /// The whole reverse sweep of one direction of one layer (all T steps).
    RnnSeqBackwardP for [RnnSeqBackward] {
        batch: u32, hidden: u32, steps: u32,
        flags: u32,
        w_off: u32,
        act: u32,
        dh_stride: u32, dh_col: u32,
        head_row: u32,
        dz_off: u32,
        b0: u32,
        has_first: u32, first_off: u32,
        bw: u32, cap: u32,
    }
    SoftmaxCeP for [SoftmaxCe] {
        rows: u32, classes: u32,
        bias_off: u32,
        has_bias: u32,
        batch: u32, b0: u32, masked: u32,
    }
    MseP for [Mse] {
        rows: u32, outputs: u32,
        bias_off: u32,
        sigmoid_head: u32,
        gfactor: f32,
        has_bias: u32,
        batch: u32, b0: u32, masked: u32,
    }
    /// y = [h_fwd ; h_rev] ⊙ dropout mask, or the mask applied to y's gradient (grad = 1).
    LayerOutputP for [LayerOutput] {
        steps: u32, batch: u32, hidden: u32, dirs: u32,
        fwd_off: u32, rev_off: u32, dst_off: u32,
        dropout: u32, layer: u32,
        t0: u32, b0: u32,
        grad: u32,
    }
    /// Two independent sums, one per workgroup.
    ReduceSumP for [ReduceSum] {
        sums: [SumP; 2],
    }
    ColSumP for [ColSum] {
        rows: u32, cols: u32,
        src_off: u32, dst_off: u32, dst2_off: u32,
        accumulate: u32,
    }
    EmbedGatherP for [EmbedGather] {
        rows: u32, cols: u32,
        tab_off: u32, stride_v: u32, stride_c: u32,
        out_off: u32,
    }
    TokenScatterP for [TokenScatter] {
        rows: u32, cols: u32, vocab: u32,
        src_off: u32, out_off: u32,
        stride_v: u32, stride_c: u32,
        accumulate: u32,
    }
    ClipValueP for [ClipValue] {
        n: u32, off: u32,
        limit: f32,
    }
    SgdP for [Sgd] {
        n: u32,
        lr: f32, wd: f32, mu: f32,
        momentum: u32,
        clip: u32, max_norm: f32, norm_idx: u32,
    }
    /// The bias corrections are read from `scalars[bc_idx..bc_idx + 2]`, so the block is the
    /// same at every step.
    AdamP for [Adam] {
        n: u32,
        lr: f32, wd: f32,
        b1: f32, b2: f32, eps: f32,
        bc_idx: u32,
        clip: u32, max_norm: f32, norm_idx: u32,
    }
    AdagradP for [Adagrad] {
        n: u32,
        lr: f32, wd: f32, eps: f32,
        clip: u32, max_norm: f32, norm_idx: u32,
    }
}

/// The WGSL `Sum` of reduce_sum.wgsl: dst[dst_off] (+)= factor · Σ src[src_off..+n] (of
/// squares when `square`); padded to the 32-byte stride uniform arrays need.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SumP {
    pub n: u32,
    pub src_off: u32,
    pub dst_off: u32,
    pub square: u32,
    pub factor: f32,
    pub accumulate: u32,
    pub pad0: u32,
    pub pad1: u32,
}

/// The global-norm clipping fields the optimiser kernels share.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClipFields {
    pub clip: u32,
    pub max_norm: f32,
    pub norm_idx: u32,
}

/// The parameter block of one dispatch: `p`'s bytes, zero-padded to `PARAM_WORDS` words.
pub fn block<P: Pod>(p: &P) -> [u32; PARAM_WORDS] {
    let mut out = [0u32; PARAM_WORDS];
    let bytes = bytemuck::bytes_of(p);
    bytemuck::cast_slice_mut::<u32, u8>(&mut out)[..bytes.len()].copy_from_slice(bytes);
    out
}
