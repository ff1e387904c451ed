//! The one matrix-product helper of the CPU reference, on `matrixmultiply` (blocked, strided,
//! f32 and f64). Each output element's sum runs over k in a fixed order, so results do not
//! depend on the thread count.

use super::Real;

/// How an operand is stored, row-major: `N` as written (m×k for A), `T` transposed (k×m).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    N,
    T,
}

/// C (m, n) = beta·C + op(A) (m, k) · op(B) (k, n), all row-major and densely packed.
/// beta is 0 (overwrite) or 1 (accumulate); the helper never reads C when beta is 0.
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
            *v = *v * beta;
        }
        return;
    }
    let (rsa, csa) = match op_a {
        Op::N => (k, 1),
        Op::T => (1, m),
    };
    let (rsb, csb) = match op_b {
        Op::N => (n, 1),
        Op::T => (1, k),
    };
    // SAFETY: the asserts above bound every index the strides reach.
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
        )
    }
}
