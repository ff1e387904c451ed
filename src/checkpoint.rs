//! Checkpoints as safetensors files.
//!
//! Model tensors carry the PyTorch names and shapes of SPEC §3 (unpadded), so
//! `model.load_state_dict(safetensors.torch.load_file(path), strict=False)` works on an
//! `nn.Embedding` + `nn.RNN` + `nn.Linear` module (`Checkpoint::export` writes the model
//! tensors alone, for `strict=True`). Besides them: the optimiser state as
//! `optim.<slot>.<name>`, the carried hidden state of a stateful run as `state.h` (L, B, H),
//! and in the metadata the config, vocabulary, step, optimiser settings, data and sampler
//! position, a format version and a checksum of all tensor bytes. Files are written
//! atomically (`fsio::write_atomic`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::config::check_batch_and_seq_len;
use crate::config::{ModelConfig, MAX_LAYERS};
use crate::data::{read_file, DataSpec, Dataset, Streams, Vocab};
use crate::error::{Error, Result};
use crate::fsio::{write_atomic, write_atomic_new};
use crate::optim::{OptimConfig, OptimKind, OptimState};
use crate::params::{ParamLayout, TensorSpec};
use crate::tensor_file::{f32_bytes, tensor_bytes, write_tensors, Fnv, TensorFile};

pub const FORMAT: &str = "wgrnn-checkpoint-1";
/// The metadata format of `wgrnn export` files (model tensors only).
pub const EXPORT_FORMAT: &str = "wgrnn-model-1";

/// Most tensors a checkpoint can hold: the model's (embedding, 4 per layer and direction,
/// head weight and bias) with up to two optimiser slots each, and the carried state. A
/// header listing more is refused before it is parsed further.
const MAX_TENSORS: usize = 3 * (1 + 4 * 2 * MAX_LAYERS + 2) + 1;

/// How training was run, so that `--resume` continues exactly where it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainMeta {
    pub seed: u64,
    /// B
    pub batch: usize,
    /// T
    pub seq_len: usize,
    pub val_fraction: f64,
    pub stateful: bool,
    pub data: DataSpec,
    /// word position of the batch sampler's ChaCha8 generator (a u128, as decimal text)
    pub rng_word_pos: String,
    /// windows served in the current pass of a stateful run
    pub stream_pos: usize,
    /// size and hash of the data file the run read (`data_fingerprint`), so that a resumed
    /// run or `eval` notices a changed or replaced file; None for bundled data and tasks
    #[serde(default)]
    pub data_fingerprint: Option<String>,
}

/// "<size> bytes, fnv1a64 <hash>" of the file a text or CSV spec names (its path stored
/// absolute), None for bundled data and tasks. FNV-1a: fast, non-cryptographic; it detects a
/// changed file, not a forged one.
pub fn data_fingerprint(spec: &DataSpec) -> Result<Option<String>> {
    let (DataSpec::Text { path } | DataSpec::Csv { path, .. }) = spec else {
        return Ok(None);
    };
    let bytes = read_file(path)?;
    let mut h = Fnv::new();
    h.add(&bytes);
    Ok(Some(format!("{} bytes, fnv1a64 {}", bytes.len(), h.hex())))
}

/// Refuses to read data whose file is no longer the one the checkpoint was trained on.
pub fn check_data_fingerprint(tm: &TrainMeta) -> Result<()> {
    let Some(stored) = &tm.data_fingerprint else {
        return Ok(());
    };
    let hint = "pass --data FILE to use this (or another) file anyway";
    let now = data_fingerprint(&tm.data).map_err(|e| {
        Error::file(
            tm.data.name(),
            format!("the checkpoint's data file cannot be read ({e})"),
            hint,
        )
    })?;
    if now.as_deref() != Some(stored.as_str()) {
        return Err(Error::file(
            tm.data.name(),
            format!(
                "changed since the checkpoint was written (then: {stored}; now: {})",
                now.unwrap_or_default()
            ),
            hint,
        ));
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub config: ModelConfig,
    pub optim: OptimConfig,
    /// the flat, padded buffer of `ParamLayout::new(&config)`
    pub params: Vec<f32>,
    pub optim_state: OptimState<f32>,
    pub vocab: Option<Vocab>,
    /// optimiser updates done
    pub step: u64,
    pub train: Option<TrainMeta>,
    /// (L·dirs, B, H) state carried into the next window of a stateful run
    pub carried: Option<Vec<f32>>,
}
/// Names of the optimiser's state buffers, in `OptimState::slots` order.
fn slot_names(kind: &OptimKind) -> &'static [&'static str] {
    match kind {
        OptimKind::Sgd { .. } if kind.slots() == 0 => &[],
        OptimKind::Sgd { .. } => &["momentum"],
        OptimKind::Adam { .. } => &["m", "v"],
        OptimKind::Adagrad { .. } => &["sum"],
    }
}

