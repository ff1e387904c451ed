//! The CPU path as an `Engine`: the reference functions, in f32.

use super::backward::{backward_into, Scratch};
use super::forward::{forward_into, Activations};
use super::optim::{clip, update};
use crate::batch::Batch;
use crate::config::ModelConfig;
use crate::dropout::MaskKey;
use crate::engine::{Engine, EngineKind, Outputs};
use crate::engine::{Grads, Want};
use crate::error::{Error, Result};
use crate::optim::{OptimConfig, OptimState};
use crate::params::ParamLayout;

pub struct CpuEngine {
    cfg: ModelConfig,
    layout: ParamLayout,
    opt: OptimConfig,
    params: Vec<f32>,
    state: OptimState<f32>,
    last_state: Vec<f32>,
    /// updates done, for error messages
    step: u64,
    // Buffers reused by every step: training allocates nothing once the shape is known.
    act: Activations<f32>,
    scratch: Scratch<f32>,
    grads: Grads<f32>,
}

impl CpuEngine {
    pub fn new(cfg: ModelConfig, opt: OptimConfig, params: Vec<f32>) -> Result<Self> {
        cfg.validate()?;
        opt.validate()?;
        let layout = ParamLayout::new(&cfg);
        layout.check_len("CpuEngine::new", "params", params.len(), "use ParamLayout::init")?;
        let state = OptimState::new(&opt.kind, layout.total);
        Ok(CpuEngine {
            cfg,
            layout,
            opt,
            params,
            state,
            last_state: Vec::new(),
            act: Activations::default(),
            scratch: Scratch::default(),
            grads: Grads::default(),
            step: 0,
        })
    }

    /// Clipping and the optimiser update from `self.grads.params`.
    fn update(&mut self) -> Result<()> {
        let norm = clip(&self.opt.clip, &mut self.grads.params);
        if !norm.is_finite() {
            return Err(Error::NonFinite {
                what: "gradient".into(),
                step: self.step + 1,
            });
        }
        update(&self.opt, &mut self.state, &mut self.params, &self.grads.params);
        // an update can overflow with a finite loss and gradient: a huge weight decay makes
        // Adam's v infinite (the weights then freeze), a huge lr the weights themselves
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        for (what, ok) in [
            ("optimiser state", self.state.slots.iter().all(|s| finite(s))),
            ("weights", finite(&self.params)),
        ] {
            if !ok {
                return Err(Error::NonFinite {
                    what: what.into(),
                    step: self.step + 1,
                });
            }
        }
        self.step += 1;
        Ok(())
    }

    /// The forward pass of a training step into the reused activations (with dropout, the
    /// masks of the update about to be made: SPEC §1); the loss, checked to be finite.
    fn run_forward(&mut self, batch: &Batch<f32>) -> Result<f32> {
        let key = MaskKey::new(&self.cfg.dropout, self.state.step);
        forward_into(&self.cfg, &self.layout, &self.params, batch, Some(&key), &mut self.act);
        self.check_loss(self.act.loss)
    }

    fn check_loss(&self, loss: f64) -> Result<f32> {
        if !loss.is_finite() {
            return Err(Error::NonFinite {
                what: "loss".into(),
                step: self.step + 1,
            });
        }
        Ok(loss as f32)
    }
}

impl Engine for CpuEngine {
    fn describe(&self) -> String {
        format!("cpu ({:?} kernels)", super::Kernel::best()).to_lowercase()
    }
    fn kind(&self) -> EngineKind {
        EngineKind::Cpu
    }
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    fn optim_config(&self) -> &OptimConfig {
        &self.opt
    }

    fn train_step(&mut self, batch: &Batch<f32>, want_loss: bool) -> Result<Option<f32>> {
        batch.validate(&self.cfg)?;
        let loss = self.run_forward(batch)?;
        let (cfg, layout) = (&self.cfg, &self.layout);
        backward_into(
            cfg,
            layout,
            &self.params,
            batch,
            &self.act,
            Want::default(),
            &mut self.scratch,
            &mut self.grads,
        );
        self.update()?;
        self.act.final_state_into(batch.steps, &mut self.last_state);
        Ok(want_loss.then_some(loss))
    }

    fn apply_grads(&mut self, grads: &[f32]) -> Result<()> {
        self.layout.check_len(
            "apply_grads",
            "grads",
            grads.len(),
            "the gradients belong to another model",
        )?;
        self.grads.params.clear();
        self.grads.params.extend_from_slice(grads);
        self.update()
    }

    fn loss_and_grads(&mut self, batch: &Batch<f32>, want: Want) -> Result<(f32, Grads<f32>)> {
        batch.validate(&self.cfg)?;
        let loss = self.run_forward(batch)?;
        let (cfg, layout) = (&self.cfg, &self.layout);
        backward_into(
            cfg,
            layout,
            &self.params,
            batch,
            &self.act,
            want,
            &mut self.scratch,
            &mut self.grads,
        );
        Ok((loss, self.grads.clone()))
    }

    fn forward(&mut self, batch: &Batch<f32>) -> Result<Outputs> {
        batch.validate(&self.cfg)?;
        forward_into(&self.cfg, &self.layout, &self.params, batch, None, &mut self.act);
        Ok(Outputs {
            loss: self.act.loss as f32,
            out: self.act.out.clone(),
            final_state: self.act.final_state(batch.steps),
        })
    }

    fn last_state(&mut self) -> Result<Vec<f32>> {
        Ok(self.last_state.clone())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn set_params(&mut self, p: &[f32]) -> Result<()> {
        self.layout.check_len(
            "set_params",
            "params",
            p.len(),
            "the parameters belong to another model",
        )?;
        self.params.copy_from_slice(p);
        Ok(())
    }

    fn optim_state(&mut self) -> Result<OptimState<f32>> {
        Ok(self.state.clone())
    }

    fn set_optim_state(&mut self, s: &OptimState<f32>) -> Result<()> {
        s.check(&self.opt.kind, self.layout.total)?;
        self.state = s.clone();
        self.step = s.step;
        Ok(())
    }
}
