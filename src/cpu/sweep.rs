//! The recurrence of one direction of one layer through time (SPEC §1 forward, §2 reverse
//! sweep), with variable sequence lengths. Everything that does not depend on the previous
//! state (input projections, head, weight gradients) is batched over all steps elsewhere;
//! only this loop is sequential in t.
//!
//! A direction keeps its states in one buffer (T+1, B, H). The forward direction stores h0
//! in row 0 and h_t in row t; the reverse direction stores hr_t in row t-1 and its initial
//! state hr_{T+1} in row T. So in both directions the T step rows hold times 1..T in order (the input
//! projection and the layer output read them alike), and the state a step reads is the row
//! beside it.

use super::act::{activate, activation_grad};
use super::for_each_row_shard;
use super::matmul::{gemm_with, Op};
use super::packed::{self, Epilogue, Kernel, PackedW, Side};
use crate::config::Activation;
use crate::real::Real;
use std::ops::Range;

/// The direction of a recurrence: 0 forward (t = 1..T), 1 reverse (t = T..1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Forward,
    Reverse,
}

impl Dir {
    pub fn of(d: usize) -> Dir {
        if d == 0 {
            Dir::Forward
        } else {
            Dir::Reverse
        }
    }

    /// Row of the state buffer holding the state at time t (1..=T).
    pub fn slot(self, t: usize) -> usize {
        match self {
            Dir::Forward => t,
            Dir::Reverse => t - 1,
        }
    }

    /// Row of the state time t reads: h_{t-1}, or hr_{t+1} in reverse.
    pub fn prev_slot(self, t: usize) -> usize {
        match self {
            Dir::Forward => t - 1,
            Dir::Reverse => t,
        }
    }

    /// Row of the initial state h0 in a buffer of `steps` steps.
    pub fn h0_slot(self, steps: usize) -> usize {
        match self {
            Dir::Forward => 0,
            Dir::Reverse => steps,
        }
    }

    /// Row of the state a sequence ends with (PyTorch's h_n): h_T (= h_{len_b}, padding
    /// carries it), or hr_1.
    pub fn final_slot(self, steps: usize) -> usize {
        match self {
            Dir::Forward => steps,
            Dir::Reverse => 0,
        }
    }

    /// The elements of the T rows holding times 1..T, with `bh` = B·H per row.
    pub fn steps(self, steps: usize, bh: usize) -> Range<usize> {
        match self {
            Dir::Forward => bh..(steps + 1) * bh,
            Dir::Reverse => 0..steps * bh,
        }
    }

    /// The elements of the T rows that time 1..T read as their previous state.
    pub fn prev_steps(self, steps: usize, bh: usize) -> Range<usize> {
        match self {
            Dir::Forward => 0..steps * bh,
            Dir::Reverse => bh..(steps + 1) * bh,
        }
    }

    /// The i-th time (i = 0..T) the forward recurrence visits.
    fn time(self, i: usize, steps: usize) -> usize {
        match self {
            Dir::Forward => i + 1,
            Dir::Reverse => steps - i,
        }
    }
}

