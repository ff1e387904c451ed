//! The matrix products' launches: operands as (possibly transposed) matrices at element
//! offsets, `Acc::Set` / `Acc::Add`, and the kernel-specific bindings and workgroup counts,
//! so that the tuner can move a product onto another kernel.

use super::launch::{at, groups_sg, groups_tiled, internal, u, At, Dispatch};
use super::params::{self, block};
use super::{Kernel, MatmulKernel};
use crate::error::Result;

/// A row-major (rows, cols) matrix at an element offset, used as itself or, after `.t()`,
/// as its transpose (the kernels read transposed operands in place).
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub at: At<'a>,
    rows: usize,
    cols: usize,
    transposed: bool,
}

/// The (rows, cols) matrix stored at element `off` of `buf`.
pub fn mat(buf: &wgpu::Buffer, off: usize, rows: usize, cols: usize) -> Mat<'_> {
    Mat {
        at: at(buf, off),
        rows,
        cols,
        transposed: false,
    }
}

impl Mat<'_> {
    pub fn t(self) -> Self {
        Mat {
            transposed: !self.transposed,
            ..self
        }
    }

    /// (rows, cols) of the operand as the product sees it
    fn dims(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
}

/// Whether a product overwrites its destination or adds to it (a later chunk of a split
/// batch sums its gradients into the earlier chunks').
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acc {
    Set,
    Add,
}

impl Acc {
    pub fn add_if(add: bool) -> Acc {
        if add {
            Acc::Add
        } else {
            Acc::Set
        }
    }
}

/// C = op(A) · op(B) (`Acc::Set`) or C + op(A) · op(B) (`Acc::Add`); the sizes come from the
/// operands. Twin of `cpu::gemm`. `kernel` is any matrix-product kernel (`MatmulKernel`):
/// `Matmul` (naive), `MatmulBlocked` (4×4 per invocation), `MatmulSg` (16×2 per lane, A
/// shared by subgroup broadcasts) or `MatmulTile*` (workgroup-tiled); all give the same bits.
pub fn matmul(kernel: Kernel, c: Mat, a: Mat, b: Mat, acc: Acc) -> Result<Dispatch> {
    matmul_with(kernel, c, a, b, acc, None)
}

/// `matmul` that also writes the row sums Σ_q op(A)[i, q] at elements `rs.0 + i` and
/// `rs.1 + i` of C's buffer (added to the first under `Acc::Add`): the bias gradients Σ dz
/// beside dW = dz^T · h, in the same dispatch.
pub fn matmul_row_sums(kernel: Kernel, c: Mat, a: Mat, b: Mat, acc: Acc, rs: (usize, usize)) -> Result<Dispatch> {
    matmul_with(kernel, c, a, b, acc, Some(rs))
}

fn matmul_with(kernel: Kernel, c: Mat, a: Mat, b: Mat, acc: Acc, rs: Option<(usize, usize)>) -> Result<Dispatch> {
    let ((m, k), (kb, n)) = (a.dims(), b.dims());
    if kb != k || c.dims() != (m, n) || c.transposed {
        return Err(internal(format!(
            "matmul shapes: op(A) {:?} · op(B) {:?} into C {:?}",
            a.dims(),
            b.dims(),
            c.dims()
        )));
    }
    let (rs_off, rs2_off) = rs.unwrap_or((0, 0));
    let p = params::MatmulP {
        m: u(m)?,
        n: u(n)?,
        k: u(k)?,
        a_off: u(a.at.off)?,
        b_off: u(b.at.off)?,
        c_off: u(c.at.off)?,
        ta: a.transposed as u32,
        tb: b.transposed as u32,
        beta: (acc == Acc::Add) as u32,
        rowsum: rs.is_some() as u32,
        rs_off: u(rs_off)?,
        rs2_off: u(rs2_off)?,
    };
    Ok(Dispatch {
        kernel,
        params: block(&p),
        buffers: matmul_buffers(kernel, a.at.buf, b.at.buf, c.at.buf),
        groups: matmul_groups(kernel, m, n)?,
    })
}

/// The workgroup-tiled kernels: the ones that run pairs.
pub fn runs_pairs(kernel: Kernel) -> bool {
    matches!(
        kernel,
        Kernel::MatmulTile32 | Kernel::MatmulTile64 | Kernel::MatmulTile128
    )
}

/// The buffers of a product: A, B, C, and for the tiled kernels A and B once more, bound
/// as arrays of vec4 (every tensor buffer is a whole number of vec4s), then a pair's second
/// B twice (B again for one product).
fn matmul_buffers(kernel: Kernel, a: &wgpu::Buffer, b: &wgpu::Buffer, c: &wgpu::Buffer) -> Vec<wgpu::Buffer> {
    let bufs = if runs_pairs(kernel) {
        vec![a, b, c, a, b, b, b]
    } else {
        vec![a, b, c]
    };
    bufs.into_iter().cloned().collect()
}

