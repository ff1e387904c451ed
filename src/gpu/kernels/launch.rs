//! One builder per kernel: sizes, element offsets and flags in, a `Dispatch` out (its
//! parameter struct from `params`, the buffers bound at bindings 1.., workgroup counts).

use super::params::{self, block, PARAM_WORDS};
use super::Kernel;
use crate::error::{Error, Result};

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

/// A size or offset as a parameter word.
pub(super) fn u(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::gpu(
            format!("kernel parameter {v} does not fit in 32 bits"),
            "use a smaller batch or model",
        )
    })
}

pub(super) fn internal(msg: String) -> Error {
    Error::gpu(msg, "internal error")
}

/// Workgroups for `n` independent items at `per_group` items per workgroup, spread over x
/// and y when one dimension is not enough (the shaders fold gid.y back in).
pub(super) fn groups_1d(n: usize, per_group: usize) -> Result<[u32; 3]> {
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

/// Workgroups of `tile`×`tile` outputs over an (m, n) result; row tiles beyond the y limit
/// spill into z.
pub(super) fn groups_tiled(what: &str, m: usize, n: usize, tile: usize) -> Result<[u32; 3]> {
    let gx = n.div_ceil(tile).max(1);
    let gy_total = m.div_ceil(tile).max(1);
    let gy = gy_total.min(MAX_GROUPS as usize);
    let gz = gy_total.div_ceil(gy);
    if gx > MAX_GROUPS as usize || gz > MAX_GROUPS as usize {
        return Err(Error::gpu(
            format!("{what} exceeds the dispatch limit"),
            "use a smaller batch or model",
        ));
    }
    Ok([gx as u32, gy as u32, gz as u32])
}

/// Workgroups for the subgroup kernels: a subgroup of S lanes owns a 16 × 2S tile of the
/// (m, n) output, 64 / S subgroups per workgroup, tiles listed in one dimension. S is only
/// known to lie in 8..=64 (a power of two), so enough workgroups for the worst S are launched;
/// the surplus subgroups clamp their loads and write nothing.
pub(super) fn groups_sg(m: usize, n: usize) -> Result<[u32; 3]> {
    let worst = [8, 16, 32, 64]
        .iter()
        .map(|&s| (m.div_ceil(16) * n.div_ceil(2 * s)).div_ceil(64 / s))
        .max()
        .unwrap_or(1);
    groups_1d(worst, 1)
}

pub(super) fn dispatch<P: bytemuck::Pod>(kernel: Kernel, p: &P, bufs: &[&wgpu::Buffer], groups: [u32; 3]) -> Dispatch {
    Dispatch {
        kernel,
        params: block(p),
        buffers: bufs.iter().map(|&b| b.clone()).collect(),
        groups,
    }
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
    fn params(&self) -> Result<params::SumP> {
        Ok(params::SumP {
            n: u(self.n)?,
            src_off: u(self.src.off)?,
            dst_off: u(self.dst.off)?,
            square: self.square as u32,
            factor: self.factor,
            accumulate: self.accumulate as u32,
            ..Default::default()
        })
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
    }
    .params()?;
    let p = params::ReduceSumP { sums: [s, s] };
    Ok(dispatch(Kernel::ReduceSum, &p, &[src.buf, dst.buf, src.buf], [1, 1, 1]))
}

/// Two independent sums in one dispatch (one workgroup each); both write into `first`'s
/// destination buffer.
pub fn reduce_sums(first: Sum, second: Sum) -> Result<Dispatch> {
    if first.dst.buf != second.dst.buf {
        return Err(internal("reduce_sums: the two sums need one destination buffer".into()));
    }
    let p = params::ReduceSumP {
        sums: [first.params()?, second.params()?],
    };
    let bufs = [first.src.buf, first.dst.buf, second.src.buf];
    Ok(dispatch(Kernel::ReduceSum, &p, &bufs, [2, 1, 1]))
}

/// dst (cols) = column sums of src (rows, cols) (plus dst when `accumulate`), written at
/// `dst.off` and at `dst2_off` (pass `dst.off` again for one copy).
/// The engine gets bias gradients from `matmul_row_sums` instead (no dispatch of their
/// own); this kernel stays as their standalone reference, like the naive matmul.
pub fn col_sum(rows: usize, cols: usize, src: At, dst: At, dst2_off: usize, accumulate: bool) -> Result<Dispatch> {
    let p = params::ColSumP {
        rows: u(rows)?,
        cols: u(cols)?,
        src_off: u(src.off)?,
        dst_off: u(dst.off)?,
        dst2_off: u(dst2_off)?,
        accumulate: accumulate as u32,
    };
    Ok(dispatch(Kernel::ColSum, &p, &[src.buf, dst.buf], groups_1d(cols, 64)?))
}

/// out (rows, cols)[r, c] = table[tok[r]·stride_v + c·stride_c].
pub fn embed_gather(
    rows: usize,
    cols: usize,
    table: At,
    (stride_v, stride_c): (usize, usize),
    tok: &wgpu::Buffer,
    out: At,
) -> Result<Dispatch> {
    let p = params::EmbedGatherP {
        rows: u(rows)?,
        cols: u(cols)?,
        tab_off: u(table.off)?,
        stride_v: u(stride_v)?,
        stride_c: u(stride_c)?,
        out_off: u(out.off)?,
    };
    let bufs = [table.buf, tok, out.buf];
    Ok(dispatch(Kernel::EmbedGather, &p, &bufs, groups_1d(rows * cols, 64)?))
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
    (stride_v, stride_c): (usize, usize),
    accumulate: bool,
) -> Result<Dispatch> {
    let p = params::TokenScatterP {
        rows: u(rows)?,
        cols: u(cols)?,
        vocab: u(vocab)?,
        src_off: u(src.off)?,
        out_off: u(out.off)?,
        stride_v: u(stride_v)?,
        stride_c: u(stride_c)?,
        accumulate: accumulate as u32,
    };
    let bufs = [src.buf, tok, out.buf];
    Ok(dispatch(Kernel::TokenScatter, &p, &bufs, groups_1d(cols, 64)?))
}
