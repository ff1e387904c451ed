//! The one matrix-product helper of the CPU path: the `gemm` crate (f32 and f64, strided
//! operands so transposes are free) for the reference, and for f32 the packed micro-kernels
//! of `packed` when the CPU has one (the `gemm` crate's stable build stops at AVX2). Each
//! output element's sum over k runs in an order fixed by the shapes alone, so results do not
//! depend on thread scheduling or on how the rows are split over threads.

use super::packed::{product, Epilogue, Kernel, Lhs, PackedW};
use crate::real::Real;
use rayon::prelude::*;
use std::cell::RefCell;

/// How an operand is stored, row-major: `N` as written (m×k for A), `T` transposed (k×m).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    N,
    T,
}

/// Below this many multiply-adds a product runs on the calling thread: waking the pool
/// costs more than it saves (measured: 64×256×256 is no faster on 2 threads).
const PARALLEL_MIN_MACS: usize = 1 << 22;

/// Narrowest C the packed kernels compute (narrower goes to the `gemm` crate).
const MIN_PACKED_N: usize = 16;

/// C (m, n) = beta·C + op(A) (m, k) · op(B) (k, n), all row-major and densely packed.
/// beta is 0 (overwrite; C is never read) or 1 (accumulate).
#[allow(clippy::too_many_arguments)]
pub fn gemm<F: Real>(m: usize, n: usize, k: usize, a: &[F], op_a: Op, b: &[F], op_b: Op, beta: F, c: &mut [F]) {
    gemm_with(Kernel::best(), m, n, k, a, op_a, b, op_b, beta, c);
}

/// `gemm` on `kernel` (f32 only; f64 and `Kernel::Reference` run the `gemm` crate).
#[allow(clippy::too_many_arguments)]
pub fn gemm_with<F: Real>(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: &[F],
    op_a: Op,
    b: &[F],
    op_b: Op,
    beta: F,
    c: &mut [F],
) {
    // checked products: a wrapped m·k could pass the test and let the unsafe call below
    // read outside the buffers
    let holds = |len: usize, rows: usize, cols: usize| rows.checked_mul(cols).is_some_and(|p| len >= p);
    assert!(
        holds(a.len(), m, k) && holds(b.len(), k, n) && holds(c.len(), m, n),
        "gemm: operand too short"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for v in &mut c[..m * n] {
            *v *= beta;
        }
        return;
    }
    // Narrow outputs (a regression head, O = 1) would waste most of a 16- or 32-wide tile.
    if kernel != Kernel::Reference && n >= MIN_PACKED_N {
        if let (Some(a), Some(b), Some(c)) = (F::as_f32(a), F::as_f32(b), F::as_f32_mut(c)) {
            let epi = if beta == F::ZERO {
                Epilogue::Store
            } else {
                Epilogue::Add
            };
            return packed_gemm(
                kernel,
                m,
                n,
                k,
                &a[..m * k],
                op_a,
                &b[..k * n],
                op_b,
                epi,
                &mut c[..m * n],
            );
        }
    }
    // (row stride, column stride) of each operand
    let (rsa, csa) = match op_a {
        Op::N => (k, 1),
        Op::T => (1, m),
    };
    let (rsb, csb) = match op_b {
        Op::N => (n, 1),
        Op::T => (1, k),
    };
    // On a pool thread (a row shard of the recurrence) the other threads are busy already.
    let parallel =
        m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MACS && rayon::current_thread_index().is_none();
    // SAFETY: the assert above bounds every index these strides reach.
    unsafe {
        F::gemm_raw(
            m,
            k,
            n,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n,
            parallel,
        )
    }
}

thread_local! {
    /// op(B) packed, reused by every product of this thread: the training loop allocates
    /// nothing once the shapes are known.
    static PACK: RefCell<PackedW> = RefCell::default();
}

/// C (m, n) = epi(op(A) (m, k) · op(B) (k, n)) on a packed kernel; the rows of C split over
/// the pool when the product is large and the caller is not a pool thread already.
#[allow(clippy::too_many_arguments)]
fn packed_gemm(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    epi: Epilogue,
    c: &mut [f32],
) {
    PACK.with_borrow_mut(|w| {
        match op_b {
            Op::N => w.pack_strided(kernel, b, k, n, n, 1),
            Op::T => w.pack_strided(kernel, b, k, n, 1, k),
        }
        // Rows i0..i0+rows of op(A): a slice of rows, or of columns read in place.
        let lhs = |i0: usize, rows: usize| match op_a {
            Op::N => Lhs::Rows(&a[i0 * k..(i0 + rows) * k]),
            Op::T => Lhs::Cols(&a[i0..], m),
        };
        let threads = rayon::current_num_threads();
        let parallel = m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MACS
            && rayon::current_thread_index().is_none()
            && threads > 1;
        if parallel {
            // Whole row tiles per thread, so no thread runs a ragged tile it could avoid.
            let per = m.div_ceil(threads).next_multiple_of(kernel.mr());
            let w = &*w;
            c.par_chunks_mut(per * n).enumerate().for_each(|(t, c)| {
                let rows = c.len() / n;
                product(w, lhs(t * per, rows), c, epi)
            });
        } else {
            product(w, lhs(0, m), c, epi);
        }
    });
}
