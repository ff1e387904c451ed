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
            // rows are (T_out, B): a padding step of a short sequence carries no target
            let valid = |row: usize| cfg.seq == SeqShape::ManyToOne || row / b.batch < b.len_of(row % b.batch);
            for (row, (p, &yi)) in out.out.chunks_exact(cfg.output).zip(y).enumerate() {
                correct += (valid(row) && argmax(p) == yi as usize) as usize;
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

/// The index of the largest value (the first of equal ones).
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |a, (i, &v)| if v > a.1 { (i, v) } else { a })
        .0
}
