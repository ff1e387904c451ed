//! The GPU path as an `Engine`. Parameters, gradients, optimiser state and every hidden
//! state stay on the device; per call only the batch goes up, and only what the caller asks
//! for comes back. `schedule` decides what runs, `workspace` holds the per-batch buffers and
//! the state carried between training steps, `programs` which kernels record each batch
//! shape's programs; this file owns the model's buffers, submits, and reads back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch_info;
use super::buffers::{check_limits, tensor, upload, Scale, Staging};
use super::context::GpuContext;
use super::kernels::{adam_bias_corrections, Kernels, RecurrencePlan, StepKernel};
use super::program::Program;
use super::scalars::{probed, step_parts, BIAS_CORR, LOSS, NORM_SQ, PROBE_WORDS, READ_WITH_LOSS, SCALARS, STEP};
use super::schedule::{self, Model};
use super::tune::Tuner;
use super::workspace::{table_floats, Carried, Mode, Workspace, H0};
use crate::batch::Batch;
use crate::config::ModelConfig;
use crate::engine::{Engine, EngineKind, Grads, Outputs, Want};
use crate::error::{Error, Result};
use crate::optim::{OptimConfig, OptimKind, OptimState};
use crate::params::ParamLayout;

mod programs;

pub struct GpuEngine {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    /// which matrix-product kernel runs each product and how each batch shape's recurrence
    /// is recorded (the device's, shared)
    tuner: Arc<Tuner>,
    /// what `set_recurrence` and `set_step_kernel` set, over the tuner's choice
    forced: (Option<RecurrencePlan>, Option<StepKernel>),
    cfg: ModelConfig,
    layout: ParamLayout,
    opt: OptimConfig,
    /// the parameters (0..layout.total; everything outside the schedule sees only these),
    /// then an embedding's token tables at `table` (`schedule::Model::table`)
    params: wgpu::Buffer,
    table: Option<usize>,
    grads: wgpu::Buffer,
    slots: Vec<wgpu::Buffer>,
    /// (SCALARS): the loss, Σ g², Adam's bias corrections and the update number (`scalars`)
    scalars: wgpu::Buffer,
    /// (PROBE_WORDS): the non-finite probe's flags and records (`scalars`)
    probe: wgpu::Buffer,
    /// bound where a kernel's binding is unused (SGD without momentum)
    dummy: wgpu::Buffer,
    ws: Workspace,
    /// clipping and the optimiser alone, for `apply_grads` (built on first use)
    update: Option<Program>,
    staging: Staging,
    /// updates done
    step: u64,
    /// host time spent recording the latest step's command encoder
    record_time: Duration,
}

impl GpuEngine {
    pub fn new(ctx: Arc<GpuContext>, cfg: ModelConfig, opt: OptimConfig, params: Vec<f32>) -> Result<Self> {
        cfg.validate()?;
        opt.validate()?;
        let layout = ParamLayout::new(&cfg);
        layout.check_len("GpuEngine::new", "params", params.len(), "use ParamLayout::init")?;
        let kernels = ctx.kernels()?;
        let tuner = ctx.tuner()?;
        let n = layout.total;
        // an embedding's token tables go past the parameters, where the step kernels read
        // their weights, unless that outgrows a binding (then the embedded-inputs path runs)
        let tail = table_floats(&cfg);
        let table = (tail > 0 && check_limits(&ctx, "parameters", n + tail, Scale::Model).is_ok()).then_some(n);
        let c = ctx.clone();
        ctx.scoped("allocating parameters", || {
            let with_tables = n + table.map_or(0, |_| tail);
            let params_buf = tensor(&c, "parameters and token tables", with_tables, Scale::Model)?;
            let grads = tensor(&c, "gradients", n, Scale::Model)?;
            let slots = (0..opt.kind.slots())
                .map(|i| tensor(&c, &format!("optimiser state {i}"), n, Scale::Model))
                .collect::<Result<Vec<_>>>()?;
            let scalars = tensor(&c, "scalars", SCALARS, Scale::Model)?;
            let probe = tensor(&c, "non-finite probe", PROBE_WORDS, Scale::Model)?;
            let dummy = tensor(&c, "unused binding", 64, Scale::Model)?;
            upload(&c, &params_buf, 0, &params);
            Ok(GpuEngine {
                ctx: c.clone(),
                kernels,
                tuner,
                forced: (None, None),
                cfg,
                layout,
                opt,
                params: params_buf,
                table,
                grads,
                slots,
                scalars,
                probe,
                dummy,
                ws: Workspace::default(),
                update: None,
                staging: Staging::default(),
                step: 0,
                record_time: Duration::ZERO,
            })
        })
    }

