//! Optimiser settings and state, shared by the CPU and GPU paths (SPEC §4).

use serde::{Deserialize, Serialize};

use crate::config::str_enum;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimKind {
    Sgd { momentum: f32 },
    Adam { beta1: f32, beta2: f32, eps: f32 },
    Adagrad { eps: f32 },
}

str_enum!(
    /// The `--optimizer` flag.
    Optimizer("optimizer") { Sgd => "sgd", Adam => "adam", Adagrad => "adagrad" }
);

impl Optimizer {
    /// PyTorch's defaults, except Adagrad's eps: 1e-8 as in the classic char-rnn (PyTorch
    /// uses 1e-10; both are far below sqrt(s) after the first step).
    pub fn kind(self, momentum: f32) -> OptimKind {
        match self {
            Optimizer::Sgd => OptimKind::Sgd { momentum },
            Optimizer::Adam => OptimKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            Optimizer::Adagrad => OptimKind::Adagrad { eps: 1e-8 },
        }
    }
}

impl OptimKind {
    pub const NAMES: &'static [&'static str] = Optimizer::ALL;

    /// `Optimizer::kind` by name.
    pub fn parse(name: &str, momentum: f32) -> Result<Self> {
        Ok(name.parse::<Optimizer>()?.kind(momentum))
    }

    pub fn optimizer(&self) -> Optimizer {
        match self {
            OptimKind::Sgd { .. } => Optimizer::Sgd,
            OptimKind::Adam { .. } => Optimizer::Adam,
            OptimKind::Adagrad { .. } => Optimizer::Adagrad,
        }
    }

    pub fn name(&self) -> &'static str {
        self.optimizer().as_str()
    }

    /// Number of state buffers of the parameter layout's size.
    pub fn slots(&self) -> usize {
        match self {
            OptimKind::Sgd { momentum } if *momentum == 0.0 => 0,
            OptimKind::Sgd { .. } | OptimKind::Adagrad { .. } => 1,
            OptimKind::Adam { .. } => 2,
        }
    }
}

/// Adam's bias corrections (1 − β1^k, 1 − β2^k) for update `k`, in f64, for any u64 `k`:
/// both paths compute them here. `powi` takes an i32, so larger `k` are split into chunks of
/// at most `i32::MAX` (a clamped or wrapped exponent gave wrong corrections, or none, after
/// 2^31 updates); for `k` up to `i32::MAX` the value is exactly `powi(k)`.
pub fn adam_bias_corrections(beta1: f32, beta2: f32, k: u64) -> [f64; 2] {
    [1.0 - pow_u64(beta1 as f64, k), 1.0 - pow_u64(beta2 as f64, k)]
}

/// b^k for b in [0, 1): the loop ends once the product underflows to 0, after a few chunks
/// even for the β closest to 1 an f32 holds (β^(2^31) < 1e-55 there).
fn pow_u64(b: f64, mut k: u64) -> f64 {
    const CHUNK: u64 = i32::MAX as u64;
    let mut r = 1.0;
    while k > CHUNK && r != 0.0 {
        r *= b.powi(i32::MAX);
        k -= CHUNK;
    }
    if r == 0.0 {
        return 0.0;
    }
    r * b.powi(k as i32)
}

/// Gradient clipping before the update; value first, then global L2 norm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Clip {
    pub norm: Option<f32>,
    pub value: Option<f32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub kind: OptimKind,
    pub lr: f32,
    pub weight_decay: f32,
    pub clip: Clip,
}

impl OptimConfig {
    pub fn new(kind: OptimKind, lr: f32) -> Self {
        OptimConfig {
            kind,
            lr,
            weight_decay: 0.0,
            clip: Clip::default(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let positive = |field: &'static str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(field, v, "must be a finite number > 0"))
            }
        };
        positive("lr", self.lr)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::config(
                "weight_decay",
                self.weight_decay,
                "must be a finite number >= 0",
            ));
        }
        if let Some(n) = self.clip.norm {
            positive("clip_norm", n)?;
        }
        if let Some(v) = self.clip.value {
            positive("clip_value", v)?;
        }
        match self.kind {
            OptimKind::Sgd { momentum } if !(0.0..1.0).contains(&momentum) => {
                Err(Error::config("momentum", momentum, "must be in [0, 1)"))
            }
            OptimKind::Adam { beta1, beta2, eps } => {
                if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
                    return Err(Error::config(
                        "adam betas",
                        format!("{beta1},{beta2}"),
                        "each must be in [0, 1)",
                    ));
                }
                positive("eps", eps)
            }
            OptimKind::Adagrad { eps } => positive("eps", eps),
            _ => Ok(()),
        }
    }
}

/// Optimiser state: `step` updates done, and `kind.slots()` buffers of the parameter size
/// (SGD: velocity; Adam: m, v; Adagrad: the running sum of g²).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimState<F> {
    pub step: u64,
    pub slots: Vec<Vec<F>>,
}

impl<F: Copy + Default> OptimState<F> {
    pub fn new(kind: &OptimKind, len: usize) -> Self {
        OptimState {
            step: 0,
            slots: vec![vec![F::default(); len]; kind.slots()],
        }
    }

    /// Whether this state fits an optimiser of `kind` over a parameter buffer of `len`.
    pub fn check(&self, kind: &OptimKind, len: usize) -> Result<()> {
        if self.slots.len() != kind.slots() || self.slots.iter().any(|v| v.len() != len) {
            return Err(Error::shape(
                "set_optim_state",
                "optimiser state",
                self.slots.iter().map(Vec::len).sum(),
                kind.slots() * len,
                "the state belongs to another model or optimiser",
            ));
        }
        Ok(())
    }
}
