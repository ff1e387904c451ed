//! Validation: mean loss (and accuracy) of a model on fixed batches.

use serde::Serialize;

use crate::batch::{Batch, Targets};
use crate::config::{Head, Reduction, SeqShape};
use crate::engine::Engine;
use crate::error::Result;

/// Mean loss per target, and accuracy for a softmax head.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EvalResult {
    pub loss: f64,
    pub accuracy: Option<f64>,
    pub targets: usize,
}

pub fn evaluate(engine: &mut dyn Engine, batches: &[Batch<f32>]) -> Result<Option<EvalResult>> {
    let cfg = *engine.config();
    let (mut sum, mut n, mut correct) = (0.0f64, 0usize, 0usize);
    for b in batches {
        let out = engine.forward(b)?;
        let count = b.target_count(&cfg);
        sum += match cfg.reduction {
            Reduction::Mean => out.loss as f64 * count as f64,
            Reduction::Sum => out.loss as f64,
        };
        n += count;
        if let Targets::Classes(y) = &b.targets {
            // padding rows (t ≥ len_b, time-major) carry no target
            let valid = |n: usize| cfg.seq == SeqShape::ManyToOne || n / b.batch < b.len_of(n % b.batch);
            let rows = out.out.chunks_exact(cfg.output).zip(y).enumerate();
            for (_, (row, &yi)) in rows.filter(|(n, _)| valid(*n)) {
                let arg = row
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |a, (i, &p)| if p > a.1 { (i, p) } else { a })
                    .0;
                correct += (arg == yi as usize) as usize;
            }
        }
    }
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(EvalResult {
        loss: sum / n as f64,
        accuracy: (cfg.head == Head::Softmax).then(|| correct as f64 / n as f64),
        targets: n,
    }))
}
