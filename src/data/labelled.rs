//! Labelled text for many-to-one classification: one example per line of a `label<TAB>text`
//! file, or per record of a CSV with a header naming a text and a label column. The text is
//! read as characters or words (`tokens.rs`); an example longer than the bound (`--seq-len`)
//! keeps its first tokens and is counted as truncated. Batches carry each example's length
//! (SPEC §1: the output is read at its own last step); T is the longest example, at most the
//! bound.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::csv::parse::{records, resolve_cols};
use super::text::read_text;
use super::tokens::{words, Tokenizer, Vocab};
use crate::batch::{Batch, Inputs, Targets};
use crate::error::{Error, Result};

/// Where the label and the text of an example are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LabelFormat {
    /// `label<TAB>text` lines
    Tsv,
    /// a CSV with a header; the columns as given (names or 0-based indices)
    Csv { text_col: String, label_col: String },
}

/// How a labelled file is read; stored in checkpoints with the class names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSpec {
    pub format: LabelFormat,
    pub tokens: Tokenizer,
    /// the bound on an example's length (`--seq-len`)
    pub max_len: usize,
    /// class names in id order (sorted); empty until the training file has been read
    pub classes: Vec<String>,
}

/// What the labels of a file must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Labels {
    /// every example has a label; they define the classes (training from scratch)
    Define,
    /// every example has a label among the spec's classes (`eval`, `--resume`)
    Known,
    /// labels may be absent and are not used (`predict`)
    Ignored,
}

#[derive(Clone, Debug)]
pub struct Example {
    /// line of the file where the example starts
    pub line: usize,
    pub tokens: Vec<u32>,
    /// class id (0 when the label is ignored)
    pub label: u32,
}

#[derive(Clone, Debug)]
pub struct LabelledData {
    pub vocab: Vocab,
    pub spec: LabelSpec,
    /// T: the longest example after truncation
    pub steps: usize,
    /// examples cut to the bound
    pub truncated: usize,
    pub train: Vec<Example>,
    pub val: Vec<Example>,
}

/// (line, label, text) of every example in the file.
type Raw = Vec<(usize, Option<String>, String)>;

fn read_raw(path: &Path, format: &LabelFormat, labels: Labels) -> Result<Raw> {
    let need_label = labels != Labels::Ignored;
    let mut out = Vec::new();
    match format {
        LabelFormat::Tsv => {
            for (i, line) in read_text(path)?.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let (label, text) = match line.split_once('\t') {
                    Some((l, t)) => (Some(l.trim().to_string()), t),
                    None if need_label => {
                        return Err(Error::file(
                            path,
                            format!("line {}: no tab between a label and the text", i + 1),
                            "write each example as label<TAB>text",
                        ));
                    }
                    None => (None, line),
                };
                out.push((i + 1, label, text.to_string()));
            }
        }
        LabelFormat::Csv { text_col, label_col } => {
            let mut recs = records(path)?.into_iter();
            let (_, header) = recs.next().unwrap_or_default();
            let width = header.len();
            let col = |spec: &str, flag| resolve_cols(path, Some(&header), width, spec, flag);
            let text = one_col(path, col(text_col, ("--text-col", "text column"))?, "--text-col")?;
            let label = match col(label_col, ("--label-col", "label column")) {
                Ok(c) => Some(one_col(path, c, "--label-col")?),
                Err(_) if !need_label => None,
                Err(e) => return Err(e),
            };
            for (line, mut cells) in recs {
                let l = label.map(|c| cells[c].trim().to_string());
                out.push((line, l, std::mem::take(&mut cells[text])));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::file(
            path,
            "has no examples",
            "add lines of label<TAB>text (or CSV records)",
        ));
    }
    for (line, label, text) in &out {
        if label.as_ref().is_some_and(String::is_empty) && need_label {
            return Err(Error::file(
                path,
                format!("line {line}: empty label"),
                "every example needs a label",
            ));
        }
        if text.trim().is_empty() {
            return Err(Error::file(
                path,
                format!("line {line}: empty text"),
                "every example needs some text",
            ));
        }
    }
    Ok(out)
}

fn one_col(path: &Path, cols: Vec<usize>, flag: &str) -> Result<usize> {
    match cols[..] {
        [c] => Ok(c),
        _ => Err(Error::file(
            path,
            format!("{flag} names {} columns", cols.len()),
            format!("{flag} takes one column"),
        )),
    }
}

