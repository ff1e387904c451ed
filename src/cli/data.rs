//! `train`'s data flags: how a file is read (text tokens, labelled lines, CSV layouts and
//! columns) and the data they name, loaded.

use clap::Args;

use super::TrainArgs;
use wgrnn::data::csv::CsvOptions;
use wgrnn::data::{CsvData, DataSpec, Dataset, LabelFormat, LabelSpec, LabelledData, Labels, TokenKind, Tokenizer};
use wgrnn::{Error, Result, SeqShape};

/// Flags of the data's format; each applies to some sources only, and is refused elsewhere.
#[derive(Args, Clone, Debug)]
pub struct FormatArgs {
    /// Text tokens: char; word (runs of letters and digits, each punctuation mark, line breaks); ids (integers in 0..V separated by commas, spaces or lines, also in a .csv) [default: char]
    #[arg(long)]
    pub tokens: Option<TokenKind>,
    /// Word tokens: keep words seen at least this often in the training split; the others become <unk> [default: 1]
    #[arg(long)]
    pub min_count: Option<usize>,
    /// Word tokens: at most this many vocabulary entries, <unk> included, the most frequent kept [default: no limit]
    #[arg(long)]
    pub max_vocab: Option<usize>,
    /// Sequence shape: a text file with many-to-one holds labelled lines (label<TAB>text); a .csv is many-to-one (one sequence per row), many-to-many (one step per row, --target-cols) or one-to-many (I features then T steps of targets per row) [default: from the data]
    #[arg(long)]
    pub seq: Option<SeqShape>,
    /// Labelled CSV (with a header): the column holding the text (name or 0-based index)
    #[arg(long)]
    pub text_col: Option<String>,
    /// Labelled CSV: the column holding the label (name or 0-based index)
    #[arg(long)]
    pub label_col: Option<String>,
    /// CSV with one time step per row: the input columns (names or 0-based indices) [default: every column; every non-target column with --target-shift 0]
    #[arg(long)]
    pub input_cols: Option<String>,
    /// CSV with one time step per row: 1 predicts the next row's target columns, 0 the same row's [default: 1]
    #[arg(long)]
    pub target_shift: Option<usize>,
}

