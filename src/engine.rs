//! The interface both paths implement, so the training loop, the CLI and the tests drive the
//! CPU reference and the GPU engine the same way.

use crate::batch::Batch;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::optim::{OptimConfig, OptimState};
use crate::params::ParamLayout;

/// Which optional gradients to compute besides the parameter gradients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// dL/dx for every step with an input: (T_in, B, in_0). For plain tokens this is the
    /// gradient with respect to the one-hot vectors (width V), with an embedding table the
    /// gradient with respect to the embedded vectors (width E).
    pub dx: bool,
    /// dL/dh0: (L·dirs, B, H)
    pub dh0: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Grads<F> {
    /// same layout as the parameters
    pub params: Vec<F>,
    pub dx: Option<Vec<F>>,
    pub dh0: Option<Vec<F>>,
}

/// Forward-only results.
#[derive(Clone, Debug)]
pub struct Outputs {
    /// the reduced loss
    pub loss: f32,
    /// (N, O), N = T_out·B: softmax probabilities, or predictions for MSE heads
    pub out: Vec<f32>,
    /// (L·dirs, B, H) hidden state after each sequence's last step (PyTorch's h_n)
    pub final_state: Vec<f32>,
}

/// Which path an engine computes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Cpu,
    Gpu,
}

pub trait Engine {
    /// One line naming the path and device, for logs.
    fn describe(&self) -> String;
    fn kind(&self) -> EngineKind;
    fn config(&self) -> &ModelConfig;
    fn layout(&self) -> &ParamLayout;
    fn optim_config(&self) -> &OptimConfig;

    /// Forward, backward, clipping and one optimiser update. Returns the loss before the
    /// update when `want_loss` (the GPU path reads nothing back otherwise).
    fn train_step(&mut self, batch: &Batch<f32>, want_loss: bool) -> Result<Option<f32>>;

    /// `train_step` whose initial state is the final state of the previous `train_step`
    /// (truncated BPTT over consecutive windows); `batch.h0` must be `None`. Engines that
    /// keep states on a device override this so the state never leaves it. A bidirectional
    /// model is refused (`ModelConfig::check_carry`).
    fn train_step_carried(&mut self, batch: &Batch<f32>, want_loss: bool) -> Result<Option<f32>> {
        self.config().check_carry()?;
        let mut carried = batch.clone();
        carried.h0 = Some(self.last_state()?);
        self.train_step(&carried, want_loss)
    }

    /// Clipping and one optimiser update from the given parameter gradients (same layout as
    /// the parameters), as the second half of `train_step`: data-parallel training computes
    /// the gradients with `loss_and_grads`, sums them over processes, then applies them here.
    fn apply_grads(&mut self, grads: &[f32]) -> Result<()>;

    /// Loss and every gradient for one batch, without an update.
    fn loss_and_grads(&mut self, batch: &Batch<f32>, want: Want) -> Result<(f32, Grads<f32>)>;

    /// Forward only.
    fn forward(&mut self, batch: &Batch<f32>) -> Result<Outputs>;

    /// (L·dirs, B, H) hidden state after the last step of the last `train_step` (with
    /// lengths: each sequence's state at its own last step), to carry into the next window
    /// (truncated BPTT).
    fn last_state(&mut self) -> Result<Vec<f32>>;

    fn params(&mut self) -> Result<Vec<f32>>;
    fn set_params(&mut self, p: &[f32]) -> Result<()>;
    fn optim_state(&mut self) -> Result<OptimState<f32>>;
    fn set_optim_state(&mut self, s: &OptimState<f32>) -> Result<()>;
}
