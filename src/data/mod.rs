//! Training data: text (characters, words or token ids), labelled text lines, CSV sequences
//! and series, synthetic tasks. Every source yields time-major `Batch`es and says which
//! model shape it needs.

pub mod csv;
pub mod labelled;
pub mod tasks;
pub mod text;
pub mod tokens;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::batch::Batch;
use crate::config::{Head, Input, SeqShape};
use crate::error::Result;
// the one reader of input files, also used by the checkpoint and batch-file loaders
pub use crate::fsio::read_file;
pub use csv::{CsvData, CsvLayout};
pub use labelled::{LabelFormat, LabelSpec, LabelledData, Labels};
pub use tasks::Task;
pub use text::{Streams, TextData};
pub use tokens::{TokenKind, Tokenizer, Vocab};

/// Where the data came from and how it was cut, stored in checkpoints so `eval` and
/// `--resume` read it the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSpec {
    /// the corpus compiled into the binary (`BUNDLED_TEXT`)
    Bundled,
    Text {
        path: PathBuf,
        #[serde(default, skip_serializing_if = "Tokenizer::is_char")]
        tokens: Tokenizer,
    },
    Csv {
        path: PathBuf,
        layout: CsvLayout,
    },
    Task {
        task: Task,
    },
    /// labelled lines for classification
    Labelled {
        path: PathBuf,
        labels: LabelSpec,
    },
}

impl DataSpec {
    /// How errors and logs name the source.
    pub fn name(&self) -> String {
        match (self, self.path()) {
            (_, Some(path)) => path.display().to_string(),
            (DataSpec::Task { task }, _) => format!("--task {task}"),
            _ => BUNDLED_NAME.into(),
        }
    }

    /// The file read, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            DataSpec::Text { path, .. } | DataSpec::Csv { path, .. } | DataSpec::Labelled { path, .. } => Some(path),
            DataSpec::Bundled | DataSpec::Task { .. } => None,
        }
    }

    /// The same reading of another file (`eval --data`, `predict`); None for a task.
    pub fn with_path(&self, file: &Path) -> Option<DataSpec> {
        let path = file.to_path_buf();
        Some(match self {
            DataSpec::Bundled => DataSpec::Text {
                path,
                tokens: Tokenizer::Char,
            },
            DataSpec::Text { tokens, .. } => DataSpec::Text { path, tokens: *tokens },
            DataSpec::Csv { layout, .. } => DataSpec::Csv {
                path,
                layout: layout.clone(),
            },
            DataSpec::Labelled { labels, .. } => DataSpec::Labelled {
                path,
                labels: labels.clone(),
            },
            DataSpec::Task { .. } => return None,
        })
    }

    /// What the vocabulary of a model trained on this source is made of (None: no
    /// vocabulary, the inputs are numbers or the ids of a CSV row).
    pub fn token_kind(&self) -> Option<TokenKind> {
        match self {
            DataSpec::Bundled => Some(TokenKind::Char),
            DataSpec::Text { tokens, .. } => Some(tokens.kind()),
            DataSpec::Labelled { labels, .. } => Some(labels.tokens.kind()),
            DataSpec::Csv { .. } | DataSpec::Task { .. } => None,
        }
    }

    /// Whether a model of this source reads token ids.
    pub fn reads_tokens(&self) -> bool {
        match self {
            DataSpec::Csv { layout, .. } => matches!(
                layout,
                CsvLayout::Rows {
                    token_vocab: Some(_),
                    ..
                }
            ),
            DataSpec::Task { .. } => false,
            _ => true,
        }
    }
}

/// How many of `n` sequences (rows, labelled examples) the validation split takes: the
/// fraction rounded, at least one and never all of them.
pub(crate) fn held_out(n: usize, val_fraction: f64) -> usize {
    match val_fraction > 0.0 && n >= 2 {
        true => ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1),
        false => 0,
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
    Labelled(LabelledData),
}

impl Dataset {
    /// Loads a source the way a checkpoint describes it; `vocab` is the checkpoint's (then
    /// labelled data must carry the checkpoint's labels).
    pub fn load(spec: &DataSpec, val_fraction: f64, vocab: Option<Vocab>) -> Result<Self> {
        let labels = if vocab.is_some() { Labels::Known } else { Labels::Define };
        Self::load_as(spec, val_fraction, vocab, labels)
    }

    /// `load` for `predict`: labels may be absent, CSV rows may leave out their targets, and
    /// nothing is held out.
    pub fn load_inputs(spec: &DataSpec, vocab: Option<Vocab>) -> Result<Self> {
        match spec {
            DataSpec::Csv { path, layout } => Ok(Dataset::Csv(CsvData::load_inputs(path, layout.clone())?)),
            _ => Self::load_as(spec, 0.0, vocab, Labels::Ignored),
        }
    }

