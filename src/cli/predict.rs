//! `wgrnn predict`: a checkpoint's predictions on a file, to stdout or written atomically.

use clap::Args;
use std::path::PathBuf;
use wgrnn::gpu::GpuOptions;

use super::args::DeviceArgs;
use wgrnn::checkpoint::Checkpoint;
use wgrnn::device::make_engine;
use wgrnn::fsio::{write_atomic, OutputLock, Paths};
use wgrnn::predict::{predict as run_predict, PredictFormat};
use wgrnn::train::{check_batch_and_seq_len, check_host_memory};
use wgrnn::{Error, Result};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Checkpoint of a classifier or regressor
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// File to predict on, in the training data's format (labels and targets may be left out)
    #[arg(long)]
    pub data: PathBuf,
    /// Record format: csv (a header, then one line per record) or jsonl (one JSON object per line)
    #[arg(long, default_value_t = PredictFormat::Csv)]
    pub format: PredictFormat,
    /// Write the records to this file (atomically; locked by <out>.lock) instead of stdout
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sequences per forward pass [default: the training batch size]
    #[arg(long)]
    pub batch: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Load a checkpoint that has no checksum (written by hand or by another tool)
    #[arg(long)]
    pub allow_unverified: bool,
}

pub fn predict(a: &PredictArgs) -> Result<()> {
    Paths::new()
        .input("--checkpoint", Some(&a.checkpoint))
        .input("--data", Some(&a.data))
        .output("--out", a.out.as_deref())
        .check()?;
    let _lock = a.out.as_deref().map(|o| OutputLock::acquire("--out", o)).transpose()?;
    let ck = Checkpoint::load_with(&a.checkpoint, a.allow_unverified)?;
    let tm = ck.train.as_ref();
    let b = a.batch.or(tm.map(|t| t.batch)).unwrap_or(32);
    let t = tm.map_or(64, |t| t.seq_len);
    check_batch_and_seq_len(b, t)?;
    let Some(spec) = tm.and_then(|t| t.data.with_path(&a.data)) else {
        return Err(Error::file(
            &a.checkpoint,
            "names no data format to read --data with",
            "predict with a checkpoint written by train on a file",
        ));
    };
    let mut engine = make_engine(
        a.device.device,
        &GpuOptions::from_env(),
        ck.config,
        ck.optim,
        ck.params.clone(),
        &mut |why| wgrnn::fsio::stderr_line(&why.to_string()),
    )?;
    check_host_memory(&ck.config, b, t, engine.kind())?;
    match &a.out {
        None => {
            let mut emit = |s: &str| wgrnn::fsio::stdout_write(s);
            run_predict(engine.as_mut(), &spec, ck.vocab.clone(), b, t, a.format, &mut emit)?;
        }
        Some(path) => {
            let mut text = String::new();
            let mut emit = |s: &str| {
                text.push_str(s);
                Ok(())
            };
            let n = run_predict(engine.as_mut(), &spec, ck.vocab.clone(), b, t, a.format, &mut emit)?;
            write_atomic(path, text.as_bytes())?;
            wgrnn::fsio::stderr_line(&format!("wrote {n} predictions to {}", path.display()));
        }
    }
    Ok(())
}