    /// Host time spent recording the latest training step's commands (zero before the first).
    pub fn last_record_ms(&self) -> f64 {
        self.record_time.as_secs_f64() * 1e3
    }

    /// Bytes of every device buffer the engine holds now: parameters, gradients, optimiser
    /// state, the cached batch shapes' activations and programs, and the read-back staging.
    pub fn gpu_buffer_bytes(&self) -> u64 {
        let model = [&self.params, &self.grads, &self.scalars, &self.probe, &self.dummy];
        model
            .into_iter()
            .chain(self.slots.iter())
            .map(|b| b.size())
            .sum::<u64>()
            + self.ws.bytes()
            + self.staging.bytes()
    }

    /// Device-to-host reads so far (each one a full synchronisation with the GPU).
    pub fn readbacks(&self) -> u64 {
        self.staging.reads()
    }

    /// Pretends the adapter's largest storage binding is `bytes` (None: the real limit), so
    /// tests can split small batches into chunks as a large batch would be. Drops the cached
    /// batch shapes.
    pub fn set_binding_limit(&mut self, bytes: Option<u64>) -> Result<()> {
        self.ws
            .set_binding_limit(&self.ctx, &self.cfg, bytes, &mut self.staging)
    }

    /// The model side of every schedule.
    fn model(&self) -> Model<'_> {
        Model {
            cfg: &self.cfg,
            layout: &self.layout,
            opt: &self.opt,
            params: &self.params,
            grads: &self.grads,
            slots: &self.slots,
            scalars: &self.scalars,
            probe: &self.probe,
            dummy: &self.dummy,
            table: self.table,
        }
    }

    /// Writes the step-dependent values of update `k` (Adam's bias corrections, the step
    /// the non-finite probe records); like an upload, they land before the next submission.
    fn set_update_number(&self, k: u64) {
        if let OptimKind::Adam { beta1, beta2, .. } = self.opt.kind {
            upload(
                &self.ctx,
                &self.scalars,
                BIAS_CORR,
                &adam_bias_corrections(beta1, beta2, k),
            );
        }
        // for the non-finite probe, which records the first bad step on the device
        upload(&self.ctx, &self.scalars, STEP, &step_parts(k));
    }

    /// Validates the batch, makes its shape current, queues its upload and returns a
    /// command encoder with the program for `mode` recorded into it (after the copy of the
    /// carried state, for `H0::Carried`); the recording time is kept for `last_record_ms`.
    fn prepare(&mut self, batch: &Batch<f32>, mode: Mode, h0: H0) -> Result<wgpu::CommandEncoder> {
        batch.validate(&self.cfg)?;
        self.ws
            .ensure(&self.ctx, &self.cfg, batch.batch, batch.steps, &mut self.staging)?;
        self.program(mode)?;
        // a carried state that ensure() had to read back goes up like a batch's own h0
        let h0 = match (h0, &self.ws.carried) {
            (H0::Carried, Carried::Host(v)) => H0::Host(v),
            (h0, _) => h0,
        };
        let carry_in = matches!(h0, H0::Carried);
        // the dropout masks of the update after the `step` done so far
        let info = batch_info::words(&self.cfg, batch, self.step);
        self.ws.upload_batch(&self.ctx, &self.cfg, batch, h0, &info)?;
        let start = Instant::now();
        let mut enc = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgrnn step"),
        });
        if carry_in {
            self.ws.record_carry_in(&self.cfg, &mut enc)?;
        }
        self.ws.current()?.programs[&mode].record(&mut enc);
        self.record_time = start.elapsed();
        Ok(enc)
    }

    /// New weights or state replace whatever the non-finite probe saw.
    fn reset_probe(&self) {
        upload(&self.ctx, &self.probe, 0, &[0u32; PROBE_WORDS]);
    }

    fn check_loss(&self, loss: f32) -> Result<f32> {
        if !loss.is_finite() {
            return Err(Error::NonFinite {
                what: "loss".into(),
                step: self.step + 1,
            });
        }
        Ok(loss)
    }

    /// One training step from the initial states `h0`.
    fn train(&mut self, batch: &Batch<f32>, h0: H0, want_loss: bool) -> Result<Option<f32>> {
        let ctx = self.ctx.clone();
        ctx.scoped("train_step", || {
            let k = self.step + 1;
            self.set_update_number(k);
            let enc = self.prepare(batch, Mode::Train, h0)?;
            let sh = self.ws.current()?;
            let carried = Carried::Device { b: sh.b, t: sh.t };
            let loss = if want_loss {
                // [loss, Σ g²] and the probe in one read
                let (scalars, probe) = (self.scalars.clone(), self.probe.clone());
                let regions = [(&scalars, LOSS, READ_WITH_LOSS), (&probe, 0, PROBE_WORDS)];
                let v = self.staging.submit_and_read(&ctx, enc, &regions)?;
                // the CPU path's order: an update that went bad before this step stopped it
                // there; at this step the loss, the gradient, then the state and weights
                let bad = probed(&v[1]);
                let v = &v[0];
                if let Some((what, at)) = bad.filter(|&(_, at)| at < k) {
                    return Err(Error::NonFinite {
                        what: what.into(),
                        step: at,
                    });
                }
                let loss = self.check_loss(v[LOSS])?;
                if !v[NORM_SQ].is_finite() {
                    return Err(Error::NonFinite {
                        what: "gradient".into(),
                        step: k,
                    });
                }
                if let Some((what, at)) = bad {
                    return Err(Error::NonFinite {
                        what: what.into(),
                        step: at,
                    });
                }
                Some(loss)
            } else {
                ctx.queue.submit([enc.finish()]);
                None
            };
            self.step = k;
            self.ws.carried = carried;
            Ok(loss)
        })
    }
}

