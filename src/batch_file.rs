//! The `grad` command's files: a batch in (batch-major, as PyTorch holds it) and the loss and
//! gradients out, both safetensors.

use safetensors::tensor::Dtype;
use std::collections::BTreeMap;
use std::path::Path;

use crate::batch::{to_time_major, Batch, Inputs, Targets};
use crate::config::check_batch_and_seq_len;
use crate::config::{Head, Input, ModelConfig, SeqShape};
use crate::error::{Error, Result};
use crate::params::ParamLayout;
use crate::tensor_file::{bytes_f32, f32_bytes, write_tensors, TensorFile};

/// What a batch file may hold, for messages.
const HOLDS: &str = "a batch file holds inputs, targets and optionally h0 and lengths";

/// Reads a `grad` batch file (batch-major, as PyTorch holds it) into a time-major batch:
/// `inputs` int64 (B, T) or f32 (B, T, I); `targets` int64 (B, T) / (B) or f32 (B, T, O) /
/// (B, O); optional `h0` f32 (L·dirs, B, H); optional `lengths` int64 (B), each in 1..=T
/// (`pack_padded_sequence` semantics: the steps past a sequence's length are padding, their
/// inputs and targets ignored but still checked).
pub fn read_batch_file(path: &Path, cfg: &ModelConfig) -> Result<Batch<f32>> {
    let file = TensorFile::open(path, 4)?;
    let bad = |detail: String, hint: &str| Error::file(path, detail, hint.to_string());
    let names = file.names()?;
    if let Some(n) = names
        .iter()
        .find(|n| !["inputs", "targets", "h0", "lengths"].contains(&n.as_str()))
    {
        return Err(bad(format!("unexpected tensor {n:?}"), HOLDS));
    }
    let (x_ty, x_shape, x_bytes) = file
        .raw("inputs")?
        .ok_or_else(|| bad("missing tensor \"inputs\"".into(), HOLDS))?;
    let (y_ty, y_shape, y_bytes) = file
        .raw("targets")?
        .ok_or_else(|| bad("missing tensor \"targets\"".into(), HOLDS))?;
    let (b, t) = match x_shape.as_slice() {
        [b, t, ..] if *b > 0 && *t > 0 => (*b, *t),
        _ => {
            return Err(bad(
                format!("\"inputs\" has shape {x_shape:?}"),
                "expected (B, T) tokens or (B, T, I) values",
            ))
        }
    };
    // the ranges every command allows; the step's memory is checked against the engine's
    // path by the caller before it runs
    check_batch_and_seq_len(b, t)
        .map_err(|e| bad(format!("\"inputs\" has shape {x_shape:?}: {e}"), "use a smaller batch"))?;
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
        Some(_) => Some(file.f32("h0", &[cfg.state_rows(), b, cfg.hidden])?),
        None => None,
    };
    let lengths = match file.raw("lengths")? {
        None => None,
        Some((Dtype::I64, shape, bytes)) if shape == [b] => Some(i64_lengths(&bytes, t).ok_or_else(|| {
            bad(
                format!("\"lengths\" holds a length outside 1..={t}"),
                "each sequence's length must be at least 1 and at most T, the second dimension of \"inputs\"",
            )
        })?),
        Some((ty, shape, _)) => {
            return Err(bad(
                format!("\"lengths\" is {ty:?} {shape:?}"),
                &format!("expected int64 ({b}): one length per sequence"),
            ))
        }
    };
    let batch = Batch {
        batch: b,
        steps: t,
        inputs,
        targets,
        h0,
        lengths,
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
/// int64 lengths as u32, or None when one is outside 1..=t.
fn i64_lengths(bytes: &[u8], t: usize) -> Option<Vec<u32>> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let v = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            (v >= 1 && v as u64 <= t as u64).then_some(v as u32)
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
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "wgrnn-grads-1".into());
    write_tensors(path, &tensors, meta)
}
