//! Training data: character-level text, CSV sequences and series, synthetic tasks. Every
//! source yields time-major `Batch`es and says which model shape it needs.

pub mod csv;
pub mod tasks;
pub mod text;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::batch::Batch;
use crate::config::{Head, Input, SeqShape};
use crate::error::Result;
// the one reader of input files, also used by the checkpoint and batch-file loaders
pub use crate::fsio::read_file;
pub use csv::{CsvData, CsvLayout};
pub use tasks::Task;
pub use text::{Streams, TextData, Vocab};

/// Where the data came from and how it was cut, stored in checkpoints so `eval` and
/// `--resume` read it the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSpec {
    /// the corpus compiled into the binary (`BUNDLED_TEXT`)
    Bundled,
    Text {
        path: PathBuf,
    },
    Csv {
        path: PathBuf,
        layout: CsvLayout,
    },
    Task {
        task: Task,
    },
}

impl DataSpec {
    /// How errors and logs name the source.
    pub fn name(&self) -> String {
        match self {
            DataSpec::Bundled => BUNDLED_NAME.into(),
            DataSpec::Text { path } | DataSpec::Csv { path, .. } => path.display().to_string(),
            DataSpec::Task { task } => format!("--task {task}"),
        }
    }
}

/// The default corpus, compiled in so that `wgrnn train` works from any directory.
pub const BUNDLED_TEXT: &str = include_str!("../../data/shakespeare-tiny.txt");
pub const BUNDLED_NAME: &str = "data/shakespeare-tiny.txt (bundled)";

/// What a source needs from the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelIo {
    pub input: Input,
    /// O (V for classes)
    pub output: usize,
    pub head: Head,
    pub seq: SeqShape,
}

/// A loaded source.
#[derive(Clone, Debug)]
pub enum Dataset {
    Text(TextData),
    Csv(CsvData),
    Task(Task),
}

impl Dataset {
    /// Loads a source the way a checkpoint describes it; `vocab` is the checkpoint's.
    pub fn load(spec: &DataSpec, val_fraction: f64, vocab: Option<Vocab>) -> Result<Self> {
        Ok(match spec {
            DataSpec::Bundled => Dataset::Text(TextData::from_text(BUNDLED_TEXT, BUNDLED_NAME, val_fraction, vocab)?),
            DataSpec::Text { path } => Dataset::Text(TextData::load(path, val_fraction, vocab)?),
            DataSpec::Csv { path, layout } => Dataset::Csv(CsvData::load_layout(path, layout.clone(), val_fraction)?),
            DataSpec::Task { task } => Dataset::Task(*task),
        })
    }

    /// What the source needs from the model (`embed` only applies to text).
    pub fn model_io(&self, embed: Option<usize>) -> ModelIo {
        match self {
            Dataset::Text(d) => ModelIo {
                input: Input::Tokens {
                    vocab: d.vocab.len(),
                    embed,
                },
                output: d.vocab.len(),
                head: Head::Softmax,
                seq: SeqShape::ManyToMany,
            },
            Dataset::Csv(d) => d.model_io(),
            Dataset::Task(t) => t.model_io(),
        }
    }

    /// Checks that the source has at least one training window of T steps (B streams of
    /// them when stateful).
    pub fn check_len(&self, b: usize, t: usize, stateful: bool, name: &str) -> Result<()> {
        match self {
            Dataset::Text(d) if stateful => Streams::check(d.train.len(), b, t, name),
            Dataset::Text(d) => d.check_len(t, name),
            Dataset::Csv(d) => d.check_len(t, Path::new(name)),
            Dataset::Task(_) => Ok(()),
        }
    }

    /// A training batch of B sequences of T steps (T is fixed by the file for CSV rows).
    pub fn random_batch(&self, rng: &mut ChaCha8Rng, b: usize, t: usize) -> Batch<f32> {
        match self {
            Dataset::Text(d) => d.random_batch(rng, b, t),
            Dataset::Csv(d) => d.random_batch(rng, b, t),
            Dataset::Task(task) => task.batch(rng, b, t),
        }
    }

    /// The validation set, cut deterministically into batches of at most B, at most
    /// `max_batches` of them.
    pub fn val_batches(&self, b: usize, t: usize, seed: u64, max_batches: usize) -> Vec<Batch<f32>> {
        let mut v = match self {
            Dataset::Text(d) => text::eval_batches(&d.val, b, t),
            Dataset::Csv(d) => d.val_batches(b, t),
            Dataset::Task(task) => task.val_batches(b, t, seed, max_batches),
        };
        v.truncate(max_batches);
        v
    }

    pub fn vocab(&self) -> Option<&Vocab> {
        match self {
            Dataset::Text(d) => Some(&d.vocab),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Dataset::Text(d) => format!(
                "text: {} train / {} val characters, vocabulary {}",
                d.train.len(),
                d.val.len(),
                d.vocab.len()
            ),
            Dataset::Csv(d) => d.describe(),
            Dataset::Task(t) => t.describe(),
        }
    }
}