impl Engine for GpuEngine {
    fn describe(&self) -> String {
        format!("gpu ({})", self.ctx.describe())
    }
    fn kind(&self) -> EngineKind {
        EngineKind::Gpu
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
        let h0 = match &batch.h0 {
            Some(h0) => H0::Host(h0),
            None => H0::Zeros,
        };
        self.train(batch, h0, want_loss)
    }

    /// The previous step's final state is copied on the device into this step's initial
    /// state, in the same encoder: nothing is read back unless the state had to leave the
    /// device (its shape evicted, or the binding limit changed).
    fn train_step_carried(&mut self, batch: &Batch<f32>, want_loss: bool) -> Result<Option<f32>> {
        self.cfg.check_carry()?;
        match self.ws.carried {
            Carried::Device { b, .. } if b == batch.batch => self.train(batch, H0::Carried, want_loss),
            // no state yet, or one of another batch size: the host path and its errors
            _ => {
                let mut carried = batch.clone();
                carried.h0 = Some(self.last_state()?);
                self.train_step(&carried, want_loss)
            }
        }
    }

    /// The gradients go up into the gradient buffer and the update runs there: nothing is
    /// read back (the gradients' finiteness is checked on the host, where they are).
    fn apply_grads(&mut self, grads: &[f32]) -> Result<()> {
        self.layout.check_len(
            "apply_grads",
            "grads",
            grads.len(),
            "the gradients belong to another model",
        )?;
        if !grads.iter().all(|g| g.is_finite()) {
            return Err(Error::NonFinite {
                what: "gradient".into(),
                step: self.step + 1,
            });
        }
        let ctx = self.ctx.clone();
        ctx.scoped("apply_grads", || {
            if self.update.is_none() {
                let ops = schedule::update_ops(self.model())?;
                self.update = Some(Program::new(&ctx, &self.kernels, &ops)?);
            }
            upload(&ctx, &self.grads, 0, grads);
            self.set_update_number(self.step + 1);
            let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgrnn update"),
            });
            if let Some(p) = &self.update {
                p.record(&mut enc);
            }
            ctx.queue.submit([enc.finish()]);
            self.step += 1;
            Ok(())
        })
    }

    fn loss_and_grads(&mut self, batch: &Batch<f32>, want: Want) -> Result<(f32, Grads<f32>)> {
        let ctx = self.ctx.clone();
        ctx.scoped("loss_and_grads", || {
            let h0 = batch.h0.as_deref().map_or(H0::Zeros, H0::Host);
            let enc = self.prepare(
                batch,
                Mode::Grads {
                    dx: want.dx,
                    dh0: want.dh0,
                },
                h0,
            )?;
            let sh = self.ws.current()?;
            let (t_in, b) = (self.cfg.input_steps(sh.t), sh.b);
            let dx_len = if want.dx { t_in * b * self.cfg.in_width(0) } else { 0 };
            let dh0_len = if want.dh0 {
                self.cfg.state_rows() * b * self.cfg.hidden
            } else {
                0
            };
            let (dx, dh0) = (sh.dx.clone(), sh.dh0.clone());
            let regions = [
                (&self.scalars, LOSS, 1),
                (&self.grads, 0, self.layout.total),
                (&dx, 0, dx_len),
                (&dh0, 0, dh0_len),
                // an earlier `apply_grads` (data-parallel training, which reads nothing
                // back) may have left non-finite weights or state
                (&self.probe, 0, PROBE_WORDS),
            ];
            let mut v = self.staging.submit_and_read(&ctx, enc, &regions)?;
            if let Some((what, at)) = probed(&v[4]) {
                return Err(Error::NonFinite {
                    what: what.into(),
                    step: at,
                });
            }
            let loss = self.check_loss(v[0][0])?;
            let dh0 = want.dh0.then(|| std::mem::take(&mut v[3]));
            let dx = want.dx.then(|| std::mem::take(&mut v[2]));
            Ok((
                loss,
                Grads {
                    params: std::mem::take(&mut v[1]),
                    dx,
                    dh0,
                },
            ))
        })
    }

    fn forward(&mut self, batch: &Batch<f32>) -> Result<Outputs> {
        let ctx = self.ctx.clone();
        ctx.scoped("forward", || {
            let h0 = batch.h0.as_deref().map_or(H0::Zeros, H0::Host);
            let enc = self.prepare(batch, Mode::Forward, h0)?;
            let sh = self.ws.current()?;
            let bh = sh.b * self.cfg.hidden;
            let n = self.cfg.target_steps(sh.t) * sh.b;
            let out = sh.out.clone();
            let finals: Vec<_> = sh
                .directions()
                .map(|(_, d, h)| (h.clone(), sh.final_row(d) * bh))
                .collect();
            let mut regions = vec![(&self.scalars, LOSS, 1), (&out, 0, n * self.cfg.output)];
            regions.extend(finals.iter().map(|(h, off)| (h, *off, bh)));
            let v = self.staging.submit_and_read(&ctx, enc, &regions)?;
            Ok(Outputs {
                loss: v[0][0],
                out: v[1].clone(),
                final_state: v[2..].concat(),
            })
        })
    }

    fn last_state(&mut self) -> Result<Vec<f32>> {
        self.ws.read_carried(&self.ctx, &self.cfg, &mut self.staging)
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        let regions = [(&self.params, 0, self.layout.total)];
        Ok(self.staging.read(&self.ctx, "reading parameters", &regions)?.remove(0))
    }

    fn set_params(&mut self, p: &[f32]) -> Result<()> {
        self.layout.check_len(
            "set_params",
            "params",
            p.len(),
            "the parameters belong to another model",
        )?;
        upload(&self.ctx, &self.params, 0, p);
        self.reset_probe();
        Ok(())
    }

    fn optim_state(&mut self) -> Result<OptimState<f32>> {
        let regions: Vec<_> = self.slots.iter().map(|s| (s, 0, self.layout.total)).collect();
        let slots = self.staging.read(&self.ctx, "reading optimiser state", &regions)?;
        Ok(OptimState { step: self.step, slots })
    }

    fn set_optim_state(&mut self, s: &OptimState<f32>) -> Result<()> {
        s.check(&self.opt.kind, self.layout.total)?;
        for (buf, v) in self.slots.iter().zip(&s.slots) {
            upload(&self.ctx, buf, 0, v);
        }
        self.step = s.step;
        self.reset_probe();
        Ok(())
    }
}
