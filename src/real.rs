//! The float types both paths compute in: f32 (training, and what the GPU is checked
//! against) and f64 (the gradient check). Shared by the CPU reference, the batch types and
//! the GPU path's host side, so it lives below all of them.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// The float types the reference runs in.
pub trait Real:
    Copy
    + Default
    + Debug
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    /// The slice as f32 when Self is f32 (None for f64): lets generic code hand its f32
    /// buffers to the f32-only SIMD kernels.
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
    /// # Safety
    /// The strides must keep every index inside the buffers.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        rsa: usize,
        csa: usize,
        b: *const Self,
        rsb: usize,
        csb: usize,
        beta: Self,
        c: *mut Self,
        rsc: usize,
        parallel: bool,
    );
}

macro_rules! impl_real {
    ($t:ty, $tanh:path, $as_f32:expr, $as_f32_mut:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline]
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            #[inline]
            fn min(self, o: Self) -> Self {
                <$t>::min(self, o)
            }
            #[inline]
            fn as_f32(s: &[Self]) -> Option<&[f32]> {
                $as_f32(s)
            }
            #[inline]
            fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
                $as_f32_mut(s)
            }
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                a: *const Self,
                rsa: usize,
                csa: usize,
                b: *const Self,
                rsb: usize,
                csb: usize,
                beta: Self,
                c: *mut Self,
                rsc: usize,
                parallel: bool,
            ) {
                let par = if parallel {
                    gemm::Parallelism::Rayon(0)
                } else {
                    gemm::Parallelism::None
                };
                // gemm's convention: dst = alpha·dst + beta·lhs·rhs, strides as (column, row).
                gemm::gemm(
                    m,
                    n,
                    k,
                    c,
                    1,
                    rsc as isize,
                    beta != 0.0,
                    a,
                    csa as isize,
                    rsa as isize,
                    b,
                    csb as isize,
                    rsb as isize,
                    beta,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
    };
}
impl_real!(f32, tanh_f32, Some, Some);
impl_real!(f64, f64::tanh, |_| None, |_| None);

/// tanh in f32 as a 13/6 rational function on [-7.9, 7.9] (Eigen's `generic_fast_tanh_float`
/// coefficients), within 5e-7 of the exact value everywhere (a few ulp) and saturating, never NaN, for
/// large |x|. libm's tanhf is a scalar call; this is branch-free, so the activation loops
/// vectorise, and it was the largest single cost of a training step.
#[inline]
pub fn tanh_f32(x: f32) -> f32 {
    const A: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const B: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    // Beyond this the rational function's value rounds to ±1 in f32.
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let p = ((((((A[6] * x2 + A[5]) * x2 + A[4]) * x2 + A[3]) * x2 + A[2]) * x2 + A[1]) * x2 + A[0]) * x;
    let q = ((B[3] * x2 + B[2]) * x2 + B[1]) * x2 + B[0];
    p / q
}

#[cfg(test)]
mod tests {
    #[test]
    fn tanh_f32_matches_f64_tanh() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((super::tanh_f32(x) as f64 - (x as f64).tanh()).abs());
        }
        for x in [-1e30f32, -100.0, 100.0, 1e30, f32::MAX, f32::MIN] {
            assert_eq!(super::tanh_f32(x).abs(), 1.0, "tanh({x})");
        }
        assert!(worst < 5e-7, "max |tanh_f32 - tanh| = {worst:e}");
    }
}
