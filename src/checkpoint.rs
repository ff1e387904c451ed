//! Checkpoints as safetensors files.
//!
//! Model tensors carry the PyTorch names and shapes of SPEC §3 (unpadded), so
//! `model.load_state_dict(safetensors.torch.load_file(path), strict=False)` works on an
//! `nn.Embedding` + `nn.RNN` + `nn.Linear` module. Besides them: the optimiser state as
//! `optim.<slot>.<name>`, the carried hidden state of a stateful run as `state.h` (L, B, H),
//! and in the metadata the config, vocabulary, step, optimiser settings, data and sampler
//! position, a format version and a checksum of all tensor bytes.
//!
//! Files are written to a temporary sibling, fsynced and renamed over the target, so a crash
//! at any moment leaves either the old or the new file, never a mix.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::batch::{to_time_major, Batch, Inputs, Targets};
use crate::config::{Head, Input, ModelConfig, SeqShape};
use crate::data::{read_file, DataSpec, Vocab};
use crate::error::{Error, Result};
use crate::optim::{OptimConfig, OptimKind, OptimState};
use crate::params::ParamLayout;

pub const FORMAT: &str = "wgrnn-checkpoint-1";

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
    /// (L, B, H) state carried into the next window of a stateful run
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

/// FNV-1a (64 bit) over every tensor's name and bytes in name order: cheap, and any flipped
/// bit in the data changes it.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut named: Vec<(&str, &[u8])> = tensors.collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in named {
        for &byte in name.as_bytes().iter().chain([0u8].iter()).chain(bytes) {
            h ^= byte as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Writes `f32` tensors and metadata as one safetensors file, atomically; adds the checksum.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    mut meta: HashMap<String, String>,
) -> Result<()> {
    meta.insert(
        "checksum".into(),
        checksum(tensors.iter().map(|(n, _, d)| (n.as_str(), d.as_slice()))),
    );
    let views = tensors
        .iter()
        .map(|(n, s, d)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), d)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| {
            Error::file(
                path,
                format!("cannot serialise: {e}"),
                "this is a bug; please report it",
            )
        })?;
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| {
        Error::file(
            path,
            format!("cannot serialise: {e}"),
            "this is a bug; please report it",
        )
    })?;
    write_atomic(path, &bytes)
}

/// The temporary file being written, so that an exit in the middle of a write (a second
/// Ctrl-C) can remove it instead of leaving it behind.
static PENDING: Mutex<Option<PathBuf>> = Mutex::new(None);

fn set_pending(tmp: Option<PathBuf>) {
    *PENDING.lock().unwrap_or_else(|p| p.into_inner()) = tmp;
}

/// Removes the temporary file of a write in progress, if any; for an exit that cannot wait
/// for the write to end. The target file is never touched.
pub fn remove_pending_write() {
    if let Some(tmp) = PENDING.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = std::fs::remove_file(tmp);
    }
}

