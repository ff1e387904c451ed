//! Flag groups shared by several commands.

use clap::{ArgMatches, Args};

use wgrnn::device::DeviceChoice;
use wgrnn::{Activation, Clip, Head, Init, OptimConfig, OptimKind, Reduction, Result};

/// Model flags; the data decides what they leave open (V, I, O, the head for CSV and tasks).
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Hidden width H of every recurrent layer
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Number of stacked recurrent layers L
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Cell non-linearity: tanh | sigmoid | relu
    #[arg(long, default_value_t = Activation::Tanh)]
    pub activation: Activation,
    /// Embedding width E for token inputs (0: one-hot inputs, no embedding table)
    #[arg(long, default_value_t = 0)]
    pub embed: usize,
    /// Output head and loss: softmax (cross-entropy) | linear (MSE) | sigmoid (MSE); text is always softmax
    #[arg(long, default_value_t = Head::Softmax)]
    pub head: Head,
    /// Output width O (classes V for softmax); 0: inferred from the data
    #[arg(long, default_value_t = 0)]
    pub output_size: usize,
    /// Input width I of a CSV with one sequence per row; 0: 1
    #[arg(long, default_value_t = 0)]
    pub input_size: usize,
    /// Loss reduction over (sequence, step) targets: mean | sum
    #[arg(long, default_value_t = Reduction::Mean)]
    pub reduction: Reduction,
    /// Initialisation: default (PyTorch's) | irnn (identity W_hh, for relu)
    #[arg(long, default_value_t = Init::Default)]
    pub init: Init,
}

/// Optimiser flags.
#[derive(Args, Clone, Debug)]
pub struct OptimArgs {
    /// Optimiser: sgd | adam | adagrad
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Learning rate
    #[arg(long, default_value_t = 2e-3, allow_negative_numbers = true)]
    pub lr: f32,
    /// SGD momentum (0: plain SGD)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub momentum: f32,
    /// L2 weight decay added to the gradient
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub weight_decay: f32,
    /// Clip the global gradient L2 norm to this (0: no clipping)
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    pub clip_norm: f32,
    /// Clip every gradient element to ±this (0: no clipping)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub clip_value: f32,
}

impl OptimArgs {
    pub fn config(&self) -> Result<OptimConfig> {
        let kind = OptimKind::parse(&self.optimizer, self.momentum)?;
        // only SGD has momentum; ignoring the flag would silently train something else
        if self.momentum != 0.0 && !matches!(kind, OptimKind::Sgd { .. }) {
            return Err(wgrnn::Error::config(
                "momentum",
                self.momentum,
                format!("applies to --optimizer sgd only (this run uses {})", kind.name()),
            ));
        }
        let off = |v: f32| (v != 0.0).then_some(v);
        let cfg = OptimConfig {
            kind,
            lr: self.lr,
            weight_decay: self.weight_decay,
            clip: Clip {
                norm: off(self.clip_norm),
                value: off(self.clip_value),
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The path that computes.
#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// auto (a hardware GPU if there is one, else the CPU path) | gpu (wgpu on any adapter) | cpu
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

/// Whether the user typed this flag (as opposed to its default).
pub fn explicit(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), Some(clap::parser::ValueSource::CommandLine))
}
