//! The one matrix-product helper of the CPU reference, on the `gemm` crate (f32 and f64,
//! strided operands so transposes are free). Each output element's sum over k runs in an
//! order fixed by the shapes alone, so results do not depend on thread scheduling.

use crate::real::Real;

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
