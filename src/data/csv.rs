//! Numeric CSV in two layouts:
//! (a) one sequence per row: T·I features (step-major: step 0's I values first) followed by
//!     the target, a class id (softmax head) or O values (linear / sigmoid head); many-to-one.
//! (b) one time step per row (a multivariate series): windows of T rows, the targets being
//!     the next row's target columns; many-to-many.
//! A first line whose cells are all non-numeric is a header. Every malformed line is reported
//! with its line number.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::{read_file, ModelIo};
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{Head, Input, SeqShape};
use crate::error::{Error, Result};

/// How the columns are read; fixed at training time and stored in the checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CsvLayout {
    Rows {
        /// T
        seq_len: usize,
        /// I
        input_size: usize,
        head: Head,
        /// O (V for a softmax head)
        output: usize,
    },
    Series {
        /// every column is an input: I
        columns: usize,
        /// indices of the target columns: O of them
        target_cols: Vec<usize>,
        head: Head,
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
}

#[derive(Clone, Debug)]
pub struct CsvData {
    pub layout: CsvLayout,
    /// rows of numbers, every row as wide as the first
    train: Vec<Vec<f32>>,
    val: Vec<Vec<f32>>,
}

struct Parsed {
    header: Option<Vec<String>>,
    /// (line number, cells)
    rows: Vec<(usize, Vec<f32>)>,
}

fn parse(path: &Path) -> Result<Parsed> {
    let bytes = read_file(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::file(path, "is not UTF-8 text", "pass a comma-separated text file"))?;
    let mut header = None;
    let mut rows: Vec<(usize, Vec<f32>)> = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if width.is_none() && cells.iter().all(|c| c.parse::<f64>().is_err()) {
            header = Some(cells.iter().map(|c| c.to_string()).collect());
            width = Some(cells.len());
            continue;
        }
        let w = *width.get_or_insert(cells.len());
        if cells.len() != w {
            return Err(Error::file(
                path,
                format!("line {n}: {} columns, but the file's rows have {w}", cells.len()),
                "every row needs the same number of comma-separated cells",
            ));
        }
        let mut vals = Vec::with_capacity(w);
        for (k, c) in cells.iter().enumerate() {
            let v: f64 = c.parse().map_err(|_| {
                Error::file(
                    path,
                    format!("line {n}, column {}: {c:?} is not a number", k + 1),
                    "cells must be decimal numbers (a header is only allowed on the first line)",
                )
            })?;
            if !v.is_finite() || !(v as f32).is_finite() {
                return Err(Error::file(
                    path,
                    format!("line {n}, column {}: {c} is not a finite number", k + 1),
                    "remove or impute NaN / infinite values",
                ));
            }
            vals.push(v as f32);
        }
        rows.push((n, vals));
    }
    if rows.is_empty() {
        return Err(Error::file(path, "has no data rows", "add at least one row of numbers"));
    }
    Ok(Parsed { header, rows })
}

fn split_val<T>(mut rows: Vec<T>, n_val: usize) -> (Vec<T>, Vec<T>) {
    let val = rows.split_off(rows.len() - n_val);
    (rows, val)
}

impl CsvData {
    pub fn load(path: &Path, opts: &CsvOptions, val_fraction: f64) -> Result<Self> {
        let p = parse(path)?;
        let layout = match &opts.target_cols {
            Some(cols) => series_layout(path, &p, cols, opts)?,
            None => rows_layout(path, &p, opts)?,
        };
        Self::with_layout(path, p, layout, val_fraction)
    }

    /// Reads a file with a checkpoint's layout.
    pub fn load_layout(path: &Path, layout: CsvLayout, val_fraction: f64) -> Result<Self> {
        let p = parse(path)?;
        Self::with_layout(path, p, layout, val_fraction)
    }