/// How the recurrent product runs: the packed f32 kernels with W_hh packed once for all
/// steps, or `gemm_with` on the unpacked matrix (f64, and the reference kernel).
pub enum Recurrent<'a, F> {
    Packed(&'a PackedW),
    Gemm(Kernel, &'a [F], usize),
}

impl<'a, F: Real> Recurrent<'a, F> {
    /// W_hh (H, H), packed into `packed` for `side` when the f32 kernels apply.
    pub fn new(kernel: Kernel, w_hh: &'a [F], h: usize, side: Side, packed: &'a mut PackedW) -> Self {
        match F::as_f32(w_hh).filter(|_| kernel != Kernel::Reference) {
            Some(w) => {
                packed.pack(kernel, w, h, side);
                Recurrent::Packed(packed)
            }
            None => Recurrent::Gemm(kernel, w_hh, h),
        }
    }

    /// now (nb, H) = f(now + prev · W_hh^T): `now` holds the input projection and biases.
    fn forward_step(&self, act: Activation, prev: &[F], now: &mut [F]) {
        match *self {
            Recurrent::Packed(w) => {
                let prev = F::as_f32(prev).expect("f32 states");
                let now = F::as_f32_mut(now).expect("f32 states");
                packed::step(w, Some(prev), now, Epilogue::Activate(act));
            }
            Recurrent::Gemm(kernel, w, h) => {
                gemm_with(kernel, now.len() / h, h, h, prev, Op::N, w, Op::T, F::ONE, now);
                activate(act, now);
            }
        }
    }

    /// cur (nb, H) = (cur + next · W_hh) ⊙ f'(h): dz_t from dh_t and the dz of the step the
    /// sweep visited before (None for its first).
    fn backward_step(&self, act: Activation, next: Option<&[F]>, cur: &mut [F], h: &[F]) {
        match *self {
            Recurrent::Packed(w) => {
                let next = next.map(|n| F::as_f32(n).expect("f32 gradients"));
                let cur = F::as_f32_mut(cur).expect("f32 gradients");
                let h = F::as_f32(h).expect("f32 states");
                packed::step(w, next, cur, Epilogue::Grad(act, h));
            }
            Recurrent::Gemm(kernel, w, hd) => {
                if let Some(next) = next {
                    gemm_with(kernel, cur.len() / hd, hd, hd, next, Op::N, w, Op::N, F::ONE, cur);
                }
                for (d, &hv) in cur.iter_mut().zip(h) {
                    *d *= activation_grad(act, hv);
                }
            }
        }
    }
}

/// (rows[now] mutable, rows[other] shared), now ≠ other.
fn pair<'a, F>(rows: &'a mut [&mut [F]], now: usize, other: usize) -> (&'a mut [F], &'a [F]) {
    if other < now {
        let (lo, hi) = rows.split_at_mut(now);
        (&mut *hi[0], &*lo[other])
    } else {
        let (lo, hi) = rows.split_at_mut(other);
        (&mut *lo[now], &*hi[0])
    }
}

/// The sequences of a shard (rows r0..r0+nb) for which time t is padding (t > len_b).
fn padded(lens: Option<&[u32]>, r0: usize, nb: usize, t: usize) -> impl Iterator<Item = usize> + '_ {
    let lens = lens.map_or(&[][..], |l| &l[r0..r0 + nb]);
    lens.iter()
        .enumerate()
        .filter(move |(_, &n)| (n as usize) < t)
        .map(|(i, _)| i)
}

/// The longest sequence among a shard's rows r0..r0+nb: later steps are padding for all.
fn longest(lens: Option<&[u32]>, r0: usize, nb: usize, steps: usize) -> usize {
    lens.map_or(steps, |l| l[r0..r0 + nb].iter().max().map_or(0, |&n| n as usize))
}

/// The forward recurrence of one direction over its state buffer `h` (T+1, B, H), whose step
/// rows hold the input projections (plus biases) and whose h0 row is set. Padding steps carry
/// the previous state. `lens` (B) is None when no sequence is shorter than T.
pub fn forward<F: Real>(
    rec: &Recurrent<'_, F>,
    act: Activation,
    h: &mut [F],
    b: usize,
    hd: usize,
    dir: Dir,
    lens: Option<&[u32]>,
) {
    let steps = h.len() / (b * hd) - 1;
    for_each_row_shard(h, b, hd, |rows, r0, nb| {
        let longest = longest(lens, r0, nb, steps);
        for i in 0..steps {
            let t = dir.time(i, steps);
            let (now, prev) = pair(rows, dir.slot(t), dir.prev_slot(t)); // (nb, H) each
            if t > longest {
                now.copy_from_slice(prev); // every sequence of the shard has ended
                continue;
            }
            rec.forward_step(act, prev, now);
            for r in padded(lens, r0, nb, t) {
                now[r * hd..(r + 1) * hd].copy_from_slice(&prev[r * hd..(r + 1) * hd]);
            }
        }
    });
}

