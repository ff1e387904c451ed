//! safetensors files of f32 tensors: the writer shared by checkpoints and `grad` output, and
//! a bounds-checked reader for everything the program reads back.
//!
//! Written files are byte-stable: the same tensors and metadata give the same bytes, so two
//! identical runs can be compared with `cmp`.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::data::read_file;
use crate::error::{Error, Result};
use crate::fsio::write_atomic;

/// The metadata key of the checksum.
const CHECKSUM: &str = "checksum";

/// FNV-1a (64 bit), a fast non-cryptographic hash: any flipped bit changes it. It guards
/// against damage and accidental edits, not against an adversary.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn add(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= byte as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub(crate) fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The checksum of the whole content: every metadata entry but the checksum itself (key and
/// value, in key order), then every tensor's name, dtype, shape and bytes in name order. So a
/// changed config, vocabulary, step or data position is caught like a flipped weight.
fn checksum<'a>(
    meta: &BTreeMap<String, String>,
    tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
) -> String {
    let mut h = Fnv::new();
    for (k, v) in meta.iter().filter(|(k, _)| k.as_str() != CHECKSUM) {
        for part in [k.as_bytes(), b"\0", v.as_bytes(), b"\0"] {
            h.add(part);
        }
    }
    let mut named: Vec<_> = tensors.collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    for (name, dtype, shape, bytes) in named {
        let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
        let head = format!("{name}\0{dtype:?}\0{}\0", shape.join(","));
        h.add(head.as_bytes());
        h.add(bytes);
    }
    h.hex()
}

/// The checksum wgrnn wrote before it covered the metadata: tensor names and bytes only.
/// Recognised so that an older checkpoint gets a precise message, and loads (its tensors
/// still verified) when the user accepts unverified metadata.
fn tensors_only_checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut named: Vec<_> = tensors.collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Fnv::new();
    for (name, bytes) in named {
        h.add(name.as_bytes());
        h.add(b"\0");
        h.add(bytes);
    }
    h.hex()
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
    meta: BTreeMap<String, String>,
) -> Result<()> {
    write_atomic(path, &tensor_bytes(path, tensors, meta)?)
}

/// The bytes of that file (`path` only names it in errors).
pub fn tensor_bytes(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    mut meta: BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let sum = checksum(
        &meta,
        tensors
            .iter()
            .map(|(n, s, d)| (n.as_str(), Dtype::F32, s.as_slice(), d.as_slice())),
    );
    meta.insert(CHECKSUM.into(), sum);
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
    with_metadata(&bytes, &meta).ok_or_else(|| bug(&"the header is not JSON"))
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

/// A parsed safetensors file. Its header was scanned before the safetensors parser saw it:
/// a file with more tensors than the reader can use is refused before anything is allocated
/// per tensor.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
    meta: BTreeMap<String, String>,
}

/// The header's tensor count and metadata, read in one pass that stops at the first tensor
/// beyond `max`: serde skips the entries' contents without allocating for them.
struct HeaderScan {
    max: usize,
}

impl<'de> DeserializeSeed<'de> for HeaderScan {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderScan {
    type Value = BTreeMap<String, String>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a safetensors header (a JSON object)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let (mut tensors, mut meta) = (0usize, BTreeMap::new());
        while let Some(key) = map.next_key::<String>()? {
            if key == "__metadata__" {
                meta = map
                    .next_value::<Option<BTreeMap<String, String>>>()?
                    .unwrap_or_default();
                continue;
            }
            tensors += 1;
            if tensors > self.max {
                return Err(A::Error::custom(format!(
                    "more than {} tensors, more than this file can hold",
                    self.max
                )));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(meta)
    }
}

impl TensorFile {
    /// Reads and parses a file of at most `max_tensors` tensors.
    pub fn open(path: &Path, max_tensors: usize) -> Result<Self> {
        let bytes = read_file(path)?;
        let corrupt = |e: &dyn std::fmt::Display| {
            Error::file(
                path,
                format!("not a valid safetensors file ({e})"),
                "the file is truncated or corrupt; use an earlier checkpoint or re-create it",
            )
        };
        // the length prefix is checked against the file before the header is looked at
        let n = bytes
            .get(..8)
            .map(|p| u64::from_le_bytes(p.try_into().unwrap_or_default()))
            .ok_or_else(|| corrupt(&"shorter than the 8-byte header length"))?;
        let header = usize::try_from(n)
            .ok()
            .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
            .ok_or_else(|| corrupt(&format!("header length {n} exceeds the file")))?;
        let meta = HeaderScan { max: max_tensors }
            .deserialize(&mut serde_json::Deserializer::from_slice(header))
            .map_err(|e| corrupt(&e))?;
        let file = TensorFile {
            path: path.to_path_buf(),
            bytes,
            meta,
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

    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.meta
    }

    /// Checks the checksum over the whole content. A file without one is refused unless
    /// `allow_unverified` (the user vouches for it with `--allow-unverified`).
    pub fn verify_checksum(&self, allow_unverified: bool) -> Result<()> {
        let st = self.parse()?;
        let Some(expected) = self.meta.get(CHECKSUM) else {
            if allow_unverified {
                return Ok(());
            }
            return Err(Error::file(
                &self.path,
                "has no checksum, so its content cannot be verified",
                "pass --allow-unverified to load it anyway if you trust the file",
            ));
        };
        let views = st.tensors();
        let got = checksum(
            &self.meta,
            views.iter().map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data())),
        );
        if &got != expected && *expected == tensors_only_checksum(views.iter().map(|(n, v)| (n.as_str(), v.data()))) {
            if allow_unverified {
                return Ok(());
            }
            return Err(Error::file(
                &self.path,
                "was written by an older wgrnn, whose checksum covers the tensors (they match) but not the metadata",
                "pass --allow-unverified to load it; the next checkpoint saved from it carries the full checksum",
            ));
        }
        if &got != expected {
            return Err(Error::file(
                &self.path,
                format!("checksum mismatch (stored {expected}, computed {got}): the file is corrupt or was edited"),
                "use an earlier checkpoint, or pass --allow-unverified after removing the \"checksum\" key if you trust the edit",
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
