//! The command line: flag definitions and the glue from flags to library calls.

/// `println!` for results: a closed stdout (`wgrnn info | head -1`) ends the process quietly
/// instead of panicking, and a failed write is an error of the command.
macro_rules! say {
    ($($t:tt)*) => {
        wgrnn::fsio::stdout_line(&format!($($t)*))?
    };
}

pub mod args;
pub mod bench;
pub mod commands;
pub mod job;
pub mod train;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use args::{DeviceArgs, ModelArgs, OptimArgs};
use wgrnn::train::PlotScale;

#[derive(Parser, Debug)]
#[command(
    name = "wgrnn",
    version,
    about = "Train Elman RNNs on any GPU wgpu reaches, or on the CPU reference path"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (default: a character-level model of the bundled Shakespeare corpus)
    Train(Box<TrainArgs>),
    /// Generate text from a character-level checkpoint
    Sample(SampleArgs),
    /// Mean loss of a checkpoint on a whole file (text: nats and bits per character)
    Eval(EvalArgs),
    /// Train K steps on the CPU and GPU paths from the same weights and data and compare (SPEC §5)
    Check(CheckArgs),
    /// Loss and all gradients of a checkpoint on one batch file, for comparisons with other frameworks
    Grad(GradArgs),
    /// Write a checkpoint's model tensors alone (PyTorch names), for load_state_dict(strict=True)
    Export(ExportArgs),
    /// List GPU adapters, their backends and limits, and what --device auto picks
    Info,
    /// Throughput of training steps on random data (tokens/s, GFLOP/s), or of the matrix-product kernel (--gemm N)
    Bench(Box<bench::BenchArgs>),
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Training data: a text file (character-level) or a .csv file; default: the bundled corpus
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A built-in synthetic task instead of a file
    #[arg(long)]
    pub task: Option<wgrnn::data::Task>,
    /// CSV with one time step per row: predict the next row's columns (header names or 0-based indices, comma-separated)
    #[arg(long)]
    pub target_cols: Option<String>,
    /// Fraction of the data held out for validation, taken from the end
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub val_fraction: f64,
    /// Text: B parallel streams of consecutive windows, carrying the hidden state across windows (truncated BPTT)
    #[arg(long)]
    pub stateful: bool,
    /// Total optimiser steps (a resumed run continues up to this count)
    #[arg(long, default_value_t = 4000)]
    pub steps: u64,
    /// Batch size B (sequences per step) [default: 32]
    #[arg(long)]
    pub batch: Option<usize>,
    /// Sequence length T (steps per window; for a CSV with one sequence per row: T·I features per row) [default: 64]
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Seed of the initialisation and of the batch sampler [default: 1]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Validate and save a checkpoint every this many steps (0: only at the end)
    #[arg(long, default_value_t = 500)]
    pub eval_every: u64,
    /// At most this many validation batches per validation
    #[arg(long, default_value_t = 16)]
    pub val_batches: usize,
    /// Print a text sample every this many steps (0: never; text only)
    #[arg(long, default_value_t = 1000)]
    pub sample_every: u64,
    /// Length of those samples in characters
    #[arg(long, default_value_t = 200)]
    pub sample_len: usize,
    /// Checkpoint file (safetensors), written atomically at each validation, at the end and on Ctrl-C, SIGTERM or SIGHUP (then the exit code is 130); locked against a second run by <out>.lock
    #[arg(long, default_value = "wgrnn.safetensors")]
    pub out: PathBuf,
    /// Continue from this checkpoint (model, optimiser, data position); --steps is the total
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Write one JSON object per step and per validation to this file
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Write an SVG of the training and validation loss curves to this file
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The plot's loss axis
    #[arg(long, default_value_t = PlotScale::Linear)]
    pub plot_scale: PlotScale,
    /// Print the final summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// No progress output
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Load a checkpoint that has no checksum (written by hand or by another tool)
    #[arg(long)]
    pub allow_unverified: bool,
}

impl TrainArgs {
    pub fn batch(&self) -> usize {
        self.batch.unwrap_or(32)
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len.unwrap_or(64)
    }

    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(1)
    }
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Checkpoint of a character-level model
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Characters to generate
    #[arg(long, default_value_t = 500)]
    pub len: usize,
    /// Softmax temperature (lower: more conservative)
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Text to start from (its characters must be in the model's vocabulary)
    #[arg(long, default_value = "")]
    pub prime: String,
    /// Seed of the sampler
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Load a checkpoint that has no checksum (written by hand or by another tool)
    #[arg(long)]
    pub allow_unverified: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint to evaluate
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// File to evaluate on, read like the training data (default: the checkpoint's validation data)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Load a checkpoint that has no checksum (written by hand or by another tool)
    #[arg(long)]
    pub allow_unverified: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Optimiser steps to run on both paths
    #[arg(long, default_value_t = 5)]
    pub steps: u64,
    /// Batch size B
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Sequence length T
    #[arg(long, default_value_t = 16)]
    pub seq_len: usize,
    /// Sequence shape
    #[arg(long, default_value_t = wgrnn::SeqShape::ManyToMany)]
    pub seq: wgrnn::SeqShape,
    /// Seed of the weights and the random batches
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GradArgs {
    /// Checkpoint with the weights
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// safetensors file with `inputs` (int64 (B, T) or f32 (B, T, I)), `targets`, and optionally `h0` (L·dirs, B, H) and `lengths` (int64 (B), each in 1..=T)
    #[arg(long)]
    pub batch: PathBuf,
    /// Output safetensors file: `loss` and `grad.<parameter name>`
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Load a checkpoint that has no checksum (written by hand or by another tool)
    #[arg(long)]
    pub allow_unverified: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Checkpoint to export
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Output safetensors file: embed.*, rnn.*, head.* only (no optimiser or carried state), written atomically
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists (without it, an existing file is never touched)
    #[arg(long)]
    pub force: bool,
    /// Load a checkpoint that has no checksum (written by hand or by another tool)
    #[arg(long)]
    pub allow_unverified: bool,
}
