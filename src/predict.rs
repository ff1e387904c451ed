//! `predict`: a model's outputs on every sequence of a file, one record per sequence (or per
//! step), as CSV or JSON lines. The file is read the way the model's training data was
//! (labels and targets may be absent):
//! - labelled text: `line,label,p_<class>…` (the line of the example in the file);
//! - a CSV with one sequence per row: `row,class,p_0…` (softmax) or `row,y_0…` (0-based
//!   data rows);
//! - one-to-many rows: one record per generated step, `row,step,y_0…` or `row,step,class,p_0…`;
//! - a series: one record per row, `row,y_0…`, the prediction made at that row (of the next
//!   row's targets with --target-shift 1), the state carried from row to row.
//!
//! Language models are served by `sample` and `eval`, synthetic tasks have no file.

use serde_json::{json, Map, Value};

use crate::batch::Batch;
use crate::config::{str_enum, Head, ModelConfig};
use crate::data::{CsvData, CsvLayout, DataSpec, Dataset, Vocab};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::train::argmax;

str_enum!(
    /// The `--format` of `predict`'s records.
    PredictFormat("format") { Csv => "csv", Jsonl => "jsonl" }
);

/// Writes the header (CSV) and one record per line through `emit`; returns the number of
/// records. `spec` names the file to read (`DataSpec::with_path`), `vocab` is the model's.
pub fn predict(
    engine: &mut dyn Engine,
    spec: &DataSpec,
    vocab: Option<Vocab>,
    b: usize,
    t: usize,
    format: PredictFormat,
    emit: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<usize> {
    let cfg = *engine.config();
    let data = match spec {
        DataSpec::Labelled { .. } | DataSpec::Csv { .. } => Dataset::load_inputs(spec, vocab)?,
        DataSpec::Task { .. } => {
            return Err(Error::config(
                "checkpoint",
                spec.name(),
                "the model was trained on a synthetic task; there is no file format to predict on",
            ));
        }
        _ => {
            return Err(Error::config(
                "checkpoint",
                cfg,
                "predict runs classifiers and regressors; for a language model use sample (generation) or eval (loss)",
            ));
        }
    };
    let mut out = Records { format, emit, n: 0 };
    match &data {
        Dataset::Labelled(d) => {
            let names: Vec<String> = d.classes().iter().map(|c| format!("p_{c}")).collect();
            out.header("line,label", &names)?;
            for (chunk, batch) in d.train.chunks(b.max(1)).zip(d.batches(&d.train, b)) {
                let probs = engine.forward(&batch)?.out; // (B, O)
                for (e, p) in chunk.iter().zip(probs.chunks_exact(cfg.output)) {
                    let label = &d.classes()[argmax(p)];
                    out.record(("line", e.line), &[("label", json!(label))], &names, p)?;
                }
            }
        }
        Dataset::Csv(d) => match d.layout {
            CsvLayout::Series { .. } => series(engine, &cfg, d, t, &mut out)?,
            _ => rows(engine, &cfg, d, b, &mut out)?,
        },
        Dataset::Text(_) | Dataset::Task(_) => unreachable!("refused above"),
    }
    Ok(out.n)
}

/// Layouts with one sequence per row: many-to-one (one record per row) and one-to-many (one
/// per generated step).
fn rows(engine: &mut dyn Engine, cfg: &ModelConfig, d: &CsvData, b: usize, out: &mut Records) -> Result<()> {
    let o = cfg.output;
    let cols: Vec<String> = match cfg.head {
        Head::Softmax => (0..o).map(|k| format!("p_{k}")).collect(),
        _ => (0..o).map(|k| format!("y_{k}")).collect(),
    };
    let per_step = matches!(d.layout, CsvLayout::OneToMany { .. });
    let first = match (per_step, cfg.head) {
        (true, Head::Softmax) => "row,step,class",
        (true, _) => "row,step",
        (false, Head::Softmax) => "row,class",
        (false, _) => "row",
    };
    out.header(first, &cols)?;
    let batches = d.all_batches(b, 1);
    let mut row = 0;
    for batch in &batches {
        let y = engine.forward(batch)?.out; // (T_out, B, O)
        let nb = batch.batch;
        for i in 0..nb {
            let steps = if per_step { batch.steps } else { 1 };
            for s in 0..steps {
                let v = &y[(s * nb + i) * o..(s * nb + i + 1) * o];
                let mut extra = Vec::new();
                if per_step {
                    extra.push(("step", json!(s)));
                }
                if cfg.head == Head::Softmax {
                    extra.push(("class", json!(argmax(v))));
                }
                out.record(("row", row), &extra, &cols, v)?;
            }
            row += 1;
        }
    }
    Ok(())
}

/// A series: windows of T rows on one sequence, each starting from the previous one's
/// final state, so every row's prediction has seen every row before it.
fn series(engine: &mut dyn Engine, cfg: &ModelConfig, d: &CsvData, t: usize, out: &mut Records) -> Result<()> {
    let CsvLayout::Series { target_cols, .. } = &d.layout else {
        unreachable!("series only")
    };
    let cols: Vec<String> = target_cols.iter().map(|c| format!("y_{c}")).collect();
    out.header("row", &cols)?;
    let n = d.rows().len();
    let mut h0 = None;
    let mut start = 0;
    while start < n {
        let steps = t.max(1).min(n - start);
        let batch = Batch {
            h0,
            ..d.input_window(start, steps)
        };
        let o = engine.forward(&batch)?;
        for (s, v) in o.out.chunks_exact(cfg.output).enumerate() {
            out.record(("row", start + s), &[], &cols, v)?;
        }
        h0 = Some(o.final_state);
        start += steps;
    }
    Ok(())
}

/// The writer of one format.
struct Records<'a> {
    format: PredictFormat,
    emit: &'a mut dyn FnMut(&str) -> Result<()>,
    n: usize,
}

impl Records<'_> {
    fn header(&mut self, first: &str, cols: &[String]) -> Result<()> {
        if self.format == PredictFormat::Jsonl {
            return Ok(());
        }
        let names: Vec<String> = cols.iter().map(|c| csv_field(c)).collect();
        (self.emit)(&format!("{first},{}\n", names.join(",")))
    }

    /// `key` first, then `extra` fields, then `values` under the names `cols` (in JSON an
    /// object named after the first column's prefix: `p` or `y`).
    fn record(&mut self, key: (&str, usize), extra: &[(&str, Value)], cols: &[String], values: &[f32]) -> Result<()> {
        self.n += 1;
        let line = match self.format {
            PredictFormat::Csv => {
                let mut f = vec![key.1.to_string()];
                f.extend(extra.iter().map(|(_, v)| match v {
                    Value::String(s) => csv_field(s),
                    v => v.to_string(),
                }));
                f.extend(values.iter().map(f32::to_string));
                f.join(",")
            }
            PredictFormat::Jsonl => {
                let mut m = Map::new();
                m.insert(key.0.into(), json!(key.1));
                for (k, v) in extra {
                    m.insert((*k).into(), v.clone());
                }
                let group = cols
                    .first()
                    .map_or("y", |c| if c.starts_with("p_") { "p" } else { "y" });
                let named = cols.iter().zip(values).map(|(c, &v)| (c[2..].to_string(), num(v)));
                m.insert(group.into(), Value::Object(named.collect()));
                Value::Object(m).to_string()
            }
        };
        (self.emit)(&format!("{line}\n"))
    }
}

/// An f32 as the JSON number of its shortest decimal form (not of its f64 widening).
fn num(v: f32) -> Value {
    v.to_string().parse::<f64>().map_or(Value::Null, Value::from)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