impl FormatArgs {
    /// The first of `flags` that is set, for "does not apply" errors.
    fn any_set(&self, a: &TrainArgs, flags: &[&'static str]) -> Option<&'static str> {
        let set = |f: &str| match f {
            "tokens" => self.tokens.is_some(),
            "min-count" => self.min_count.is_some(),
            "max-vocab" => self.max_vocab.is_some(),
            "seq" => self.seq.is_some(),
            "text-col" => self.text_col.is_some(),
            "label-col" => self.label_col.is_some(),
            "input-cols" => self.input_cols.is_some(),
            "target-shift" => self.target_shift.is_some(),
            "target-cols" => a.target_cols.is_some(),
            _ => false,
        };
        flags.iter().copied().find(|f| set(f))
    }

    fn tokenizer(&self) -> Result<Tokenizer> {
        let kind = self.tokens.unwrap_or(TokenKind::Char);
        if kind != TokenKind::Word {
            if let Some((flag, v)) = [("min-count", self.min_count), ("max-vocab", self.max_vocab)]
                .into_iter()
                .find_map(|(f, v)| v.map(|v| (f, v)))
            {
                return Err(Error::config(flag, v, "applies to --tokens word"));
            }
        }
        Ok(match kind {
            TokenKind::Char => Tokenizer::Char,
            TokenKind::Ids => Tokenizer::Ids,
            TokenKind::Word => {
                let max_vocab = self.max_vocab;
                if let Some(m) = max_vocab.filter(|&m| m < 2) {
                    return Err(Error::config(
                        "max-vocab",
                        m,
                        "a vocabulary needs <unk> and at least one word",
                    ));
                }
                Tokenizer::Word {
                    min_count: self.min_count.unwrap_or(1).max(1),
                    max_vocab,
                }
            }
        })
    }
}

fn not_here(flag: &'static str, value: &str, what: &str) -> Error {
    Error::config(flag, value, format!("does not apply to {what}"))
}

/// The data the flags name, loaded.
pub fn data_spec(a: &TrainArgs) -> Result<(DataSpec, Dataset)> {
    let f = &a.format;
    let all = [
        "tokens",
        "min-count",
        "max-vocab",
        "seq",
        "text-col",
        "label-col",
        "input-cols",
        "target-shift",
    ];
    if let Some(task) = a.task {
        if let Some(flag) = f
            .any_set(a, &all)
            .filter(|&fl| fl != "seq" || f.seq != Some(task.model_io().seq))
        {
            return Err(not_here(
                flag,
                "set",
                &format!("--task {task} (it fixes its own data and shape)"),
            ));
        }
        return Ok((DataSpec::Task { task }, Dataset::Task(task)));
    }
    let Some(typed) = &a.data else {
        let text_flags = all
            .iter()
            .copied()
            .filter(|&fl| fl != "seq" || f.seq != Some(SeqShape::ManyToMany));
        if let Some(flag) = f.any_set(a, &text_flags.collect::<Vec<_>>()) {
            return Err(Error::config(
                flag,
                "set",
                "applies to a --data file; the bundled corpus is character-level text",
            ));
        }
        let spec = DataSpec::Bundled;
        let data = Dataset::load(&spec, a.val_fraction, None)?;
        return Ok((spec, data));
    };
    // stored absolute in checkpoints, so that `eval` and `--resume` from another directory
    // read the same file
    let path = std::path::absolute(typed).map_err(|e| Error::io("resolve", typed, e))?;
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let tokens = f.tokenizer()?;
    let labelled = f.text_col.is_some() || f.label_col.is_some() || (!is_csv && f.seq == Some(SeqShape::ManyToOne));
    let csv_rows = is_csv && (tokens != Tokenizer::Ids || f.seq == Some(SeqShape::ManyToOne));
    if labelled {
        if let Some(flag) = f.any_set(a, &["input-cols", "target-shift", "target-cols"]) {
            return Err(not_here(flag, "set", "labelled text (it is many-to-one)"));
        }
        if let Some(s) = f.seq.filter(|&s| s != SeqShape::ManyToOne) {
            return Err(not_here("seq", s.as_str(), "labelled text, which is many-to-one"));
        }
        let format = match (is_csv, &f.text_col, &f.label_col) {
            (false, None, None) => LabelFormat::Tsv,
            (true, Some(t), Some(l)) => LabelFormat::Csv {
                text_col: t.clone(),
                label_col: l.clone(),
            },
            (false, ..) => {
                return Err(not_here(
                    "text-col",
                    "set",
                    "a text file (label<TAB>text lines); use a .csv",
                ));
            }
            (true, ..) => {
                return Err(Error::config(
                    "text-col",
                    "set",
                    "a labelled CSV needs both --text-col and --label-col",
                ));
            }
        };
        if tokens == Tokenizer::Ids {
            return Err(not_here("tokens", "ids", "labelled text; use --tokens char or word"));
        }
        let spec = LabelSpec {
            format,
            tokens,
            max_len: a.seq_len(),
            classes: Vec::new(),
        };
        let d = LabelledData::load(&path, &spec, a.val_fraction, None, Labels::Define)?;
        let spec = DataSpec::Labelled {
            path,
            labels: d.spec.clone(),
        };
        return Ok((spec, Dataset::Labelled(d)));
    }
    if csv_rows {
        if tokens.kind() == TokenKind::Word {
            return Err(not_here(
                "tokens",
                "word",
                "a numeric CSV; word tokens are read from text files",
            ));
        }
        let opts = CsvOptions {
            seq_len: Some(a.seq_len()),
            input_size: (a.model.input_size > 0).then_some(a.model.input_size),
            head: a.model.head(),
            output: a.model.output_size.filter(|&o| o > 0),
            target_cols: a.target_cols.clone(),
            input_cols: f.input_cols.clone(),
            target_shift: f.target_shift,
            seq: f.seq,
            token_ids: tokens == Tokenizer::Ids,
        };
        let d = CsvData::load(&path, &opts, a.val_fraction)?;
        let spec = DataSpec::Csv {
            path,
            layout: d.layout.clone(),
        };
        return Ok((spec, Dataset::Csv(d)));
    }
    // a stream of tokens for a language model
    if let Some(flag) = f.any_set(a, &["input-cols", "target-shift", "target-cols"]) {
        return Err(Error::config(flag, "set", "applies to .csv data only"));
    }
    if let Some(s) = f.seq.filter(|&s| s != SeqShape::ManyToMany) {
        return Err(not_here(
            "seq",
            s.as_str(),
            "a text language model, which is many-to-many",
        ));
    }
    let spec = DataSpec::Text { path, tokens };
    let data = Dataset::load(&spec, a.val_fraction, None)?;
    Ok((spec, data))
}

/// The --seq-len a run was started with: labelled text stores its bound (T itself is the
/// longest example).
pub fn typed_seq_len(tm: &wgrnn::checkpoint::TrainMeta) -> usize {
    match &tm.data {
        DataSpec::Labelled { labels, .. } => labels.max_len,
        _ => tm.seq_len,
    }
}

/// The data a resumed run names with --data / --task, to be read like the checkpoint's:
/// labelled text keeps the checkpoint's classes (the new file's labels must be among them).
pub fn resumed_spec(a: &TrainArgs, stored: &DataSpec) -> Result<DataSpec> {
    let mut spec = data_spec(a)?.0;
    if let (DataSpec::Labelled { labels, .. }, DataSpec::Labelled { labels: old, .. }) = (&mut spec, stored) {
        labels.classes = old.classes.clone();
    }
    Ok(spec)
}