    fn load_as(spec: &DataSpec, val_fraction: f64, vocab: Option<Vocab>, labels: Labels) -> Result<Self> {
        Ok(match spec {
            DataSpec::Bundled => Dataset::Text(TextData::from_text(BUNDLED_TEXT, BUNDLED_NAME, val_fraction, vocab)?),
            DataSpec::Text { path, tokens } => Dataset::Text(TextData::load(path, *tokens, val_fraction, vocab)?),
            DataSpec::Csv { path, layout } => Dataset::Csv(CsvData::load_layout(path, layout.clone(), val_fraction)?),
            DataSpec::Task { task } => Dataset::Task(*task),
            DataSpec::Labelled { path, labels: spec } => {
                Dataset::Labelled(LabelledData::load(path, spec, val_fraction, vocab, labels)?)
            }
        })
    }

    /// What the source needs from the model; `embed` applies to token inputs.
    pub fn model_io(&self, embed: Option<usize>) -> ModelIo {
        let mut io = match self {
            Dataset::Text(d) => ModelIo {
                input: Input::Tokens {
                    vocab: d.vocab.len(),
                    embed: None,
                },
                output: d.vocab.len(),
                head: Head::Softmax,
                seq: SeqShape::ManyToMany,
            },
            Dataset::Csv(d) => d.model_io(),
            Dataset::Task(t) => t.model_io(),
            Dataset::Labelled(d) => ModelIo {
                input: Input::Tokens {
                    vocab: d.vocab.len(),
                    embed: None,
                },
                output: d.classes().len(),
                head: Head::Softmax,
                seq: SeqShape::ManyToOne,
            },
        };
        if let Input::Tokens { embed: e, .. } = &mut io.input {
            *e = embed;
        }
        io
    }

    /// Checks that the source has at least one training window of T steps (B streams of
    /// them when stateful).
    pub fn check_len(&self, b: usize, t: usize, stateful: bool, name: &str) -> Result<()> {
        match self {
            Dataset::Text(d) if stateful => Streams::check(d.train.len(), b, t, name),
            Dataset::Text(d) => d.check_len(t, name),
            Dataset::Csv(d) => d.check_len(t, Path::new(name)),
            Dataset::Task(_) | Dataset::Labelled(_) => Ok(()),
        }
    }

    /// T of the batches: `requested` (--seq-len), unless the data fixes it (a CSV with one
    /// sequence per row, labelled lines: the longest one, at most `requested`).
    pub fn seq_len(&self, requested: usize) -> usize {
        match self {
            Dataset::Csv(d) => d.fixed_seq_len().unwrap_or(requested),
            Dataset::Labelled(d) => d.steps,
            _ => requested,
        }
    }

    /// A training batch of B sequences of T steps (`seq_len`).
    pub fn random_batch(&self, rng: &mut ChaCha8Rng, b: usize, t: usize) -> Batch<f32> {
        match self {
            Dataset::Text(d) => d.random_batch(rng, b, t),
            Dataset::Csv(d) => d.random_batch(rng, b, t),
            Dataset::Task(task) => task.batch(rng, b, t),
            Dataset::Labelled(d) => d.random_batch(rng, b),
        }
    }

    /// The validation set, cut deterministically into batches of at most B, at most
    /// `max_batches` of them.
    pub fn val_batches(&self, b: usize, t: usize, seed: u64, max_batches: usize) -> Vec<Batch<f32>> {
        let mut v = match self {
            Dataset::Text(d) => text::eval_batches(&d.val, b, t),
            Dataset::Csv(d) => d.val_batches(b, t),
            Dataset::Task(task) => task.val_batches(b, t, seed, max_batches),
            Dataset::Labelled(d) => d.batches(&d.val, b),
        };
        v.truncate(max_batches);
        v
    }

    /// Every sequence or window of the training split (the whole file when nothing is held
    /// out), for `eval --data`.
    pub fn all_batches(&self, b: usize, t: usize, seed: u64) -> Vec<Batch<f32>> {
        match self {
            Dataset::Text(d) => text::eval_batches(&d.train, b, t),
            Dataset::Csv(d) => d.all_batches(b, t),
            Dataset::Task(task) => task.val_batches(b, t, seed, usize::MAX),
            Dataset::Labelled(d) => d.batches(&d.train, b),
        }
    }

    /// The token vocabulary, stored in checkpoints.
    pub fn vocab(&self) -> Option<&Vocab> {
        match self {
            Dataset::Text(d) => Some(&d.vocab),
            Dataset::Labelled(d) => Some(&d.vocab),
            _ => None,
        }
    }

    /// Things worth a warning line (examples cut to --seq-len).
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Dataset::Labelled(d) if d.truncated > 0 => vec![format!(
                "warning: {} of {} examples are longer than --seq-len {} {}s and were truncated",
                d.truncated,
                d.train.len() + d.val.len(),
                d.spec.max_len,
                d.vocab.unit()
            )],
            _ => Vec::new(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Dataset::Text(d) => format!(
                "text: {} train / {} val {}s, vocabulary {}",
                d.train.len(),
                d.val.len(),
                d.vocab.unit(),
                d.vocab.len()
            ),
            Dataset::Csv(d) => d.describe(),
            Dataset::Task(t) => t.describe(),
            Dataset::Labelled(d) => format!(
                "labelled text: {} train / {} val examples, {} classes, vocabulary {} {}s, T={}",
                d.train.len(),
                d.val.len(),
                d.classes().len(),
                d.vocab.len(),
                d.vocab.unit(),
                d.steps
            ),
        }
    }
}
