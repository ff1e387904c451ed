//! Numeric CSV in three layouts:
//! (a) one sequence per row: T·I features (step-major: step 0's I values first) followed by
//!     the target, a class id (softmax head) or O values (linear / sigmoid head); many-to-one.
//!     With token ids (`--tokens ids --seq many-to-one`) the T features are ids in 0..V.
//! (b) one time step per row (a multivariate series): windows of T rows; the inputs are the
//!     `--input-cols` (default: every column, or every non-target column with shift 0), the
//!     targets the `--target-cols` of the next row (`--target-shift 1`, the default) or of
//!     the same row (`--target-shift 0`); many-to-many.
//! (c) one-to-many: I input features followed by the targets of T steps, T·O values or T
//!     class ids (`--seq one-to-many`).
//! A first line whose cells are all non-numeric is a header. Every malformed line is reported
//! with its line number.

mod batch;
mod layout;
pub(crate) mod parse;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::ModelIo;
use crate::batch::Batch;
use crate::config::{Head, Input, SeqShape};
use crate::error::{Error, Result};
use parse::parse;

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

/// How the columns are read; fixed at training time and stored in the checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CsvLayout {
    Rows {
        /// T
        seq_len: usize,
        /// I (1 for token ids)
        input_size: usize,
        head: Head,
        /// O (V for a softmax head)
        output: usize,
        /// V when the T features are token ids
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_vocab: Option<usize>,
    },
    Series {
        /// the file's width
        columns: usize,
        /// indices of the target columns: O of them
        target_cols: Vec<usize>,
        head: Head,
        /// indices of the input columns (I of them); every column when absent
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_cols: Option<Vec<usize>>,
        /// 1: the targets are the next row's; 0: the same row's
        #[serde(default = "one", skip_serializing_if = "is_one")]
        target_shift: usize,
    },
    OneToMany {
        /// I: the features of the one input step
        input_size: usize,
        /// T
        seq_len: usize,
        head: Head,
        /// O (V for a softmax head)
        output: usize,
    },
}

/// What the command line asks for; unset values are inferred from the file.
#[derive(Clone, Debug, Default)]
pub struct CsvOptions {
    pub seq_len: Option<usize>,
    pub input_size: Option<usize>,
    pub head: Head,
    pub output: Option<usize>,
    /// comma-separated column names (from the header) or 0-based indices; selects layout (b)
    pub target_cols: Option<String>,
    /// the input columns of layout (b), names or indices
    pub input_cols: Option<String>,
    /// layout (b): 1 (default) next-row targets, 0 same-row targets
    pub target_shift: Option<usize>,
    /// the sequence shape asked for: many-to-one (a), many-to-many (b), one-to-many (c);
    /// None: (b) with --target-cols, else (a)
    pub seq: Option<SeqShape>,
    /// layout (a): the features are token ids
    pub token_ids: bool,
}

#[derive(Clone, Debug)]
pub struct CsvData {
    pub layout: CsvLayout,
    /// rows of numbers, every row as wide as the first
    train: Vec<Vec<f32>>,
    val: Vec<Vec<f32>>,
}

fn split_val<T>(mut rows: Vec<T>, n_val: usize) -> (Vec<T>, Vec<T>) {
    let val = rows.split_off(rows.len() - n_val);
    (rows, val)
}

impl CsvData {
    pub fn load(path: &Path, opts: &CsvOptions, val_fraction: f64) -> Result<Self> {
        let p = parse(path)?;
        let layout = layout::from_options(path, &p, opts)?;
        Self::with_layout(path, p, layout, val_fraction, false)
    }

    /// Reads a file with a checkpoint's layout.
    pub fn load_layout(path: &Path, layout: CsvLayout, val_fraction: f64) -> Result<Self> {
        let p = parse(path)?;
        Self::with_layout(path, p, layout, val_fraction, false)
    }

    /// Reads a file to predict on: like `load_layout`, but rows of layouts (a) and (c) may
    /// leave out the targets.
    pub fn load_inputs(path: &Path, layout: CsvLayout) -> Result<Self> {
        let p = parse(path)?;
        Self::with_layout(path, p, layout, 0.0, true)
    }

    fn with_layout(
        path: &Path,
        p: parse::Parsed,
        layout: CsvLayout,
        val_fraction: f64,
        inputs_only: bool,
    ) -> Result<Self> {
        if !(0.0..0.5).contains(&val_fraction) {
            return Err(Error::config("val-fraction", val_fraction, "must be in [0, 0.5)"));
        }
        layout::check(path, &p, &layout, inputs_only)?;
        let n = p.rows.len();
        let rows: Vec<Vec<f32>> = p.rows.into_iter().map(|(_, r)| r).collect();
        let n_val = match layout {
            CsvLayout::Series { .. } => {
                let mut n_val = (n as f64 * val_fraction).round() as usize;
                if n_val > 0 {
                    // a validation window needs T+1 rows; the real T is only known to the
                    // caller, so keep at least 2 and let val_batches shorten its windows
                    n_val = n_val.max(2);
                }
                if n < n_val + 2 {
                    0
                } else {
                    n_val
                }
            }
            _ => super::held_out(n, val_fraction),
        };
        let (train, val) = split_val(rows, n_val);
        Ok(CsvData { layout, train, val })
    }

    /// Checks that the series holds a window of T rows and their targets (layout (b)).
    pub fn check_len(&self, t: usize, path: &Path) -> Result<()> {
        if let CsvLayout::Series { target_shift, .. } = self.layout {
            if self.train.len() < t + target_shift {
                return Err(Error::file(
                    path,
                    format!(
                        "the series has {} training rows, shorter than one window of --seq-len + {target_shift} = {} rows",
                        self.train.len(),
                        t + target_shift
                    ),
                    "use a smaller --seq-len, a smaller --val-fraction, or a longer series",
                ));
            }
        }
        Ok(())
    }