    fn with_layout(path: &Path, p: Parsed, layout: CsvLayout, val_fraction: f64) -> Result<Self> {
        if !(0.0..0.5).contains(&val_fraction) {
            return Err(Error::config("val-fraction", val_fraction, "must be in [0, 0.5)"));
        }
        let width = p.rows[0].1.len();
        let n = p.rows.len();
        match &layout {
            CsvLayout::Rows {
                seq_len,
                input_size,
                head,
                output,
            } => {
                let tw = if *head == Head::Softmax { 1 } else { *output };
                // the layout may come from a checkpoint's metadata: no wrapping products
                let need = seq_len.checked_mul(*input_size).and_then(|n| n.checked_add(tw));
                if need != Some(width) {
                    let need = need.map_or("more than fits in memory".to_string(), |n| n.to_string());
                    return Err(Error::file(
                        path,
                        format!(
                            "rows have {width} columns, expected T·I + {tw} = {seq_len}·{input_size} + {tw} = {need}"
                        ),
                        "set --seq-len and --input-size to match the file (T·I features, then the target)",
                    ));
                }
                if *head == Head::Softmax {
                    for (line, r) in &p.rows {
                        check_class(path, *line, r[width - 1], Some(*output))?;
                    }
                }
                let rows: Vec<Vec<f32>> = p.rows.into_iter().map(|(_, r)| r).collect();
                let n_val = if val_fraction > 0.0 && n >= 2 {
                    ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1)
                } else {
                    0
                };
                let (train, val) = split_val(rows, n_val);
                Ok(CsvData { layout, train, val })
            }
            CsvLayout::Series {
                columns, target_cols, ..
            } => {
                if width != *columns {
                    return Err(Error::file(
                        path,
                        format!("rows have {width} columns, the model was trained on {columns}"),
                        "use a file with the training file's columns",
                    ));
                }
                if let Some(&c) = target_cols.iter().find(|&&c| c >= width) {
                    return Err(Error::file(
                        path,
                        format!("target column {c} does not exist"),
                        "check --target-cols",
                    ));
                }
                let rows: Vec<Vec<f32>> = p.rows.into_iter().map(|(_, r)| r).collect();
                let mut n_val = (n as f64 * val_fraction).round() as usize;
                if n_val > 0 {
                    // a validation window needs T+1 rows; the real T is only known to the
                    // caller, so keep at least 2 and let val_batches shorten its windows
                    n_val = n_val.max(2);
                }
                if n < n_val + 2 {
                    n_val = 0;
                }
                let (train, val) = split_val(rows, n_val);
                Ok(CsvData { layout, train, val })
            }
        }
    }

    /// Checks that the series holds a window of T+1 rows (layout (b)).
    pub fn check_len(&self, t: usize, path: &Path) -> Result<()> {
        if matches!(self.layout, CsvLayout::Series { .. }) && self.train.len() < t + 1 {
            return Err(Error::file(
                path,
                format!(
                    "the series has {} training rows, shorter than one window of --seq-len + 1 = {} rows",
                    self.train.len(),
                    t + 1
                ),
                "use a smaller --seq-len, a smaller --val-fraction, or a longer series",
            ));
        }
        Ok(())
    }

    pub fn model_io(&self) -> ModelIo {
        match &self.layout {
            CsvLayout::Rows {
                input_size,
                head,
                output,
                ..
            } => ModelIo {
                input: Input::Dense { size: *input_size },
                output: *output,
                head: *head,
                seq: SeqShape::ManyToOne,
            },
            CsvLayout::Series {
                columns,
                target_cols,
                head,
            } => ModelIo {
                input: Input::Dense { size: *columns },
                output: target_cols.len(),
                head: *head,
                seq: SeqShape::ManyToMany,
            },
        }
    }

    /// T fixed by the file (layout (a)), or None when any T works.
    pub fn fixed_seq_len(&self) -> Option<usize> {
        match self.layout {
            CsvLayout::Rows { seq_len, .. } => Some(seq_len),
            CsvLayout::Series { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match &self.layout {
            CsvLayout::Rows {
                seq_len, input_size, ..
            } => format!(
                "csv: {} train / {} val sequences of T={seq_len} steps × I={input_size}",
                self.train.len(),
                self.val.len()
            ),
            CsvLayout::Series {
                columns, target_cols, ..
            } => format!(
                "csv series: {} train / {} val rows, {columns} columns, targets {target_cols:?}",
                self.train.len(),
                self.val.len()
            ),
        }
    }

    pub fn random_batch(&self, rng: &mut ChaCha8Rng, b: usize, t: usize) -> Batch<f32> {
        match self.layout {
            CsvLayout::Rows { .. } => {
                let idx: Vec<usize> = (0..b).map(|_| rng.random_range(0..self.train.len())).collect();
                self.row_batch(&self.train, &idx)
            }
            CsvLayout::Series { .. } => {
                let starts: Vec<usize> = (0..b).map(|_| rng.random_range(0..self.train.len() - t)).collect();
                self.series_batch(&self.train, &starts, t)
            }
        }
    }

    /// The whole validation split (the training split when there is none, e.g. for `eval`
    /// with --val-fraction 0) in batches of at most B.
    pub fn val_batches(&self, b: usize, t: usize) -> Vec<Batch<f32>> {
        self.batches_of(&self.val, b, t)
    }

    /// Every sequence / window of the training split, for `eval`.
    pub fn all_batches(&self, b: usize, t: usize) -> Vec<Batch<f32>> {
        self.batches_of(&self.train, b, t)
    }

    fn batches_of(&self, rows: &[Vec<f32>], b: usize, t: usize) -> Vec<Batch<f32>> {
        match self.layout {
            CsvLayout::Rows { .. } => {
                let idx: Vec<usize> = (0..rows.len()).collect();
                idx.chunks(b).map(|c| self.row_batch(rows, c)).collect()
            }
            CsvLayout::Series { .. } => {
                if rows.len() < 2 {
                    return Vec::new();
                }
                let t = t.min(rows.len() - 1);
                let starts: Vec<usize> = (0..(rows.len() - 1) / t).map(|w| w * t).collect();
                starts.chunks(b).map(|s| self.series_batch(rows, s, t)).collect()
            }
        }
    }

    /// Many-to-one batch of the rows `idx`: inputs (T, B, I), targets (1, B) or (1, B, O).
    fn row_batch(&self, rows: &[Vec<f32>], idx: &[usize]) -> Batch<f32> {
        let CsvLayout::Rows {
            seq_len: t,
            input_size: i_w,
            head,
            output,
        } = self.layout
        else {
            unreachable!("row_batch is only called for the rows layout")
        };
        let b = idx.len();
        let mut x = vec![0.0f32; t * b * i_w];
        for (bi, &r) in idx.iter().enumerate() {
            for s in 0..t {
                x[(s * b + bi) * i_w..(s * b + bi + 1) * i_w].copy_from_slice(&rows[r][s * i_w..(s + 1) * i_w]);
            }
        }
        let feat = t * i_w;
        let targets = if head == Head::Softmax {
            Targets::Classes(idx.iter().map(|&r| rows[r][feat] as u32).collect())
        } else {
            Targets::Values(
                idx.iter()
                    .flat_map(|&r| rows[r][feat..feat + output].iter().copied())
                    .collect(),
            )
        };
        Batch {
            batch: b,
            steps: t,
            inputs: Inputs::Dense(x),
            targets,
            h0: None,
            lengths: None,
        }
    }

    /// Many-to-many batch of windows: inputs rows s..s+T (T, B, I), targets the next rows'
    /// target columns (T, B, O).
    fn series_batch(&self, rows: &[Vec<f32>], starts: &[usize], t: usize) -> Batch<f32> {
        let CsvLayout::Series {
            columns, target_cols, ..
        } = &self.layout
        else {
            unreachable!("series_batch is only called for the series layout")
        };
        let b = starts.len();
        let o = target_cols.len();
        let mut x = vec![0.0f32; t * b * columns];
        let mut y = vec![0.0f32; t * b * o];
        for (bi, &s) in starts.iter().enumerate() {
            for k in 0..t {
                let row = (k * b + bi) * columns;
                x[row..row + columns].copy_from_slice(&rows[s + k]);
                for (j, &c) in target_cols.iter().enumerate() {
                    y[(k * b + bi) * o + j] = rows[s + k + 1][c];
                }
            }
        }
        Batch {
            batch: b,
            steps: t,
            inputs: Inputs::Dense(x),
            targets: Targets::Values(y),
            h0: None,
            lengths: None,
        }
    }
}

fn check_class(path: &Path, line: usize, v: f32, classes: Option<usize>) -> Result<u32> {
    let hint = "the last column holds the class id, an integer in 0..V (set V with --output-size)";
    if v < 0.0 || v.fract() != 0.0 || v > u32::MAX as f32 {
        return Err(Error::file(
            path,
            format!("line {line}: class id {v} is not a non-negative integer"),
            hint,
        ));
    }
    if let Some(n) = classes {
        if v as usize >= n {
            return Err(Error::file(
                path,
                format!("line {line}: class id {v} is out of range 0..{n}"),
                hint,
            ));
        }
    }
    Ok(v as u32)
}

fn rows_layout(path: &Path, p: &Parsed, opts: &CsvOptions) -> Result<CsvLayout> {
    let width = p.rows[0].1.len();
    let i_w = opts.input_size.unwrap_or(1);
    if i_w == 0 {
        return Err(Error::config("input-size", 0, "the input width I must be at least 1"));
    }
    let tw = match opts.head {
        Head::Softmax => 1,
        _ => opts.output.unwrap_or(1),
    };
    let t = match opts.seq_len {
        Some(t) => t,
        None => width.saturating_sub(tw) / i_w,
    };
    // flags are unbounded: compare without wrapping products
    let need = t.checked_mul(i_w).and_then(|n| n.checked_add(tw));
    if t == 0 || need.is_none_or(|n| width < n) {
        return Err(Error::file(
            path,
            format!(
                "too few columns: rows have {width}, one sequence per row needs T·I + {tw} = {}·{i_w} + {tw}",
                t.max(1)
            ),
            "set --seq-len T and --input-size I so that T·I features and the target fit in a row",
        ));
    }
    let output = match opts.head {
        Head::Softmax => {
            let mut max = 0u32;
            for (line, r) in &p.rows {
                max = max.max(check_class(path, *line, r[width - 1], opts.output)?);
            }
            opts.output.unwrap_or(max as usize + 1).max(2)
        }
        _ => width - t * i_w,
    };
    Ok(CsvLayout::Rows {
        seq_len: t,
        input_size: i_w,
        head: opts.head,
        output,
    })
}

fn series_layout(path: &Path, p: &Parsed, cols: &str, opts: &CsvOptions) -> Result<CsvLayout> {
    let width = p.rows[0].1.len();
    if opts.head == Head::Softmax {
        return Err(Error::config(
            "head",
            "softmax",
            "a series (--target-cols) predicts values: use --head linear or sigmoid",
        ));
    }
    let mut target_cols = Vec::new();
    for name in cols.split(',').map(str::trim) {
        let by_name = p.header.as_ref().and_then(|h| h.iter().position(|c| c == name));
        let idx = by_name.or_else(|| name.parse::<usize>().ok().filter(|&i| i < width));
        match idx {
            Some(i) => target_cols.push(i),
            None => {
                let known = match &p.header {
                    Some(h) => format!("columns: {}", h.join(", ")),
                    None => format!("no header; indices 0..{width}"),
                };
                return Err(Error::file(
                    path,
                    format!("unknown target column {name:?}"),
                    format!("--target-cols takes header names or 0-based indices ({known})"),
                ));
            }
        }
    }
    Ok(CsvLayout::Series {
        columns: width,
        target_cols,
        head: opts.head,
    })
}