impl Checkpoint {
    /// The model's tensors by their PyTorch names (SPEC §3), unpadded.
    fn model_tensors(&self) -> Vec<(String, Vec<usize>, Vec<u8>)> {
        let layout = ParamLayout::new(&self.config);
        let tensor = |t: &TensorSpec| (t.name.clone(), t.shape.clone(), f32_bytes(&self.params[t.range()]));
        layout.tensors.iter().map(tensor).collect()
    }

    /// The model alone (`wgrnn export`): its tensors and, in the metadata, the config; no
    /// optimiser or carried state, so `load_state_dict(strict=True)` takes it. Replaces an
    /// existing `path` only when `replace` (else `fsio::write_atomic_new`).
    pub fn export(&self, path: &Path, replace: bool) -> Result<usize> {
        let tensors = self.model_tensors();
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), EXPORT_FORMAT.into());
        meta.insert("config".into(), json(&self.config));
        let bytes = tensor_bytes(path, &tensors, meta)?;
        match replace {
            true => write_atomic(path, &bytes)?,
            false => write_atomic_new(path, &bytes)?,
        }
        Ok(tensors.len())
    }

    /// Model tensors by their PyTorch names, optimiser slots as `optim.<slot>.<name>`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let layout = ParamLayout::new(&self.config);
        let mut tensors = self.model_tensors();
        for (slot, buf) in slot_names(&self.optim.kind).iter().zip(&self.optim_state.slots) {
            for t in &layout.tensors {
                tensors.push((
                    format!("optim.{slot}.{}", t.name),
                    t.shape.clone(),
                    f32_bytes(&buf[t.range()]),
                ));
            }
        }
        if let (Some(h), Some(tm)) = (&self.carried, &self.train) {
            let shape = vec![self.config.state_rows(), tm.batch, self.config.hidden];
            tensors.push(("state.h".into(), shape, f32_bytes(h)));
        }
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("config".into(), json(&self.config));
        meta.insert("optim".into(), json(&self.optim));
        meta.insert("step".into(), self.step.to_string());
        if let Some(v) = &self.vocab {
            meta.insert("vocab".into(), v.as_string());
        }
        if let Some(tm) = &self.train {
            meta.insert("train".into(), json(tm));
        }
        write_tensors(path, &tensors, meta)
    }

    /// `load_with(path, false)`: the checksum is required.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, false)
    }

    /// Reads and validates everything: format, checksum (over the whole content; a file
    /// without one only with `allow_unverified`), the metadata (`validate`), the tensor set,
    /// dtypes and shapes, and finite values. Every command that reads a checkpoint comes here.
    pub fn load_with(path: &Path, allow_unverified: bool) -> Result<Self> {
        let file = TensorFile::open(path, MAX_TENSORS)?;
        let meta = file.metadata();
        let bad = |detail: String| Error::file(path, detail, "the checkpoint is corrupt or was not written by wgrnn");
        match meta.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => {
                return Err(bad(format!(
                    "unsupported checkpoint format {f:?} (this wgrnn reads {FORMAT:?})"
                )))
            }
            None => return Err(bad("no wgrnn metadata (\"format\" is missing)".into())),
        }
        let get = |key: &str| meta.get(key).ok_or_else(|| bad(format!("metadata {key:?} is missing")));
        let config: ModelConfig =
            serde_json::from_str(get("config")?).map_err(|e| bad(format!("metadata \"config\": {e}")))?;
        config.validate().map_err(|e| bad(format!("stored config: {e}")))?;
        let optim: OptimConfig =
            serde_json::from_str(get("optim")?).map_err(|e| bad(format!("metadata \"optim\": {e}")))?;
        optim.validate().map_err(|e| bad(format!("stored optimiser: {e}")))?;
        let step: u64 = get("step")?
            .parse()
            .map_err(|_| bad("metadata \"step\" is not a number".into()))?;
        let vocab = match meta.get("vocab") {
            Some(s) => {
                Some(Vocab::from_stored(s).ok_or_else(|| bad("metadata \"vocab\" is not sorted and unique".into()))?)
            }
            None => None,
        };
        if let (Some(v), Some(n)) = (&vocab, config.vocab()) {
            if v.len() != n {
                return Err(bad(format!(
                    "vocabulary has {} characters, the config says V = {n}",
                    v.len()
                )));
            }
        }
        let train: Option<TrainMeta> = match meta.get("train") {
            Some(s) => Some(serde_json::from_str(s).map_err(|e| bad(format!("metadata \"train\": {e}")))?),
            None => None,
        };

        if let Some(tm) = &train {
            validate_train(tm, &config).map_err(|e| bad(format!("stored training state: {e}")))?;
        }

        let layout = ParamLayout::new(&config);
        let slots = slot_names(&optim.kind);
        // the exact tensor set, checked before any tensor is copied out
        let mut expected: Vec<String> = layout.tensors.iter().map(|t| t.name.clone()).collect();
        for slot in slots {
            expected.extend(layout.tensors.iter().map(|t| format!("optim.{slot}.{}", t.name)));
        }
        expected.push("state.h".into());
        if let Some(n) = file.names()?.into_iter().find(|n| !expected.contains(n)) {
            return Err(bad(format!("unexpected tensor {n:?} for the stored model {config}")));
        }
        // every tensor of the config must be in the file, so a config claiming more than the
        // file holds is rejected before the buffers are allocated
        let needed = (layout.count() as u128) * 4 * (1 + slots.len() as u128);
        if needed > file.len() as u128 {
            return Err(bad(format!(
                "the config needs {needed} bytes of tensors but the file has {} bytes",
                file.len()
            )));
        }
        let mut params = vec![0.0f32; layout.total];
        for t in &layout.tensors {
            params[t.range()].copy_from_slice(&file.f32(&t.name, &t.shape)?);
        }
        let mut optim_state = OptimState::new(&optim.kind, layout.total);
        optim_state.step = step;
        for (slot, buf) in slots.iter().zip(optim_state.slots.iter_mut()) {
            for t in &layout.tensors {
                buf[t.range()].copy_from_slice(&file.f32(&format!("optim.{slot}.{}", t.name), &t.shape)?);
            }
        }
        let carried = match (&train, file.info("state.h")?) {
            (Some(tm), Some(_)) => Some(file.f32("state.h", &[config.state_rows(), tm.batch, config.hidden])?),
            _ => None,
        };
        // after the per-tensor checks, so a missing or misshapen tensor is named as such
        file.verify_checksum(allow_unverified)?;
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !finite(&params) {
            return Err(bad("the weights hold NaN or infinite values".into()));
        }
        if !optim_state.slots.iter().all(|s| finite(s)) || !carried.as_deref().is_none_or(finite) {
            return Err(bad("the optimiser or carried state holds NaN or infinite values".into()));
        }
        Ok(Checkpoint {
            config,
            optim,
            params,
            optim_state,
            vocab,
            step,
            train,
            carried,
        })
    }
}

