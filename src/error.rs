//! One error type for the whole library. Every message names the operation, file, flag or
//! tensor involved and ends with a hint, so the CLI can print it as a single line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `ModelConfig` field (or a flag that sets it) has a value outside what it allows.
    #[error("invalid config: {field} = {value}: {hint}")]
    Config {
        field: &'static str,
        value: String,
        hint: String,
    },

    /// A batch, state or parameter buffer has the wrong length for the model.
    #[error("shape mismatch in {op}: {what} has {got} elements, expected {expected} ({hint})")]
    Shape {
        op: &'static str,
        what: String,
        got: usize,
        expected: usize,
        hint: String,
    },

    /// A value in the data is unusable (a class id outside 0..V, a NaN input, ...).
    #[error("bad data in {op}: {detail}; hint: {hint}")]
    Data {
        op: &'static str,
        detail: String,
        hint: String,
    },

    /// Training produced a NaN or infinity.
    #[error("non-finite {what} at step {step}; hint: lower --lr or clip gradients (--clip-norm 1)")]
    NonFinite { what: String, step: u64 },

    /// File system errors, always with the path.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file whose contents cannot be used (not text, corrupt checkpoint, malformed CSV, ...).
    #[error("{path}: {detail}; hint: {hint}")]
    File {
        path: PathBuf,
        detail: String,
        hint: String,
    },

    /// No usable GPU adapter / device, or a GPU operation failed.
    #[error("gpu: {detail}; hint: {hint}")]
    Gpu { detail: String, hint: String },

    /// A buffer would exceed what the adapter allows.
    #[error("gpu: {what} needs {needed} bytes but the adapter allows {limit} ({limit_name}); hint: {hint}")]
    GpuLimit {
        what: String,
        needed: u64,
        limit: u64,
        limit_name: &'static str,
        hint: String,
    },

    /// An allocation the machine cannot hold, refused before it is attempted.
    #[error(
        "{what} needs about {needed_gib:.1} GiB of host memory but {available_gib:.1} GiB are available; hint: {hint}"
    )]
    Memory {
        what: String,
        needed_gib: f64,
        available_gib: f64,
        hint: String,
    },

    /// Training stopped on an error (e.g. a NaN loss); names the checkpoint that was kept.
    #[error("{source}; last good checkpoint: {checkpoint}")]
    Stopped { source: Box<Error>, checkpoint: String },

    /// The user interrupted a run (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The product of sizes, or an error naming them. Sizes that come from flags or files are
/// multiplied here (or bounded by a check that did), so a wrapped product never reaches an
/// allocation, an index or an unsafe kernel.
pub fn checked_product(what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
            Error::config(
                "size",
                format!("{what} = {}", dims.join(" × ")),
                "the product does not fit in memory's address range; use smaller sizes",
            )
        })
}

impl Error {
    pub fn config(field: &'static str, value: impl ToString, hint: impl Into<String>) -> Self {
        Error::Config {
            field,
            value: value.to_string(),
            hint: hint.into(),
        }
    }

    pub fn shape(
        op: &'static str,
        what: impl Into<String>,
        got: usize,
        expected: usize,
        hint: impl Into<String>,
    ) -> Self {
        Error::Shape {
            op,
            what: what.into(),
            got,
            expected,
            hint: hint.into(),
        }
    }

    pub fn data(op: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Data {
            op,
            detail: detail.into(),
            hint: hint.into(),
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn file(path: impl Into<PathBuf>, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            detail: detail.into(),
            hint: hint.into(),
        }
    }

    pub fn gpu(detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Gpu {
            detail: detail.into(),
            hint: hint.into(),
        }
    }
}
