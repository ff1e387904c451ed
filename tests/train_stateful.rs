//! Stateful training keeps the carried state inside the engine: every window that continues
//! the previous one goes through `train_step_carried` (which a GPU engine implements without
//! a read-back), and the loop reads the state (`last_state`) only to save a checkpoint.

use std::sync::atomic::AtomicBool;

use wgrnn::batch::Batch;
use wgrnn::data::{DataSpec, Dataset, TextData};
use wgrnn::optim::OptimState;
use wgrnn::train::{train, PlotScale, Resume, TrainOptions};
use wgrnn::{CpuEngine, Engine, EngineKind, Grads, ModelConfig, OptimConfig, OptimKind, Outputs, ParamLayout, Want};

/// A CPU engine that counts the calls the training loop makes.
struct Counting {
    inner: CpuEngine,
    steps: usize,
    carried_steps: usize,
    state_reads: usize,
}

impl Engine for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn kind(&self) -> EngineKind {
        self.inner.kind()
    }
    fn config(&self) -> &ModelConfig {
        self.inner.config()
    }
    fn layout(&self) -> &ParamLayout {
        self.inner.layout()
    }
    fn optim_config(&self) -> &OptimConfig {
        self.inner.optim_config()
    }
    fn train_step(&mut self, batch: &Batch<f32>, want_loss: bool) -> wgrnn::Result<Option<f32>> {
        self.steps += 1;
        self.inner.train_step(batch, want_loss)
    }
    fn train_step_carried(&mut self, batch: &Batch<f32>, want_loss: bool) -> wgrnn::Result<Option<f32>> {
        assert!(batch.h0.is_none(), "a carried step gets no h0");
        self.carried_steps += 1;
        self.inner.train_step_carried(batch, want_loss)
    }
    fn apply_grads(&mut self, grads: &[f32]) -> wgrnn::Result<()> {
        self.inner.apply_grads(grads)
    }
    fn loss_and_grads(&mut self, batch: &Batch<f32>, want: Want) -> wgrnn::Result<(f32, Grads<f32>)> {
        self.inner.loss_and_grads(batch, want)
    }
    fn forward(&mut self, batch: &Batch<f32>) -> wgrnn::Result<Outputs> {
        self.inner.forward(batch)
    }
    fn last_state(&mut self) -> wgrnn::Result<Vec<f32>> {
        self.state_reads += 1;
        self.inner.last_state()
    }
    fn params(&mut self) -> wgrnn::Result<Vec<f32>> {
        self.inner.params()
    }
    fn set_params(&mut self, p: &[f32]) -> wgrnn::Result<()> {
        self.inner.set_params(p)
    }
    fn optim_state(&mut self) -> wgrnn::Result<OptimState<f32>> {
        self.inner.optim_state()
    }
    fn set_optim_state(&mut self, s: &OptimState<f32>) -> wgrnn::Result<()> {
        self.inner.set_optim_state(s)
    }
}

#[test]
fn continuing_windows_use_train_step_carried_and_the_state_is_read_only_to_save() {
    let text = "the quick brown fox jumps over the lazy dog.\n".repeat(60);
    let data = Dataset::Text(TextData::from_text(&text, "fox", 0.05, None).unwrap());
    let cfg = ModelConfig::char_lm(data.vocab().unwrap().len(), 8, 1);
    let params = ParamLayout::new(&cfg).init(&cfg, 1);
    let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1);
    let mut engine = Counting {
        inner: CpuEngine::new(cfg, opt, params).unwrap(),
        steps: 0,
        carried_steps: 0,
        state_reads: 0,
    };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-stateful");
    std::fs::create_dir_all(&dir).unwrap();
    // 2 streams of 8-character windows: more than 20 windows per pass, so one pass
    let opts = TrainOptions {
        steps: 20,
        batch: 2,
        seq_len: 8,
        seed: 1,
        eval_every: 10,
        val_batches: 1,
        sample_every: 0,
        sample_len: 0,
        out: Some(dir.join("m.safetensors")),
        log: None,
        plot: None,
        plot_scale: PlotScale::Linear,
        quiet: true,
        stateful: true,
        val_fraction: 0.05,
        data: DataSpec::Bundled,
        data_fingerprint: None,
    };
    train(&mut engine, &data, &opts, Resume::default(), &AtomicBool::new(false)).unwrap();
    assert_eq!(engine.steps, 1, "only the first window of the pass starts from zeros");
    assert_eq!(engine.carried_steps, 19);
    assert_eq!(engine.state_reads, 2, "one read per checkpoint (steps 10 and 20)");
}
