//! Text for language models: tokens (characters, words or ids, `tokens.rs`), the
//! train/val split, and batches of windows (random windows, or B parallel streams of
//! consecutive windows for truncated BPTT).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

use super::read_file;
use super::tokens::{parse_ids, words, Tokenizer, Vocab};
use crate::batch::{Batch, Inputs, Targets};
use crate::error::{Error, Result};

/// A text corpus encoded and split; the validation split is taken from the end so it never
/// overlaps a training window.
#[derive(Clone, Debug)]
pub struct TextData {
    pub vocab: Vocab,
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

impl TextData {
    /// `vocab`: the checkpoint's vocabulary when resuming or evaluating; built from the
    /// training text by `tok` otherwise.
    pub fn load(path: &Path, tok: Tokenizer, val_fraction: f64, vocab: Option<Vocab>) -> Result<Self> {
        let text = read_text(path)?;
        Self::from_tokens(&text, &path.display().to_string(), tok, val_fraction, vocab)
    }

    /// Character-level text (the bundled corpus, tests).
    pub fn from_text(text: &str, name: &str, val_fraction: f64, vocab: Option<Vocab>) -> Result<Self> {
        Self::from_tokens(text, name, Tokenizer::Char, val_fraction, vocab)
    }

    pub fn from_tokens(
        text: &str,
        name: &str,
        tok: Tokenizer,
        val_fraction: f64,
        vocab: Option<Vocab>,
    ) -> Result<Self> {
        if !(0.0..0.5).contains(&val_fraction) {
            return Err(Error::config("val-fraction", val_fraction, "must be in [0, 0.5)"));
        }
        let n_val = |n: usize| (n as f64 * val_fraction).round() as usize;
        let vocab = match (vocab, tok) {
            (Some(v), _) => v,
            // a character vocabulary covers the whole file, so the validation split never
            // holds a character the model cannot represent
            (None, Tokenizer::Char) => Vocab::from_text(text),
            // words are counted on the training split: the validation split meets unknown
            // words as new text would
            (None, Tokenizer::Word { min_count, max_vocab }) => {
                let w = words(text);
                let n = w.len() - n_val(w.len());
                Vocab::from_words(w[..n].iter().copied(), min_count, max_vocab)
            }
            (None, Tokenizer::Ids) => Vocab::ids(parse_ids(text, name)?.iter().max().map_or(0, |&m| m as usize + 1)),
        };
        if vocab.len() < 2 {
            return Err(Error::file(
                name,
                format!("has {} distinct {}(s)", vocab.len(), vocab.unit()),
                "a language model needs at least 2; use a longer text (or a lower --min-count)",
            ));
        }
        let mut train = vocab.encode(text, name)?;
        let val = train.split_off(train.len() - n_val(train.len()));
        Ok(TextData { vocab, train, val })
    }

    /// Checks that the training split holds at least one window of T+1 characters.
    pub fn check_len(&self, t: usize, name: &str) -> Result<()> {
        if self.train.len() < t + 1 {
            return Err(Error::file(
                name,
                format!(
                    "the training split has {} {}s, fewer than --seq-len + 1 = {}",
                    self.train.len(),
                    self.vocab.unit(),
                    t + 1
                ),
                "use a longer text or a smaller --seq-len",
            ));
        }
        Ok(())
    }

    /// B windows at random offsets (uniform over every valid start).
    pub fn random_batch(&self, rng: &mut ChaCha8Rng, b: usize, t: usize) -> Batch<f32> {
        let starts: Vec<usize> = (0..b).map(|_| rng.random_range(0..self.train.len() - t)).collect();
        windows(&self.train, &starts, t)
    }

    /// Cross-entropy of the validation split (the training split if there is none) under the
    /// training split's character frequencies, add-one smoothed: the loss of a model that
    /// ignores context.
    pub fn unigram_baseline(&self) -> f64 {
        let v = self.vocab.len();
        let mut counts = vec![1.0f64; v];
        for &c in &self.train {
            counts[c as usize] += 1.0;
        }
        let total: f64 = counts.iter().sum();
        let eval = if self.val.is_empty() { &self.train } else { &self.val };
        let nll: f64 = eval.iter().map(|&c| -(counts[c as usize] / total).ln()).sum();
        nll / eval.len().max(1) as f64
    }
}

/// Windows of T inputs and their next-character targets starting at `starts`: (T, B).
pub fn windows(tokens: &[u32], starts: &[usize], t: usize) -> Batch<f32> {
    let b = starts.len();
    let mut x = vec![0u32; t * b];
    let mut y = vec![0u32; t * b];
    for (i, &s) in starts.iter().enumerate() {
        for k in 0..t {
            x[k * b + i] = tokens[s + k];
            y[k * b + i] = tokens[s + k + 1];
        }
    }
    Batch {
        batch: b,
        steps: t,
        inputs: Inputs::Tokens(x),
        targets: Targets::Classes(y),
        h0: None,
        lengths: None,
    }
}

/// Non-overlapping windows covering `tokens` (T shrinks for a text shorter than T+1), in
/// batches of at most B; every window starts from a zero state.
pub fn eval_batches(tokens: &[u32], b: usize, t: usize) -> Vec<Batch<f32>> {
    if tokens.len() < 2 {
        return Vec::new();
    }
    let t = t.min(tokens.len() - 1);
    let starts: Vec<usize> = (0..(tokens.len() - 1) / t).map(|w| w * t).collect();
    starts.chunks(b).map(|s| windows(tokens, s, t)).collect()
}

/// B streams over equal segments of the training split, each advancing by T per step: the
/// hidden state after one window is the initial state of the next (truncated BPTT). When the
/// segments are used up every stream restarts at its segment's start with a zero state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streams {
    /// windows served so far in the current pass
    pub pos: usize,
}

impl Streams {
    pub fn windows_per_pass(len: usize, b: usize, t: usize) -> usize {
        (len / b).saturating_sub(1) / t
    }

    /// Checks that every stream has at least one window.
    pub fn check(len: usize, b: usize, t: usize, name: &str) -> Result<()> {
        if Self::windows_per_pass(len, b, t) == 0 {
            return Err(Error::file(
                name,
                format!("the training split ({len} tokens) is too short for {b} streams of --seq-len {t} windows"),
                "use a smaller --batch or --seq-len, or drop --stateful",
            ));
        }
        Ok(())
    }

    /// The next batch (`h0` None), and whether it continues the previous window: false at
    /// the start of a pass, whose windows start from a zero state.
    pub fn next(&mut self, data: &TextData, b: usize, t: usize) -> (Batch<f32>, bool) {
        let per_pass = Self::windows_per_pass(data.train.len(), b, t);
        if self.pos >= per_pass {
            self.pos = 0;
        }
        let continues = self.pos > 0;
        let seg = data.train.len() / b;
        let starts: Vec<usize> = (0..b).map(|i| i * seg + self.pos * t).collect();
        self.pos += 1;
        (windows(&data.train, &starts, t), continues)
    }
}

/// Reads a UTF-8 text file, rejecting empty and binary files with one-line errors.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read_file(path)?;
    if bytes.contains(&0) {
        return Err(Error::file(
            path,
            "contains NUL bytes: this looks like a binary file, not text",
            "pass a plain UTF-8 text file (or a .csv file for numeric data)",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::file(
            path,
            format!("is not valid UTF-8 (byte offset {})", e.utf8_error().valid_up_to()),
            "pass a plain UTF-8 text file; convert other encodings with iconv",
        )
    })
}
