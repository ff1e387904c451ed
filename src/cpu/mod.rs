//! The CPU reference: SPEC §1–§4 written literally, generic over f32 (the fast path, and
//! what the GPU is checked against) and f64 (the gradient check).

mod act;
pub mod backward;
pub mod engine;
pub mod forward;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod packed;
mod simd;
mod sweep;
mod tile;

pub use crate::engine::{Grads, Want};
pub use crate::real::Real;
pub use backward::backward;
pub use engine::CpuEngine;
pub use forward::{forward, forward_train, Activations};
pub use matmul::{gemm, Op};
pub use packed::{Kernel, PackedW};

use rayon::prelude::*;

/// Runs `f` on row shards of a (steps, B, W) buffer in parallel. Shard i receives, for every
/// step, its own rows as one slice, plus its first row index and row count. The recurrence
/// couples only a sequence's own rows, so each shard can run all T steps with no per-step
/// synchronisation; a sequence's values do not depend on which shard computes them.
pub fn for_each_row_shard<F: Real>(
    buf: &mut [F],
    b: usize,
    w: usize,
    f: impl Fn(&mut [&mut [F]], usize, usize) + Sync,
) {
    // Below ~1M multiply-adds over all steps, forking costs more than the work.
    const MIN_MACS: usize = 1 << 20;
    let threads = if buf.len().saturating_mul(w) < MIN_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    let per = b.div_ceil(threads.clamp(1, b.max(1)));
    let mut shards: Vec<(usize, Vec<&mut [F]>)> = (0..b.div_ceil(per)).map(|i| (i * per, Vec::new())).collect();
    for step in buf.chunks_mut(b * w) {
        let mut rest = step;
        for (_, rows) in shards.iter_mut() {
            let (mine, tail) = rest.split_at_mut((per * w).min(rest.len()));
            rows.push(mine);
            rest = tail;
        }
    }
    shards.par_iter_mut().for_each(|(r0, rows)| {
        let nb = rows[0].len() / w;
        f(rows, *r0, nb)
    });
}