/// temp file in the same directory + fsync + rename + fsync of the directory
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "is not a file name", "pass a path like out/model.safetensors"))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let hint = "check that the directory exists, is writable and has free space";
    let fail = |op: &str, e: std::io::Error| Error::file(path, format!("cannot {op}: {e}"), hint);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    set_pending(Some(tmp.clone()));
    let written = write().map_err(|e| fail("write", e));
    let renamed = written.and_then(|_| std::fs::rename(&tmp, path).map_err(|e| fail("rename into place", e)));
    set_pending(None);
    if let Err(e) = renamed {
        // leave nothing half-written behind; the target itself was never touched
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // the rename is durable only once the directory entry is; not every file system allows
    // syncing a directory, and the data is already safe in the file
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A parsed safetensors file whose checksum (when present) matched.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = read_file(path)?;
        let file = TensorFile {
            path: path.to_path_buf(),
            bytes,
        };
        file.parse()?;
        Ok(file)
    }

    /// The safetensors parser checks the header length against the file size and every
    /// tensor's offsets against the data; nothing is allocated from a length in the file.
    fn parse(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| {
            Error::file(
                &self.path,
                format!("not a valid safetensors file ({e})"),
                "the file is truncated or corrupt; use an earlier checkpoint or re-create it",
            )
        })
    }

    pub fn metadata(&self) -> Result<HashMap<String, String>> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes).map_err(|e| {
            Error::file(
                &self.path,
                format!("not a valid safetensors file ({e})"),
                "the file is corrupt",
            )
        })?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }

    pub fn verify_checksum(&self) -> Result<()> {
        let st = self.parse()?;
        let Some(expected) = self.metadata()?.get("checksum").cloned() else {
            return Ok(());
        };
        let got = checksum(st.iter().map(|(n, v)| (n, v.data())));
        if got != expected {
            return Err(Error::file(
                &self.path,
                format!("checksum mismatch (stored {expected}, computed {got}): the tensor data is corrupt"),
                "use an earlier checkpoint",
            ));
        }
        Ok(())
    }

    pub fn names(&self) -> Result<Vec<String>> {
        Ok(self.parse()?.names().into_iter().map(String::from).collect())
    }

    /// (dtype, shape) of a tensor, or None when absent.
    pub fn info(&self, name: &str) -> Result<Option<(Dtype, Vec<usize>)>> {
        Ok(self.parse()?.tensor(name).ok().map(|t| (t.dtype(), t.shape().to_vec())))
    }

    /// An f32 tensor of exactly this shape.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let st = self.parse()?;
        let t = st.tensor(name).map_err(|_| {
            Error::file(
                &self.path,
                format!("missing tensor {name:?}"),
                "the file was not written for this model / by this program",
            )
        })?;
        if t.dtype() != Dtype::F32 {
            return Err(Error::file(
                &self.path,
                format!("tensor {name:?} has dtype {:?}, expected F32", t.dtype()),
                "save the tensor as float32",
            ));
        }
        if t.shape() != shape {
            return Err(Error::file(
                &self.path,
                format!("tensor {name:?} has shape {:?}, expected {shape:?}", t.shape()),
                "the file belongs to a model with other dimensions",
            ));
        }
        Ok(bytes_f32(t.data()))
    }

    /// The raw tensor: dtype, shape and bytes (bounded by the file's size).
    fn raw(&self, name: &str) -> Result<Option<(Dtype, Vec<usize>, Vec<u8>)>> {
        let st = self.parse()?;
        Ok(st
            .tensor(name)
            .ok()
            .map(|t| (t.dtype(), t.shape().to_vec(), t.data().to_vec())))
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl Checkpoint {
    /// Model tensors by their PyTorch names, optimiser slots as `optim.<slot>.<name>`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let layout = ParamLayout::new(&self.config);
        let mut tensors = Vec::new();
        for t in &layout.tensors {
            tensors.push((t.name.clone(), t.shape.clone(), f32_bytes(&self.params[t.range()])));
        }
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
            let shape = vec![self.config.layers, tm.batch, self.config.hidden];
            tensors.push(("state.h".into(), shape, f32_bytes(h)));
        }
        let mut meta = HashMap::new();
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

    /// Reads and validates everything: format, config, dtypes, shapes, missing tensors,
    /// checksum.
    pub fn load(path: &Path) -> Result<Self> {
        let file = TensorFile::open(path)?;
        let meta = file.metadata()?;
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

        let layout = ParamLayout::new(&config);
        // every tensor of the config must be in the file, so a config claiming more than the
        // file holds is rejected before the buffers are allocated
        let slots = slot_names(&optim.kind);
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
            (Some(tm), Some(_)) => Some(file.f32("state.h", &[config.layers, tm.batch, config.hidden])?),
            _ => None,
        };
        // after the per-tensor checks, so a missing or misshapen tensor is named as such
        file.verify_checksum()?;
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

/// serde_json of a metadata value; these plain structs always serialise.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Reads a `grad` batch file (batch-major, as PyTorch holds it) into a time-major batch:
/// `inputs` int64 (B, T) or f32 (B, T, I); `targets` int64 (B, T) / (B) or f32 (B, T, O) /
/// (B, O); optional `h0` f32 (L, B, H).
pub fn read_batch_file(path: &Path, cfg: &ModelConfig) -> Result<Batch<f32>> {
    let file = TensorFile::open(path)?;
    let bad = |detail: String, hint: &str| Error::file(path, detail, hint.to_string());
    let names = file.names()?;
    if let Some(n) = names
        .iter()
        .find(|n| !["inputs", "targets", "h0"].contains(&n.as_str()))
    {
        return Err(bad(
            format!("unexpected tensor {n:?}"),
            "a batch file holds inputs, targets and optionally h0",
        ));
    }
    let (x_ty, x_shape, x_bytes) = file.raw("inputs")?.ok_or_else(|| {
        bad(
            "missing tensor \"inputs\"".into(),
            "a batch file holds inputs, targets and optionally h0",
        )
    })?;
    let (y_ty, y_shape, y_bytes) = file.raw("targets")?.ok_or_else(|| {
        bad(
            "missing tensor \"targets\"".into(),
            "a batch file holds inputs, targets and optionally h0",
        )
    })?;
    let (b, t) = match x_shape.as_slice() {
        [b, t, ..] if *b > 0 && *t > 0 => (*b, *t),
        _ => {
            return Err(bad(
                format!("\"inputs\" has shape {x_shape:?}"),
                "expected (B, T) tokens or (B, T, I) values",
            ))
        }
    };
    let t_in = cfg.input_steps(t);
    let inputs = match (cfg.input, x_ty, x_shape.as_slice()) {
        (Input::Tokens { vocab, .. }, Dtype::I64, [_, _]) => {
            let ids = i64_ids(&x_bytes, vocab).ok_or_else(|| {
                bad(
                    format!("\"inputs\" holds token ids outside 0..{vocab}"),
                    "the tokens must be in the model's vocabulary",
                )
            })?;
            Inputs::Tokens(to_time_major(&ids, b, t, 1)[..t_in * b].to_vec())
        }
        (Input::Dense { size }, Dtype::F32, [_, _, i]) if *i == size => {
            Inputs::Dense(to_time_major(&bytes_f32(&x_bytes), b, t, size)[..t_in * b * size].to_vec())
        }
        _ => {
            let want = match cfg.input {
                Input::Tokens { .. } => "int64 (B, T) token ids".to_string(),
                Input::Dense { size } => format!("float32 (B, T, {size})"),
            };
            return Err(bad(
                format!("\"inputs\" is {x_ty:?} {x_shape:?}"),
                &format!("this model expects {want}"),
            ));
        }
    };
    let many_to_one = cfg.seq == SeqShape::ManyToOne;
    let targets = match (cfg.head, y_ty, y_shape.as_slice(), many_to_one) {
        (Head::Softmax, Dtype::I64, [yb], true) if *yb == b => {
            Targets::Classes(i64_ids(&y_bytes, cfg.output).ok_or_else(|| {
                bad(
                    format!("\"targets\" holds class ids outside 0..{}", cfg.output),
                    "use class ids of the model",
                )
            })?)
        }
        (Head::Softmax, Dtype::I64, [yb, yt], false) if *yb == b && *yt == t => {
            let ids = i64_ids(&y_bytes, cfg.output).ok_or_else(|| {
                bad(
                    format!("\"targets\" holds class ids outside 0..{}", cfg.output),
                    "use class ids of the model",
                )
            })?;
            Targets::Classes(to_time_major(&ids, b, t, 1))
        }
        (Head::Linear | Head::Sigmoid, Dtype::F32, [yb, yo], true) if *yb == b && *yo == cfg.output => {
            Targets::Values(bytes_f32(&y_bytes))
        }
        (Head::Linear | Head::Sigmoid, Dtype::F32, [yb, yt, yo], false)
            if *yb == b && *yt == t && *yo == cfg.output =>
        {
            Targets::Values(to_time_major(&bytes_f32(&y_bytes), b, t, cfg.output))
        }
        _ => {
            let o = cfg.output;
            let want = match (cfg.head, many_to_one) {
                (Head::Softmax, true) => format!("int64 ({b})"),
                (Head::Softmax, false) => format!("int64 ({b}, {t})"),
                (_, true) => format!("float32 ({b}, {o})"),
                (_, false) => format!("float32 ({b}, {t}, {o})"),
            };
            return Err(bad(
                format!("\"targets\" is {y_ty:?} {y_shape:?}"),
                &format!("this model and inputs expect {want}"),
            ));
        }
    };
    let h0 = match file.info("h0")? {
        Some(_) => Some(file.f32("h0", &[cfg.layers, b, cfg.hidden])?),
        None => None,
    };
    let batch = Batch {
        batch: b,
        steps: t,
        inputs,
        targets,
        h0,
    };
    batch.validate(cfg)?;
    Ok(batch)
}

/// int64 ids as u32, or None when one is outside 0..n.
fn i64_ids(bytes: &[u8], n: usize) -> Option<Vec<u32>> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let v = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            (v >= 0 && (v as u64) < n as u64).then_some(v as u32)
        })
        .collect()
}

/// Writes `loss` (a scalar) and `grad.<name>` for every parameter tensor.
pub fn write_grads(path: &Path, layout: &ParamLayout, loss: f32, grads: &[f32]) -> Result<()> {
    let mut tensors = vec![("loss".to_string(), Vec::new(), f32_bytes(&[loss]))];
    for t in &layout.tensors {
        tensors.push((
            format!("grad.{}", t.name),
            t.shape.clone(),
            f32_bytes(&grads[t.range()]),
        ));
    }
    let mut meta = HashMap::new();
    meta.insert("format".into(), "wgrnn-grads-1".into());
    write_tensors(path, &tensors, meta)
}