/// Moves the gradient reaching padding states (time t > len_b) to the state they carry:
/// h_{len_b} in the forward direction, the initial state in reverse (added into `carry`
/// (B, H)). `dh` (T, B, H) holds time t in row t-1; the padding rows end zero.
pub fn fold_padding<F: Real>(dh: &mut [F], b: usize, hd: usize, dir: Dir, lens: &[u32], carry: &mut [F]) {
    let bh = b * hd;
    let steps = dh.len() / bh;
    for (s, &n) in lens.iter().enumerate() {
        let n = n as usize;
        for t in n + 1..=steps {
            let src = (t - 1) * bh + s * hd;
            for k in 0..hd {
                let v = std::mem::replace(&mut dh[src + k], F::ZERO);
                match dir {
                    Dir::Forward => dh[(n - 1) * bh + s * hd + k] += v,
                    Dir::Reverse => carry[s * hd + k] += v,
                }
            }
        }
    }
}

/// The reverse sweep (SPEC §2) of one direction, in place: `dh` (T, B, H), time t in row
/// t-1, holds the gradient reaching each state from the head or the layer above, padding
/// already folded (`fold_padding`); it becomes dz. `h` is the direction's state buffer
/// (T+1, B, H). The sweep visits the times in the opposite order of the forward recurrence;
/// padding steps get dz = 0.
#[allow(clippy::too_many_arguments)]
pub fn backward<F: Real>(
    rec: &Recurrent<'_, F>,
    act: Activation,
    h: &[F],
    dh: &mut [F],
    b: usize,
    hd: usize,
    dir: Dir,
    lens: Option<&[u32]>,
) {
    let bh = b * hd;
    let steps = dh.len() / bh;
    for_each_row_shard(dh, b, hd, |rows, r0, nb| {
        let longest = longest(lens, r0, nb, steps);
        for i in (0..steps).rev() {
            let t = dir.time(i, steps);
            if t > longest {
                rows[t - 1].fill(F::ZERO); // every sequence of the shard has ended
                continue;
            }
            let h_rows = &h[dir.slot(t) * bh + r0 * hd..dir.slot(t) * bh + (r0 + nb) * hd]; // (nb, H)
                                                                                            // the step visited before: t+1 forward, t-1 in reverse (rows t and t-2)
            let before = match dir {
                Dir::Forward => (t < steps).then_some(t),
                Dir::Reverse => (t > 1).then(|| t - 2),
            };
            match before {
                Some(row) => {
                    let (cur, next) = pair(rows, t - 1, row);
                    rec.backward_step(act, Some(next), cur, h_rows);
                }
                None => rec.backward_step(act, None, rows[t - 1], h_rows),
            }
            for r in padded(lens, r0, nb, t) {
                rows[t - 1][r * hd..(r + 1) * hd].fill(F::ZERO);
            }
        }
    });
}

/// The rows of dz (T, B, H) a direction's state gradient comes from (SPEC §2: dh0 = W_hh^T
/// dz at the step computed first): time 1 forward, time len_b in reverse. Into `out` (B, H).
pub fn first_steps<F: Real>(dz: &[F], b: usize, hd: usize, dir: Dir, lens: Option<&[u32]>, out: &mut Vec<F>) {
    let bh = b * hd;
    let steps = dz.len() / bh;
    out.clear();
    for s in 0..b {
        let t = match dir {
            Dir::Forward => 1,
            Dir::Reverse => lens.map_or(steps, |l| l[s] as usize),
        };
        out.extend_from_slice(&dz[(t - 1) * bh + s * hd..(t - 1) * bh + (s + 1) * hd]);
    }
}
