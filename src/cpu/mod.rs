//! The CPU reference: SPEC §1–§4 written literally, generic over f32 (the fast path, and
//! what the GPU is checked against) and f64 (the gradient check).

pub mod backward;
pub mod engine;
pub mod forward;
pub mod loss;
pub mod matmul;
pub mod optim;

pub use backward::{backward, Grads};
pub use engine::CpuEngine;
pub use forward::{forward, Activations};
pub use matmul::{gemm, Op};

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
    );
}

macro_rules! impl_real {
    ($t:ty, $gemm:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            fn min(self, o: Self) -> Self {
                <$t>::min(self, o)
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
            ) {
                $gemm(
                    m,
                    k,
                    n,
                    1.0,
                    a,
                    rsa as isize,
                    csa as isize,
                    b,
                    rsb as isize,
                    csb as isize,
                    beta,
                    c,
                    rsc as isize,
                    1,
                );
            }
        }
    };
}
impl_real!(f32, matrixmultiply::sgemm);
impl_real!(f64, matrixmultiply::dgemm);
