//! Heads and losses (SPEC §1), forward and backward side by side. `logits` are (N, O) with
//! N = T_out·B rows, one per (step, sequence) pair. In a ragged batch some rows are padding
//! steps: `valid` (N) says which rows carry a target (empty: all do); the others are
//! computed but left out of the loss, and get no gradient (`zero_invalid`).

use super::act::sigmoid;
use crate::config::Head;
use crate::real::Real;

/// Softmax (max-subtracted) + cross-entropy. Writes probabilities (N, O) and returns the
/// summed loss Σ_n -log p_n[y_n], accumulated in f64.
pub fn softmax_ce_forward<F: Real>(logits: &[F], y: &[u32], o: usize, probs: &mut [F]) -> f64 {
    softmax_ce_forward_valid(logits, y, o, probs, &[])
}

/// `softmax_ce_forward` summing only the rows `valid` marks.
pub fn softmax_ce_forward_valid<F: Real>(logits: &[F], y: &[u32], o: usize, probs: &mut [F], valid: &[bool]) -> f64 {
    let mut loss = 0.0f64;
    for (n, (row, p)) in logits.chunks_exact(o).zip(probs.chunks_exact_mut(o)).enumerate() {
        let max = row.iter().copied().fold(row[0], F::max);
        let mut sum = F::ZERO;
        for (pk, &lk) in p.iter_mut().zip(row) {
            *pk = (lk - max).exp();
            sum += *pk;
        }
        for pk in p.iter_mut() {
            *pk = *pk / sum;
        }
        if !valid.is_empty() && !valid[n] {
            continue;
        }
        // -log p[y] = log(sum) - (l[y] - max): exact even when p[y] underflows to 0.
        loss += (sum.ln() - (row[y[n] as usize] - max)).to_f64();
    }
    loss
}

/// dL/do = scale · (p - onehot(y)).
pub fn softmax_ce_backward<F: Real>(probs: &[F], y: &[u32], o: usize, scale: F, dlogits: &mut [F]) {
    for (n, (p, d)) in probs.chunks_exact(o).zip(dlogits.chunks_exact_mut(o)).enumerate() {
        for (k, (dk, &pk)) in d.iter_mut().zip(p).enumerate() {
            let onehot = if k == y[n] as usize { F::ONE } else { F::ZERO };
            *dk = scale * (pk - onehot);
        }
    }
}

/// Linear or sigmoid head + MSE. Writes predictions y_hat (N, O) and returns
/// Σ_n Σ_k (y_hat - y)² / O, accumulated in f64.
pub fn mse_forward<F: Real>(head: Head, logits: &[F], y: &[F], o: usize, y_hat: &mut [F]) -> f64 {
    mse_forward_valid(head, logits, y, o, y_hat, &[])
}

/// `mse_forward` summing only the rows `valid` marks.
pub fn mse_forward_valid<F: Real>(head: Head, logits: &[F], y: &[F], o: usize, y_hat: &mut [F], valid: &[bool]) -> f64 {
    let mut loss = 0.0f64;
    for (i, ((yh, &l), &t)) in y_hat.iter_mut().zip(logits).zip(y).enumerate() {
        *yh = if head == Head::Sigmoid { sigmoid(l) } else { l };
        if valid.is_empty() || valid[i / o] {
            let d = (*yh - t).to_f64();
            loss += d * d;
        }
    }
    loss / o as f64
}

/// dL/do = scale · 2 (y_hat - y) / O, times y_hat (1 - y_hat) for the sigmoid head.
pub fn mse_backward<F: Real>(head: Head, y_hat: &[F], y: &[F], o: usize, scale: F, dlogits: &mut [F]) {
    let c = scale * F::from_f64(2.0 / o as f64);
    for ((d, &yh), &t) in dlogits.iter_mut().zip(y_hat).zip(y) {
        *d = c * (yh - t);
        if head == Head::Sigmoid {
            *d *= yh * (F::ONE - yh);
        }
    }
}

/// Zeroes the rows of dL/do (N, O) that carry no target.
pub fn zero_invalid<F: Real>(dlogits: &mut [F], o: usize, valid: &[bool]) {
    if valid.is_empty() {
        return;
    }
    for (row, _) in dlogits.chunks_exact_mut(o).zip(valid).filter(|(_, &v)| !v) {
        row.fill(F::ZERO);
    }
}
