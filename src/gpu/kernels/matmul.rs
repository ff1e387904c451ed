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

/// The buffers of a product: A, B, C, and for the tiled kernels A and B once more, bound
/// as arrays of vec4 (every tensor buffer is a whole number of vec4s).
fn matmul_buffers(kernel: Kernel, a: &wgpu::Buffer, b: &wgpu::Buffer, c: &wgpu::Buffer) -> Vec<wgpu::Buffer> {
    let tiled = matches!(
        kernel,
        Kernel::MatmulTile32 | Kernel::MatmulTile64 | Kernel::MatmulTile128
    );
    let bufs = if tiled { vec![a, b, c, a, b] } else { vec![a, b, c] };
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

/// The sizes of a matrix-product dispatch (`None` for any other kernel).
pub fn matmul_params(d: &Dispatch) -> Option<params::MatmulP> {
    MatmulKernel::of(d.kernel)?;
    let words = &d.params[..std::mem::size_of::<params::MatmulP>() / 4];
    Some(bytemuck::pod_read_unaligned(bytemuck::cast_slice(words)))
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