/// The training metadata against what any run allows: a checkpoint whose B or T is 0, whose
/// sampler position is not a number or whose stream position is past any pass would
/// otherwise fail deep inside `eval` or `--resume`. Positions are checked against the data
/// itself when it is loaded (`check_positions`).
fn validate_train(tm: &TrainMeta, cfg: &ModelConfig) -> Result<()> {
    check_batch_and_seq_len(tm.batch, tm.seq_len)?;
    if !(0.0..0.5).contains(&tm.val_fraction) {
        return Err(Error::config("val-fraction", tm.val_fraction, "must be in [0, 0.5)"));
    }
    tm.rng_word_pos
        .parse::<u128>()
        .map_err(|_| Error::config("rng_word_pos", &tm.rng_word_pos, "must be a number"))?;
    let text = matches!(tm.data, DataSpec::Text { .. } | DataSpec::Bundled);
    if tm.stateful && !text {
        return Err(Error::config("stateful", true, "only text data is read statefully"));
    }
    if tm.stateful {
        cfg.check_carry()?;
    }
    if text != cfg.is_tokens() {
        return Err(Error::config(
            "data",
            tm.data.name(),
            "does not fit the stored model's inputs",
        ));
    }
    Ok(())
}

/// The stored positions against the data a resumed run loaded: the windows must fit, and a
/// stateful run's stream position must lie inside one pass.
pub fn check_positions(tm: &TrainMeta, data: &Dataset, name: &str) -> Result<()> {
    data.check_len(tm.batch, tm.seq_len, tm.stateful, name)?;
    if let (true, Dataset::Text(d)) = (tm.stateful, data) {
        let per_pass = Streams::windows_per_pass(d.train.len(), tm.batch, tm.seq_len);
        if tm.stream_pos > per_pass {
            return Err(Error::file(
                name,
                format!(
                    "the checkpoint's stream position {} is past the {per_pass} windows of one pass over this data",
                    tm.stream_pos
                ),
                "the data file changed; resume with the data the run was trained on",
            ));
        }
    }
    Ok(())
}

/// serde_json of a metadata value; these plain structs always serialise.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
