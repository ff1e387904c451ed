//! Synthetic tasks, generated on the fly from the batch sampler's generator.
//!
//! - adding (Le et al. 2015, after Hochreiter & Schmidhuber 1997): two input channels, a
//!   value ~ U(0, 1) and a marker that is 1 at exactly two steps (one in each half); the
//!   target after the last step is the sum of the two marked values. Predicting the constant
//!   1 gives MSE 1/6 ≈ 0.167; a model that solves the task goes far below.
//! - sine: noisy sines of random frequency, phase and amplitude; the target at every step is
//!   the next (noisy) value.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ModelIo;
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{str_enum, Head, Input, SeqShape};
use crate::params::normal;

str_enum!(
    /// The `--task` flag, stored in checkpoints by name.
    Task("task") { Adding => "adding", Sine => "sine" }
);

impl Task {
    pub fn model_io(self) -> ModelIo {
        match self {
            Task::Adding => ModelIo {
                input: Input::Dense { size: 2 },
                output: 1,
                head: Head::Linear,
                seq: SeqShape::ManyToOne,
            },
            Task::Sine => ModelIo {
                input: Input::Dense { size: 1 },
                output: 1,
                head: Head::Linear,
                seq: SeqShape::ManyToMany,
            },
        }
    }

    pub fn describe(self) -> String {
        match self {
            Task::Adding => "task adding: 2 channels, many-to-one regression (constant-1 baseline MSE 0.167)".into(),
            Task::Sine => "task sine: next value of noisy sines, many-to-many regression".into(),
        }
    }

    /// A batch of B fresh sequences of T steps: inputs (T, B, I), targets (1, B, 1) or (T, B, 1).
    pub fn batch(self, rng: &mut ChaCha8Rng, b: usize, t: usize) -> Batch<f32> {
        match self {
            Task::Adding => adding(rng, b, t),
            Task::Sine => sine(rng, b, t),
        }
    }

    /// A fixed validation set: batches from a generator seeded apart from the training one.
    pub fn val_batches(self, b: usize, t: usize, seed: u64, n: usize) -> Vec<Batch<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_7a1d);
        (0..n.min(4)).map(|_| self.batch(&mut rng, b, t)).collect()
    }
}

fn adding(rng: &mut ChaCha8Rng, b: usize, t: usize) -> Batch<f32> {
    let mut x = vec![0.0f32; t * b * 2]; // (T, B, 2)
    let mut y = vec![0.0f32; b]; // (1, B, 1)
    let half = (t / 2).max(1);
    for (i, yi) in y.iter_mut().enumerate() {
        for s in 0..t {
            x[(s * b + i) * 2] = rng.random_range(0.0..1.0);
        }
        let first = rng.random_range(0..half);
        // T = 1 has one step only: both markers fall on it
        let second = if t > half { rng.random_range(half..t) } else { first };
        for s in [first, second] {
            x[(s * b + i) * 2 + 1] = 1.0;
        }
        *yi = x[(first * b + i) * 2] + if second != first { x[(second * b + i) * 2] } else { 0.0 };
    }
    Batch {
        batch: b,
        steps: t,
        inputs: Inputs::Dense(x),
        targets: Targets::Values(y),
        h0: None,
        lengths: None,
    }
}

fn sine(rng: &mut ChaCha8Rng, b: usize, t: usize) -> Batch<f32> {
    let mut x = vec![0.0f32; t * b]; // (T, B, 1)
    let mut y = vec![0.0f32; t * b]; // (T, B, 1)
    for i in 0..b {
        let freq: f32 = rng.random_range(0.05..0.3);
        let phase: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        let amp: f32 = rng.random_range(0.5..1.0);
        let series: Vec<f32> = (0..=t)
            .map(|s| amp * (freq * s as f32 + phase).sin() + 0.05 * normal(rng))
            .collect();
        for s in 0..t {
            x[s * b + i] = series[s];
            y[s * b + i] = series[s + 1];
        }
    }
    Batch {
        batch: b,
        steps: t,
        inputs: Inputs::Dense(x),
        targets: Targets::Values(y),
        h0: None,
        lengths: None,
    }
}
