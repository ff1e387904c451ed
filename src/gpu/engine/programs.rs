//! Which kernels record this engine's programs: the tuner's choices per batch shape under
//! the caller's overrides, the programs built from them, and what they cost in dispatches.

use super::GpuEngine;
use crate::error::{Error, Result};
use crate::gpu::kernels::{RecurrencePlan, StepKernel};
use crate::gpu::program::Program;
use crate::gpu::schedule;
use crate::gpu::tune::{RecChoice, TuneReport};
use crate::gpu::workspace::Mode;

impl GpuEngine {
    /// Kernel launches per training step for a batch of shape (B, T) (for reports).
    pub fn dispatches_per_step(&mut self, b: usize, t: usize) -> Result<usize> {
        self.dispatches(b, t, Mode::Train)
    }

    /// Kernel launches per forward pass (`Engine::forward`) of a batch of shape (B, T).
    pub fn dispatches_per_forward(&mut self, b: usize, t: usize) -> Result<usize> {
        self.dispatches(b, t, Mode::Forward)
    }

    fn dispatches(&mut self, b: usize, t: usize, mode: Mode) -> Result<usize> {
        self.ws.ensure(&self.ctx, &self.cfg, b, t, &mut self.staging)?;
        Ok(self.program(mode)?.dispatches())
    }

    /// The kernels the programs run: the tuner's report (the matrix-product kernel of each
    /// shape class and the recurrence of each batch shape met so far on this device).
    pub fn kernel_report(&self) -> TuneReport {
        self.tuner.report(&self.kernels)
    }

    /// How the recurrence is recorded from the next call on, instead of the tuner's choice:
    /// the per-step chain or the whole sequence, same results.
    pub fn set_recurrence(&mut self, plan: RecurrencePlan) -> Result<()> {
        self.kernels.with_recurrence(plan)?;
        if self.forced.0 != Some(plan) {
            self.forced.0 = Some(plan);
            self.ws.drop_programs();
        }
        Ok(())
    }

    /// Which step kernels record the per-step chain from the next call on, instead of the
    /// tuner's choice; every one gives the same bits.
    pub fn set_step_kernel(&mut self, step: StepKernel) -> Result<()> {
        self.kernels.with_step(step)?;
        if self.forced.1 != Some(step) {
            self.forced.1 = Some(step);
            self.ws.drop_programs();
        }
        Ok(())
    }

    /// How the recurrence of a batch of `b` sequences is recorded: the tuner's choice for
    /// its class (timed on first use) under the overrides, `Auto` resolved (a split batch's
    /// chunks may resolve otherwise).
    pub fn recurrence(&self, b: usize) -> Result<RecChoice> {
        Ok(self.choice(b)?.resolved(&self.kernels, b, self.cfg.hidden))
    }

    fn choice(&self, b: usize) -> Result<RecChoice> {
        if let (Some(plan), Some(step)) = self.forced {
            return Ok(RecChoice { plan, step });
        }
        let tuned = self.tuner.recurrence(&self.ctx, &self.kernels, b, self.cfg.hidden)?;
        Ok(RecChoice {
            plan: self.forced.0.unwrap_or(tuned.plan),
            step: self.forced.1.unwrap_or(tuned.step),
        })
    }

    /// The program for `mode` at the current shape, built on first use: the schedule's ops
    /// with the recurrence the tuner chose for the shape, their products moved onto the
    /// tuner's kernels (timing the shape classes it has not met yet).
    pub(super) fn program(&mut self, mode: Mode) -> Result<&Program> {
        if !self.ws.current()?.programs.contains_key(&mode) {
            let kernels = self.choice(self.ws.current()?.b)?.apply(&self.kernels)?;
            let mut ops = schedule::ops(self.model(), self.ws.current()?, &kernels, mode)?;
            self.tuner.assign(&self.ctx, &kernels, &mut ops)?;
            let prog = Program::new(&self.ctx, &kernels, &ops)?;
            self.ws.current_mut()?.programs.insert(mode, prog);
        }
        self.ws
            .current()?
            .programs
            .get(&mode)
            .ok_or_else(|| Error::gpu("program missing", "internal error"))
    }
}