    /// What the model must read and predict (token inputs without an embedding table: the
    /// caller adds one).
    pub fn model_io(&self) -> ModelIo {
        match &self.layout {
            CsvLayout::Rows {
                input_size,
                head,
                output,
                token_vocab,
                ..
            } => ModelIo {
                input: match token_vocab {
                    Some(v) => Input::Tokens { vocab: *v, embed: None },
                    None => Input::Dense { size: *input_size },
                },
                output: *output,
                head: *head,
                seq: SeqShape::ManyToOne,
            },
            CsvLayout::Series {
                columns,
                target_cols,
                head,
                input_cols,
                ..
            } => ModelIo {
                input: Input::Dense {
                    size: input_cols.as_ref().map_or(*columns, Vec::len),
                },
                output: target_cols.len(),
                head: *head,
                seq: SeqShape::ManyToMany,
            },
            CsvLayout::OneToMany {
                input_size,
                head,
                output,
                ..
            } => ModelIo {
                input: Input::Dense { size: *input_size },
                output: *output,
                head: *head,
                seq: SeqShape::OneToMany,
            },
        }
    }

    /// T fixed by the file (layouts (a) and (c)), or None when any T works.
    pub fn fixed_seq_len(&self) -> Option<usize> {
        match self.layout {
            CsvLayout::Rows { seq_len, .. } | CsvLayout::OneToMany { seq_len, .. } => Some(seq_len),
            CsvLayout::Series { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        let (tr, va) = (self.train.len(), self.val.len());
        match &self.layout {
            CsvLayout::Rows {
                seq_len,
                input_size,
                token_vocab: None,
                ..
            } => format!("csv: {tr} train / {va} val sequences of T={seq_len} steps × I={input_size}"),
            CsvLayout::Rows {
                seq_len,
                token_vocab: Some(v),
                ..
            } => format!("csv: {tr} train / {va} val sequences of T={seq_len} token ids (V={v})"),
            CsvLayout::Series {
                columns,
                target_cols,
                input_cols,
                target_shift,
                ..
            } => {
                let inputs = input_cols.as_ref().map_or("all".to_string(), |c| format!("{c:?}"));
                format!(
                    "csv series: {tr} train / {va} val rows, {columns} columns, inputs {inputs}, targets {target_cols:?} (shift {target_shift})"
                )
            }
            CsvLayout::OneToMany {
                input_size,
                seq_len,
                output,
                ..
            } => format!(
                "csv one-to-many: {tr} train / {va} val rows of I={input_size} → T={seq_len} steps × O={output}"
            ),
        }
    }

    pub fn random_batch(&self, rng: &mut ChaCha8Rng, b: usize, t: usize) -> Batch<f32> {
        match self.layout {
            CsvLayout::Series { target_shift, .. } => {
                let last = self.train.len() - t - target_shift;
                let starts: Vec<usize> = (0..b).map(|_| rng.random_range(0..last + 1)).collect();
                batch::series(&self.layout, &self.train, &starts, t)
            }
            _ => {
                let idx: Vec<usize> = (0..b).map(|_| rng.random_range(0..self.train.len())).collect();
                batch::rows(&self.layout, &self.train, &idx)
            }
        }
    }

    /// The whole validation split in batches of at most B.
    pub fn val_batches(&self, b: usize, t: usize) -> Vec<Batch<f32>> {
        self.batches_of(&self.val, b, t)
    }

    /// Every sequence / window of the training split, for `eval`.
    pub fn all_batches(&self, b: usize, t: usize) -> Vec<Batch<f32>> {
        self.batches_of(&self.train, b, t)
    }

    /// Rows of the training split (for `predict`: the whole file).
    pub fn rows(&self) -> &[Vec<f32>] {
        &self.train
    }

    /// Layout (b): the inputs of rows `start..start + t` of the training split as one
    /// sequence (B = 1), with zero targets: `predict` reads every row, the last ones too.
    pub fn input_window(&self, start: usize, t: usize) -> Batch<f32> {
        let CsvLayout::Series {
            columns,
            target_cols,
            head,
            input_cols,
            ..
        } = &self.layout
        else {
            unreachable!("input windows are cut from a series")
        };
        let same_row = CsvLayout::Series {
            columns: *columns,
            target_cols: target_cols.clone(),
            head: *head,
            input_cols: input_cols.clone(),
            target_shift: 0,
        };
        let mut b = batch::series(&same_row, &self.train, &[start], t);
        b.targets = crate::batch::Targets::Values(vec![0.0; t * target_cols.len()]);
        b
    }

    fn batches_of(&self, rows: &[Vec<f32>], b: usize, t: usize) -> Vec<Batch<f32>> {
        match self.layout {
            CsvLayout::Series { target_shift, .. } => {
                if rows.len() < 1 + target_shift {
                    return Vec::new();
                }
                let t = t.min(rows.len() - target_shift);
                let starts: Vec<usize> = (0..(rows.len() - target_shift) / t).map(|w| w * t).collect();
                starts
                    .chunks(b)
                    .map(|s| batch::series(&self.layout, rows, s, t))
                    .collect()
            }
            _ => {
                let idx: Vec<usize> = (0..rows.len()).collect();
                idx.chunks(b).map(|c| batch::rows(&self.layout, rows, c)).collect()
            }
        }
    }
}