impl LabelledData {
    /// `vocab`: the checkpoint's (then the labels are `Known` or `Ignored` and `spec.classes`
    /// holds the classes); None builds the vocabulary and the classes from the file.
    pub fn load(
        path: &Path,
        spec: &LabelSpec,
        val_fraction: f64,
        vocab: Option<Vocab>,
        labels: Labels,
    ) -> Result<Self> {
        if !(0.0..0.5).contains(&val_fraction) {
            return Err(Error::config("val-fraction", val_fraction, "must be in [0, 0.5)"));
        }
        let raw = read_raw(path, &spec.format, labels)?;
        let n = raw.len();
        let n_val = super::held_out(n, val_fraction);
        let mut spec = spec.clone();
        if labels == Labels::Define {
            let mut classes: Vec<String> = raw.iter().filter_map(|r| r.1.clone()).collect();
            classes.sort_unstable();
            classes.dedup();
            if classes.len() < 2 {
                return Err(Error::file(
                    path,
                    format!("has {} class(es): {}", classes.len(), classes.join(", ")),
                    "a classifier needs examples of at least 2 labels",
                ));
            }
            spec.classes = classes;
        }
        let vocab = match (vocab, spec.tokens) {
            (Some(v), _) => v,
            (None, Tokenizer::Word { min_count, max_vocab }) => {
                // counted on the training split, like a word language model's
                let w = raw[..n - n_val].iter().flat_map(|r| words(&r.2));
                Vocab::from_words(w, min_count, max_vocab)
            }
            (None, _) => Vocab::from_text(&raw.iter().map(|r| r.2.as_str()).collect::<String>()),
        };
        let (mut examples, mut truncated) = (Vec::with_capacity(n), 0);
        let what = path.display().to_string();
        for (line, label, text) in raw {
            let mut tokens = vocab.encode_at(&text, &what, line)?;
            if tokens.is_empty() {
                return Err(Error::file(
                    path,
                    format!("line {line}: empty text"),
                    "every example needs some text",
                ));
            }
            if tokens.len() > spec.max_len {
                tokens.truncate(spec.max_len);
                truncated += 1;
            }
            let label = match (labels, label) {
                (Labels::Ignored, _) | (_, None) => 0,
                (_, Some(l)) => class_id(path, line, &spec.classes, &l)?,
            };
            examples.push(Example { line, tokens, label });
        }
        let steps = examples.iter().map(|e| e.tokens.len()).max().unwrap_or(1);
        let val = examples.split_off(n - n_val);
        Ok(LabelledData {
            vocab,
            spec,
            steps,
            truncated,
            train: examples,
            val,
        })
    }

    pub fn classes(&self) -> &[String] {
        &self.spec.classes
    }

    /// B examples drawn uniformly, padded to T = `steps`.
    pub fn random_batch(&self, rng: &mut ChaCha8Rng, b: usize) -> Batch<f32> {
        let picked: Vec<&Example> = (0..b)
            .map(|_| &self.train[rng.random_range(0..self.train.len())])
            .collect();
        batch(&picked, self.steps)
    }

    /// `examples` in order, in batches of at most B.
    pub fn batches(&self, examples: &[Example], b: usize) -> Vec<Batch<f32>> {
        examples
            .chunks(b.max(1))
            .map(|c| batch(&c.iter().collect::<Vec<_>>(), self.steps))
            .collect()
    }

    /// Cross-entropy of always predicting the training split's class frequencies, and the
    /// accuracy of always predicting its most frequent class, on the validation split (the
    /// training split when there is none): what a model that ignores the text achieves.
    pub fn prior_baseline(&self) -> (f64, f64) {
        let k = self.spec.classes.len();
        let mut counts = vec![1.0f64; k];
        for e in &self.train {
            counts[e.label as usize] += 1.0;
        }
        let total: f64 = counts.iter().sum();
        let eval = if self.val.is_empty() { &self.train } else { &self.val };
        let nll: f64 = eval.iter().map(|e| -(counts[e.label as usize] / total).ln()).sum();
        let major = (0..k).max_by(|&a, &b| counts[a].total_cmp(&counts[b])).unwrap_or(0) as u32;
        let hits = eval.iter().filter(|e| e.label == major).count();
        let n = eval.len().max(1) as f64;
        (nll / n, hits as f64 / n)
    }
}

fn class_id(path: &Path, line: usize, classes: &[String], label: &str) -> Result<u32> {
    match classes.binary_search_by(|c| c.as_str().cmp(label)) {
        Ok(i) => Ok(i as u32),
        Err(_) => {
            let shown: Vec<&str> = classes.iter().take(10).map(String::as_str).collect();
            let more = if classes.len() > 10 { ", …" } else { "" };
            Err(Error::file(
                path,
                format!(
                    "line {line}: label {label:?} is not one of the model's {} classes ({}{more})",
                    classes.len(),
                    shown.join(", ")
                ),
                "evaluate on labels the model was trained with",
            ))
        }
    }
}

/// Tokens (T, B) padded with id 0, class targets (1, B), lengths (B).
fn batch(examples: &[&Example], t: usize) -> Batch<f32> {
    let b = examples.len();
    let mut x = vec![0u32; t * b];
    for (i, e) in examples.iter().enumerate() {
        for (s, &tok) in e.tokens.iter().enumerate() {
            x[s * b + i] = tok;
        }
    }
    Batch {
        batch: b,
        steps: t,
        inputs: Inputs::Tokens(x),
        targets: Targets::Classes(examples.iter().map(|e| e.label).collect()),
        h0: None,
        lengths: Some(examples.iter().map(|e| e.tokens.len() as u32).collect()),
    }
}
