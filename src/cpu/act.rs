//! The cell non-linearities f and their derivatives, shared by the reference and the f32
//! kernels' fused write-backs (so both round alike).

use crate::config::Activation;
use crate::real::Real;

/// Stable logistic: never evaluates exp of a large positive number.
pub fn sigmoid<F: Real>(z: F) -> F {
    if z >= F::ZERO {
        F::ONE / (F::ONE + (-z).exp())
    } else {
        let e = z.exp();
        e / (F::ONE + e)
    }
}

/// h = f(z), in place.
pub fn activate<F: Real>(act: Activation, z: &mut [F]) {
    for v in z {
        *v = match act {
            // std's tanh saturates to ±1 for large |z|; it never returns NaN.
            Activation::Tanh => v.tanh(),
            Activation::Sigmoid => sigmoid(*v),
            Activation::Relu => v.max(F::ZERO),
        };
    }
}

/// f'(z) written with the output h = f(z).
#[inline]
pub fn activation_grad<F: Real>(act: Activation, h: F) -> F {
    match act {
        Activation::Tanh => F::ONE - h * h,
        Activation::Sigmoid => h * (F::ONE - h),
        Activation::Relu => {
            if h > F::ZERO {
                F::ONE
            } else {
                F::ZERO
            }
        }
    }
}
