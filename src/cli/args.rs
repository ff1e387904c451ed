//! Flag groups shared by several commands.
//!
//! A flag whose absence matters (a resumed run checks the typed ones against the checkpoint;
//! `check` has smaller defaults) is an `Option`, with its default applied by the accessor
//! beside it and stated in its help.

use clap::Args;

use wgrnn::device::DeviceChoice;
use wgrnn::gpu::tune::TuneMode;
use wgrnn::gpu::GpuOptions;
use wgrnn::{Activation, Clip, Dropout, Head, Init, Loss, ModelConfig, OptimConfig, Optimizer, Reduction, Result};

/// Model flags; the data decides what they leave open (V, I, O, the head for CSV and tasks).
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Hidden width H of every recurrent layer [default: 256; check: 32]
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Number of stacked recurrent layers L [default: 1]
    #[arg(long)]
    pub layers: Option<usize>,
    /// Cell non-linearity [default: tanh]
    #[arg(long)]
    pub activation: Option<Activation>,
    /// Embedding width E for token inputs (0: one-hot inputs, no embedding table) [default: 0]
    #[arg(long)]
    pub embed: Option<usize>,
    /// Output head and loss: softmax (cross-entropy), linear or sigmoid (MSE); text is always softmax [default: softmax]
    #[arg(long)]
    pub head: Option<Head>,
    /// MSE convention of a linear / sigmoid head: mse (PyTorch's, mean over the O outputs) or half-mse (½ Σ (ŷ−y)², gradient ŷ−y) [default: mse]
    #[arg(long)]
    pub loss: Option<Loss>,
    /// Output width O (classes V for softmax) [default: inferred from the data]
    #[arg(long)]
    pub output_size: Option<usize>,
    /// Input width I of a CSV with one sequence per row; 0: 1
    #[arg(long, default_value_t = 0)]
    pub input_size: usize,
    /// Loss reduction over (sequence, step) targets [default: mean]
    #[arg(long)]
    pub reduction: Option<Reduction>,
    /// Initialisation: default (PyTorch's) or irnn (identity W_hh, for relu)
    #[arg(long, default_value_t = Init::Default)]
    pub init: Init,
    /// No recurrent biases (nn.RNN(bias=False): no rnn.bias_* tensors)
    #[arg(long)]
    pub no_bias: bool,
    /// No output bias (nn.Linear(bias=False): no head.bias)
    #[arg(long)]
    pub no_head_bias: bool,
    /// A reverse recurrence beside every layer (nn.RNN(bidirectional=True)); not with --stateful
    #[arg(long)]
    pub bidirectional: bool,
    /// Drop probability P in [0, 1) on the outputs of every layer but the last, in training only (nn.RNN(dropout=P)); needs --layers 2 or more; masks seeded by --seed [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    pub dropout: Option<f32>,
}

impl ModelArgs {
    pub fn layers(&self) -> usize {
        self.layers.unwrap_or(1)
    }

    pub fn activation(&self) -> Activation {
        self.activation.unwrap_or(Activation::Tanh)
    }

    /// E, or None for one-hot inputs
    pub fn embed(&self) -> Option<usize> {
        self.embed.filter(|&e| e > 0)
    }

    pub fn head(&self) -> Head {
        self.head.unwrap_or(Head::Softmax)
    }

    pub fn loss(&self) -> Loss {
        self.loss.unwrap_or(Loss::Mse)
    }

    pub fn reduction(&self) -> Reduction {
        self.reduction.unwrap_or(Reduction::Mean)
    }

    /// The nn.RNN options on `cfg` (whose layer count is set): biases, direction, and
    /// dropout with its masks seeded by `seed`, the run's --seed. Validates `cfg`.
    pub fn apply_options(&self, cfg: &mut ModelConfig, seed: u64) -> Result<()> {
        cfg.bias = !self.no_bias;
        cfg.head_bias = !self.no_head_bias;
        cfg.bidirectional = self.bidirectional;
        cfg.dropout = match self.dropout {
            Some(p) if p != 0.0 => Dropout { p, seed },
            _ => Dropout::default(),
        };
        cfg.validate()?;
        // nn.RNN only warns; a flag that changes nothing would silently train another model
        if cfg.dropout.is_active() && cfg.layers < 2 {
            return Err(wgrnn::Error::config(
                "dropout",
                cfg.dropout.p,
                "drops between stacked layers and does nothing with --layers 1; use --layers 2 or more",
            ));
        }
        Ok(())
    }
}

/// Optimiser flags.
#[derive(Args, Clone, Debug)]
pub struct OptimArgs {
    /// Optimiser [default: adam]
    #[arg(long)]
    pub optimizer: Option<Optimizer>,
    /// Learning rate [default: 0.002]
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
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
    pub fn optimizer(&self) -> Optimizer {
        self.optimizer.unwrap_or(Optimizer::Adam)
    }

    pub fn config(&self) -> Result<OptimConfig> {
        let kind = self.optimizer().kind(self.momentum);
        // only SGD has momentum; ignoring the flag would silently train something else
        if self.momentum != 0.0 && self.optimizer() != Optimizer::Sgd {
            return Err(wgrnn::Error::config(
                "momentum",
                self.momentum,
                format!("applies to --optimizer sgd only (this run uses {})", kind.name()),
            ));
        }
        let off = |v: f32| (v != 0.0).then_some(v);
        let cfg = OptimConfig {
            kind,
            lr: self.lr.unwrap_or(2e-3),
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
    /// auto: a hardware GPU if there is one, else the CPU path; gpu: wgpu on any adapter
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

/// How the GPU path picks its matrix-product kernels.
#[derive(Args, Clone, Debug)]
pub struct TuneArgs {
    /// GPU kernels (matrix products, the recurrence): quick / full time the candidates on this adapter once per shape class and keep the fastest (cached in ~/.cache/wgrnn/tune.json); off uses the fixed kernels [default: WGRNN_TUNE, else quick]
    #[arg(long)]
    pub tune: Option<TuneMode>,
}

impl TuneArgs {
    /// The environment's GPU options (`GpuOptions::from_env`) with `--tune` applied: the
    /// flag, else WGRNN_TUNE, else quick (the library alone does not tune unless asked).
    pub fn gpu_options(&self) -> GpuOptions {
        let mut o = GpuOptions::from_env();
        match self.tune {
            Some(t) => o.tune = Some(t.to_string()),
            None => {
                o.tune.get_or_insert_with(|| TuneMode::Quick.to_string());
            }
        }
        o
    }
}
