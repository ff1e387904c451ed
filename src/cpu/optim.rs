//! Optimisers with PyTorch semantics (SPEC §4) and gradient clipping, over the flat buffers.

pub use crate::optim::{Clip, OptimConfig, OptimKind, OptimState};
use crate::real::Real;

/// Global L2 norm of the gradient, accumulated in f64 in index order.
pub fn grad_norm<F: Real>(g: &[F]) -> f64 {
    g.iter().map(|&v| v.to_f64() * v.to_f64()).sum::<f64>().sqrt()
}

/// Clipping before the update: by value first, then by global norm (clip_grad_norm_'s
/// factor max_norm / (norm + 1e-6), applied only when it is below 1). Returns the norm
/// before norm clipping.
pub fn clip<F: Real>(c: &Clip, g: &mut [F]) -> f64 {
    if let Some(v) = c.value {
        let (lo, hi) = (F::from_f64(-v as f64), F::from_f64(v as f64));
        for x in g.iter_mut() {
            *x = x.max(lo).min(hi);
        }
    }
    let norm = grad_norm(g);
    if let Some(max) = c.norm {
        let coef = max as f64 / (norm + 1e-6);
        if coef < 1.0 {
            let coef = F::from_f64(coef);
            for x in g.iter_mut() {
                *x *= coef;
            }
        }
    }
    norm
}

/// One update of `w` with gradient `g` (already clipped). `state.step` counts updates.
pub fn update<F: Real>(cfg: &OptimConfig, state: &mut OptimState<F>, w: &mut [F], g: &[F]) {
    state.step += 1;
    let lr = F::from_f64(cfg.lr as f64);
    let wd = F::from_f64(cfg.weight_decay as f64);
    match cfg.kind {
        OptimKind::Sgd { momentum } => match state.slots.first_mut() {
            Some(v) => {
                let mu = F::from_f64(momentum as f64);
                for i in 0..w.len() {
                    // PyTorch's first step sets the buffer to g; μ·0 + g is the same value.
                    v[i] = mu * v[i] + g[i] + wd * w[i];
                    w[i] -= lr * v[i];
                }
            }
            None => {
                for i in 0..w.len() {
                    w[i] -= lr * (g[i] + wd * w[i]);
                }
            }
        },
        OptimKind::Adam { beta1, beta2, eps } => {
            let (b1, b2) = (F::from_f64(beta1 as f64), F::from_f64(beta2 as f64));
            // the same f64 values as the GPU path, for any step count
            let [bc1, bc2] = crate::optim::adam_bias_corrections(beta1, beta2, state.step).map(F::from_f64);
            let eps = F::from_f64(eps as f64);
            let (m, v) = state.slots.split_at_mut(1);
            let (m, v) = (&mut m[0], &mut v[0]);
            for i in 0..w.len() {
                let gi = g[i] + wd * w[i];
                m[i] = b1 * m[i] + (F::ONE - b1) * gi;
                v[i] = b2 * v[i] + (F::ONE - b2) * gi * gi;
                let m_hat = m[i] / bc1;
                let v_hat = v[i] / bc2;
                w[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
        }
        OptimKind::Adagrad { eps } => {
            let eps = F::from_f64(eps as f64);
            let s = &mut state.slots[0];
            for i in 0..w.len() {
                let gi = g[i] + wd * w[i];
                s[i] += gi * gi;
                w[i] -= lr * gi / (s[i].sqrt() + eps);
            }
        }
    }
}
