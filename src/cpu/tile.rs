//! What every f32 product kernel shares (`packed` picks the kernel, `simd` holds the
//! x86 ones): the left operand's layouts, the fused write-back and its epilogues.

use super::act::{activation_grad, sigmoid};
use crate::config::Activation;
use crate::real::tanh_f32;

/// Largest MR·NR of any kernel: the size of the write-back buffer.
pub(crate) const MAX_TILE: usize = 8 * 32;

/// The left operand as the kernels read it.
#[derive(Clone, Copy, Debug)]
pub enum Lhs<'a> {
    /// (m, K) row-major
    Rows(&'a [f32]),
    /// A stored transposed, A[i, kk] = a[kk·ld + i] (the weight gradients' dz^T): read
    /// in place, k-block by k-block, so its lines stay cached across the panels.
    Cols(&'a [f32], usize),
}

/// dst = src for the few floats of a tile row: `copy_from_slice` of a run-time length is a
/// call to memmove, which costs more than these copies.
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_short: lengths differ");
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 8] = s.try_into().expect("chunks of 8");
        *<&mut [f32; 8]>::try_from(d).expect("chunks of 8") = *s;
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// What the write-back does with s = a·B for one element of c.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// c = s
    Store,
    /// c = c + s
    Add,
    /// c = f(z): the forward step, c holding the pre-activation (input projection + biases)
    Activate(Activation),
    /// c = z · f'(h): the backward step, c holding dh_t, `h` the states h_t (nb, H)
    Grad(Activation, &'a [f32]),
}

/// Writes rows i0.. (`rows` of them) and columns j0..j0+ncols of c (m, ldc) from the
/// accumulators `acc` (rows, nr): the fused epilogue. Inlined into each kernel, so it is
/// compiled (and vectorised) with that kernel's instruction set; the operations are the
/// scalar reference's, so every kernel rounds alike.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_back(
    epi: Epilogue,
    c: &mut [f32],
    i0: usize,
    j0: usize,
    ncols: usize,
    acc: &[f32; MAX_TILE],
    rows: usize,
    nr: usize,
    ldc: usize,
) {
    for r in 0..rows {
        let at = (i0 + r) * ldc + j0;
        let c_row = &mut c[at..at + ncols];
        let acc_row = &acc[r * nr..r * nr + ncols];
        match epi {
            Epilogue::Store => c_row.copy_from_slice(acc_row),
            Epilogue::Add => {
                for (v, &s) in c_row.iter_mut().zip(acc_row) {
                    *v += s;
                }
            }
            Epilogue::Activate(Activation::Tanh) => {
                for (v, &s) in c_row.iter_mut().zip(acc_row) {
                    *v = tanh_f32(*v + s);
                }
            }
            Epilogue::Activate(Activation::Sigmoid) => {
                for (v, &s) in c_row.iter_mut().zip(acc_row) {
                    *v = sigmoid(*v + s);
                }
            }
            Epilogue::Activate(Activation::Relu) => {
                for (v, &s) in c_row.iter_mut().zip(acc_row) {
                    *v = (*v + s).max(0.0);
                }
            }
            Epilogue::Grad(act, hs) => {
                let h_row = &hs[at..at + ncols];
                for ((v, &s), &hv) in c_row.iter_mut().zip(acc_row).zip(h_row) {
                    *v = (*v + s) * activation_grad(act, hv);
                }
            }
        }
    }
}
