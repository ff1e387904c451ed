//! safetensors files of f32 tensors: the writer shared by checkpoints and `grad` output, and
//! a bounds-checked reader for everything the program reads back.
//!
//! Written files are byte-stable: the same tensors and metadata give the same bytes, so two
//! identical runs can be compared with `cmp`.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::data::read_file;
use crate::error::{Error, Result};
use crate::fsio::write_atomic;

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

pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
/// Writes `f32` tensors and metadata as one safetensors file, atomically; adds the checksum.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    mut meta: BTreeMap<String, String>,
) -> Result<()> {
    meta.insert(
        "checksum".into(),
        checksum(tensors.iter().map(|(n, _, d)| (n.as_str(), d.as_slice()))),
    );
    let bug = |e: &dyn std::fmt::Display| {
        Error::file(
            path,
            format!("cannot serialise: {e}"),
            "this is a bug; please report it",
        )
    };
    let views = tensors
        .iter()
        .map(|(n, s, d)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), d)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| bug(&e))?;
    let bytes = safetensors::serialize(views, None).map_err(|e| bug(&e))?;
    let bytes = with_metadata(&bytes, &meta).ok_or_else(|| bug(&"the header is not JSON"))?;
    write_atomic(path, &bytes)
}

/// Adds `__metadata__` to a serialised file's header in key order: safetensors takes the
/// metadata as a HashMap and writes it in the map's random order, which would make two
/// identical runs write different bytes.
fn with_metadata(file: &[u8], meta: &BTreeMap<String, String>) -> Option<Vec<u8>> {
    let n = u64::from_le_bytes(file.get(..8)?.try_into().ok()?) as usize;
    let (header, data) = file.get(8..)?.split_at_checked(n)?;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let meta = meta.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    let mut header = serde_json::to_vec(&header).ok()?;
    // the data must start 8-byte aligned; safetensors pads the header with spaces
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(header);
    out.extend(data);
    Some(out)
}

/// dtype, shape and bytes
pub(crate) type RawTensor = (Dtype, Vec<usize>, Vec<u8>);

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
    pub(crate) fn raw(&self, name: &str) -> Result<Option<RawTensor>> {
        let st = self.parse()?;
        Ok(st
            .tensor(name)
            .ok()
            .map(|t| (t.dtype(), t.shape().to_vec(), t.data().to_vec())))
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}
