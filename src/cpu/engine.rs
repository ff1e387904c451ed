//! The CPU path as an `Engine`: the reference functions, in f32.

use super::backward::{backward, Grads, Want};
use super::forward::forward;
use super::optim::{clip, update};
use crate::batch::Batch;
use crate::config::ModelConfig;
use crate::engine::{Engine, Outputs};
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
}

impl CpuEngine {
    pub fn new(cfg: ModelConfig, opt: OptimConfig, params: Vec<f32>) -> Result<Self> {
        cfg.validate()?;
        opt.validate()?;
        let layout = ParamLayout::new(&cfg);
        if params.len() != layout.total {
            return Err(Error::shape(
                "CpuEngine::new",
                "params",
                params.len(),
                layout.total,
                "use ParamLayout::init",
            ));
        }
        let state = OptimState::new(&opt.kind, layout.total);
        Ok(CpuEngine {
            cfg,
            layout,
            opt,
            params,
            state,
            last_state: Vec::new(),
            step: 0,
        })
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
        "cpu (gemm)".into()
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
        let act = forward(&self.cfg, &self.layout, &self.params, batch);
        let loss = self.check_loss(act.loss)?;
        let mut g = backward(&self.cfg, &self.layout, &self.params, batch, &act, Want::default());
        let norm = clip(&self.opt.clip, &mut g.params);
        if !norm.is_finite() {
            return Err(Error::NonFinite {
                what: "gradient".into(),
                step: self.step + 1,
            });
        }
        update(&self.opt, &mut self.state, &mut self.params, &g.params);
        self.last_state = act.final_state(batch.batch, batch.steps);
        self.step += 1;
        Ok(want_loss.then_some(loss))
    }

    fn loss_and_grads(&mut self, batch: &Batch<f32>, want: Want) -> Result<(f32, Grads<f32>)> {
        batch.validate(&self.cfg)?;
        let act = forward(&self.cfg, &self.layout, &self.params, batch);
        let loss = self.check_loss(act.loss)?;
        Ok((loss, backward(&self.cfg, &self.layout, &self.params, batch, &act, want)))
    }

    fn forward(&mut self, batch: &Batch<f32>) -> Result<Outputs> {
        batch.validate(&self.cfg)?;
        let act = forward(&self.cfg, &self.layout, &self.params, batch);
        let final_state = act.final_state(batch.batch, batch.steps);
        Ok(Outputs {
            loss: act.loss as f32,
            out: act.out,
            final_state,
        })
    }

    fn last_state(&mut self) -> Result<Vec<f32>> {
        Ok(self.last_state.clone())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn set_params(&mut self, p: &[f32]) -> Result<()> {
        if p.len() != self.layout.total {
            return Err(Error::shape(
                "set_params",
                "params",
                p.len(),
                self.layout.total,
                "the parameters belong to another model",
            ));
        }
        self.params.copy_from_slice(p);
        Ok(())
    }

    fn optim_state(&mut self) -> Result<OptimState<f32>> {
        Ok(self.state.clone())
    }

    fn set_optim_state(&mut self, s: &OptimState<f32>) -> Result<()> {
        if s.slots.len() != self.opt.kind.slots() || s.slots.iter().any(|v| v.len() != self.layout.total) {
            return Err(Error::shape(
                "set_optim_state",
                "optimiser state",
                s.slots.iter().map(Vec::len).sum(),
                self.opt.kind.slots() * self.layout.total,
                "the state belongs to another model or optimiser",
            ));
        }
        self.state = s.clone();
        self.step = s.step;
        Ok(())
    }
}
