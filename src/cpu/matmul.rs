//! The one matrix-product helper of the CPU path: the `gemm` crate (f32 and f64, strided
//! operands so transposes are free) for the reference, and for f32 the packed micro-kernels
//! of `packed` when the CPU has one (the `gemm` crate's stable build stops at AVX2). Each
//! output element's sum over k runs in an order fixed by the shapes alone, so results do not
//! depend on thread scheduling or on how the rows are split over threads.

use super::packed::{pack_lhs_t, product, Epilogue, Kernel, Lhs, PackedW};
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
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
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
    if kernel != Kernel::Reference {
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
    /// op(B) packed and a transposed A in row tiles, reused by every product of this thread: the
    /// training loop allocates nothing once the shapes are known.
    static PACK: RefCell<(PackedW, Vec<f32>)> = RefCell::default();
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
    PACK.with_borrow_mut(|(w, rows)| {
        match op_b {
            Op::N => w.pack_strided(kernel, b, k, n, n, 1),
            Op::T => w.pack_strided(kernel, b, k, n, 1, k),
        }
        let mr = kernel.mr();
        let a = match op_a {
            Op::N => a,
            Op::T => {
                pack_lhs_t(kernel, a, k, m, rows);
                &rows[..]
            }
        };
        let threads = rayon::current_num_threads();
        let parallel = m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MACS
            && rayon::current_thread_index().is_none()
            && threads > 1;
        if parallel {
            // Whole row tiles per thread: no thread runs a ragged tile it could avoid, and
            // the chunks of a tiled A line up with its tiles.
            let per = m.div_ceil(threads).next_multiple_of(mr);
            let w = &*w;
            c.par_chunks_mut(per * n)
                .zip(a.par_chunks(per * k))
                .for_each(|(c, a)| product(w, lhs(op_a, a), c, epi));
        } else {
            product(w, lhs(op_a, a), c, epi);
        }
    });
}

fn lhs(op_a: Op, a: &[f32]) -> Lhs<'_> {
    match op_a {
        Op::N => Lhs::Rows(a),
        Op::T => Lhs::Tiles(a),
    }
}