fn matmul_groups(kernel: Kernel, m: usize, n: usize) -> Result<[u32; 3]> {
    let what = format!("matmul {m}x{n}");
    match kernel {
        Kernel::Matmul => groups_tiled(&what, m, n, 16),
        Kernel::MatmulBlocked => groups_tiled(&what, m, n, 32),
        Kernel::MatmulSg => groups_sg(m, n),
        Kernel::MatmulTile32 => groups_tiled(&what, m, n, 32),
        Kernel::MatmulTile64 => groups_tiled(&what, m, n, 64),
        Kernel::MatmulTile128 => groups_tiled(&what, m, n, 128),
        _ => Err(internal(format!("{kernel:?} is not a matmul kernel"))),
    }
}

/// The sizes of a matrix-product dispatch (`None` for any other kernel, and for a pair:
/// it is two products, bound to its kernel).
pub fn matmul_params(d: &Dispatch) -> Option<params::MatmulP> {
    MatmulKernel::of(d.kernel)?;
    if runs_pairs(d.kernel) && tile_params(d).pair != 0 {
        return None;
    }
    let words = &d.params[..std::mem::size_of::<params::MatmulP>() / 4];
    Some(bytemuck::pod_read_unaligned(bytemuck::cast_slice(words)))
}

fn tile_params(d: &Dispatch) -> params::MatmulTileP {
    let words = &d.params[..std::mem::size_of::<params::MatmulTileP>() / 4];
    bytemuck::pod_read_unaligned(bytemuck::cast_slice(words))
}

/// The regions of C's buffer the two products write meet (which would make a pair's bits
/// depend on the order of its workgroups).
fn overlap(p1: &params::MatmulP, p2: &params::MatmulP) -> bool {
    let span = |off: u32, len: u32| (off as u64, off as u64 + len as u64);
    let mut first = vec![span(p1.c_off, p1.m * p1.n)];
    if p1.rowsum != 0 {
        first.extend([span(p1.rs_off, p1.m), span(p1.rs2_off, p1.m)]);
    }
    let (s, e) = span(p2.c_off, p2.m * p2.n);
    first.iter().any(|&(s1, e1)| s < e1 && s1 < e)
}

/// Multiply-adds of a product.
pub fn matmul_flops(p: &params::MatmulP) -> u64 {
    p.m as u64 * p.n as u64 * p.k as u64
}

/// Two products `first` and `second` (`matmul` / `matmul_row_sums` dispatches, on any
/// kernel) as one dispatch of the tiled `kernel`: they share A's buffer and C's buffer, and
/// only the first may have row sums. `None` where a product's row tiles spill into z: the
/// caller records the two. The bits are those of the two run one after the other, so
/// `second` must neither read nor write what `first` writes.
pub fn matmul_pair(kernel: Kernel, first: &Dispatch, second: &Dispatch) -> Result<Option<Dispatch>> {
    let not_product = || internal("matmul_pair: a pair of two products".into());
    let (p1, p2) = (
        matmul_params(first).ok_or_else(not_product)?,
        matmul_params(second).ok_or_else(not_product)?,
    );
    let (a, c) = (&first.buffers[0], &first.buffers[2]);
    let shared = second.buffers[0] == *a && second.buffers[2] == *c;
    if !runs_pairs(kernel) || p2.rowsum != 0 || !shared || overlap(&p1, &p2) {
        return Err(internal(format!(
            "matmul_pair on {kernel:?}: a tiled kernel, one A and one C buffer, disjoint outputs, row sums on the first only"
        )));
    }
    let g1 = matmul_groups(kernel, p1.m as usize, p1.n as usize)?;
    let g2 = matmul_groups(kernel, p2.m as usize, p2.n as usize)?;
    if g1[2] > 1 || g2[2] > 1 {
        return Ok(None);
    }
    let p = params::MatmulTileP {
        m: p1.m,
        n: p1.n,
        k: p1.k,
        a_off: p1.a_off,
        b_off: p1.b_off,
        c_off: p1.c_off,
        ta: p1.ta,
        tb: p1.tb,
        beta: p1.beta,
        rowsum: p1.rowsum,
        rs_off: p1.rs_off,
        rs2_off: p1.rs2_off,
        pair: 1,
        m2: p2.m,
        n2: p2.n,
        k2: p2.k,
        a_off2: p2.a_off,
        b_off2: p2.b_off,
        c_off2: p2.c_off,
        ta2: p2.ta,
        tb2: p2.tb,
        beta2: p2.beta,
    };
    let (b, b2) = (&first.buffers[1], &second.buffers[1]);
    Ok(Some(Dispatch {
        kernel,
        params: block(&p),
        buffers: [a, b, c, a, b, b2, b2].into_iter().cloned().collect(),
        groups: [g1[0].max(g2[0]), g1[1].max(g2[1]), 2],
    }))
}

/// The same product on another matrix-product kernel (the tuner's choice): the same
/// parameters and operands, that kernel's bindings and workgroup counts.
pub fn with_matmul_kernel(d: &Dispatch, kernel: Kernel) -> Result<Dispatch> {
    let p = matmul_params(d).ok_or_else(|| internal(format!("{:?} is not a matmul kernel", d.kernel)))?;
    Ok(Dispatch {
        kernel,
        params: d.params,
        buffers: matmul_buffers(kernel, &d.buffers[0], &d.buffers[1], &d.buffers[2]),
        groups: matmul_groups(kernel, p.m as usize, p.n as usize)?,
    })
}
