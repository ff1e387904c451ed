//! Which layout the flags ask for (inferring what they leave open from the file), and the
//! check of a layout against a file, also for a layout read from a checkpoint's metadata
//! (any numbers at all: no wrapping products).

use std::path::Path;

use super::parse::{check_class, resolve_cols, Parsed};
use super::{CsvLayout, CsvOptions};
use crate::config::{Head, SeqShape};
use crate::error::{Error, Result};

const CLASS_HINT: &str = "the class id is an integer in 0..V (set V with --output-size)";
const ID_HINT: &str = "with --tokens ids every feature is a token id, a non-negative integer";

pub(super) fn from_options(path: &Path, p: &Parsed, opts: &CsvOptions) -> Result<CsvLayout> {
    let series_only = [
        ("input-cols", opts.input_cols.is_some()),
        ("target-shift", opts.target_shift.is_some()),
    ];
    let seq = match (opts.seq, &opts.target_cols) {
        (Some(s), _) => s,
        (None, Some(_)) => SeqShape::ManyToMany,
        (None, None) => SeqShape::ManyToOne,
    };
    if seq != SeqShape::ManyToMany {
        if let Some((flag, _)) = series_only
            .iter()
            .chain(&[("target-cols", opts.target_cols.is_some())])
            .find(|f| f.1)
        {
            return Err(Error::config(
                flag,
                "set",
                format!("applies to a CSV with one time step per row (--target-cols, many-to-many), not to {seq}"),
            ));
        }
    }
    if opts.token_ids && seq != SeqShape::ManyToOne {
        return Err(Error::config(
            "tokens",
            "ids",
            "a CSV of token ids is read as one stream (a language model) or, with --seq many-to-one, as one sequence per row",
        ));
    }
    match seq {
        SeqShape::ManyToOne => rows(path, p, opts),
        SeqShape::ManyToMany => series(path, p, opts),
        SeqShape::OneToMany => one_to_many(path, p, opts),
    }
}

fn rows(path: &Path, p: &Parsed, opts: &CsvOptions) -> Result<CsvLayout> {
    let width = p.rows[0].1.len();
    let i_w = opts.input_size.unwrap_or(1);
    if i_w == 0 {
        return Err(Error::config("input-size", 0, "the input width I must be at least 1"));
    }
    if opts.token_ids && i_w != 1 {
        return Err(Error::config(
            "input-size",
            i_w,
            "token ids are one per step: drop --input-size",
        ));
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
                max = max.max(check_class(path, *line, r[width - 1], opts.output, CLASS_HINT)?);
            }
            opts.output.unwrap_or(max as usize + 1).max(2)
        }
        _ => width - t * i_w,
    };
    let token_vocab = match opts.token_ids {
        true => {
            let mut max = 0u32;
            for (line, r) in &p.rows {
                for &v in &r[..t] {
                    max = max.max(check_class(path, *line, v, None, ID_HINT)?);
                }
            }
            Some((max as usize + 1).max(2))
        }
        false => None,
    };
    Ok(CsvLayout::Rows {
        seq_len: t,
        input_size: i_w,
        head: opts.head,
        output,
        token_vocab,
    })
}

fn series(path: &Path, p: &Parsed, opts: &CsvOptions) -> Result<CsvLayout> {
    let width = p.rows[0].1.len();
    if opts.head == Head::Softmax {
        return Err(Error::config(
            "head",
            "softmax",
            "a series (--target-cols) predicts values: use --head linear or sigmoid",
        ));
    }
    let Some(cols) = &opts.target_cols else {
        return Err(Error::config(
            "seq",
            SeqShape::ManyToMany,
            "a CSV read as a many-to-many series needs --target-cols (the columns to predict)",
        ));
    };
    let header = p.header.as_deref();
    let target_cols = resolve_cols(path, header, width, cols, ("--target-cols", "target column"))?;
    let target_shift = opts.target_shift.unwrap_or(1);
    if target_shift > 1 {
        return Err(Error::config(
            "target-shift",
            target_shift,
            "0 (targets of the same row) or 1 (of the next row)",
        ));
    }
    let input_cols = match (&opts.input_cols, target_shift) {
        (Some(spec), _) => Some(resolve_cols(
            path,
            header,
            width,
            spec,
            ("--input-cols", "input column"),
        )?),
        (None, 1) => None,
        // predicting a row's own columns from themselves would be the identity
        (None, _) => Some((0..width).filter(|c| !target_cols.contains(c)).collect()),
    };
    let layout = CsvLayout::Series {
        columns: width,
        target_cols,
        head: opts.head,
        input_cols,
        target_shift,
    };
    check_series(path, &layout, width)?;
    Ok(layout)
}

fn one_to_many(path: &Path, p: &Parsed, opts: &CsvOptions) -> Result<CsvLayout> {
    let width = p.rows[0].1.len();
    let i_w = opts.input_size.unwrap_or(1);
    let t = opts.seq_len.unwrap_or(1);
    if i_w == 0 || t == 0 {
        return Err(Error::config("input-size", i_w, "I and T must be at least 1"));
    }
    let output = match opts.head {
        Head::Softmax => {
            let mut max = 0u32;
            for (line, r) in &p.rows {
                for &v in r.get(i_w..).unwrap_or_default() {
                    max = max.max(check_class(path, *line, v, opts.output, CLASS_HINT)?);
                }
            }
            opts.output.unwrap_or(max as usize + 1).max(2)
        }
        _ => match opts.output {
            Some(o) => o,
            None if width > i_w && (width - i_w).is_multiple_of(t) => (width - i_w) / t,
            None => {
                return Err(Error::file(
                    path,
                    format!(
                        "rows have {width} columns: after I = {i_w} features, {} target cells do not make T = {t} steps of equal width",
                        width.saturating_sub(i_w)
                    ),
                    "set --input-size I and --seq-len T so that each row is I features then T·O targets",
                ));
            }
        },
    };
    let layout = CsvLayout::OneToMany {
        input_size: i_w,
        seq_len: t,
        head: opts.head,
        output,
    };
    check_width(path, &layout, width, false)?;
    Ok(layout)
}

/// `layout` against the file `p`; `inputs_only`: rows may leave out the targets.
pub(super) fn check(path: &Path, p: &Parsed, layout: &CsvLayout, inputs_only: bool) -> Result<()> {
    let width = p.rows[0].1.len();
    match layout {
        CsvLayout::Series { .. } => check_series(path, layout, width),
        CsvLayout::Rows {
            seq_len,
            head,
            output,
            token_vocab,
            ..
        } => {
            let has_target = check_width(path, layout, width, inputs_only)?;
            for (line, r) in &p.rows {
                if let Some(v) = token_vocab {
                    for &x in &r[..*seq_len] {
                        check_class(path, *line, x, Some(*v), ID_HINT)?;
                    }
                }
                if has_target && *head == Head::Softmax {
                    check_class(path, *line, r[width - 1], Some(*output), CLASS_HINT)?;
                }
            }
            Ok(())
        }
        CsvLayout::OneToMany {
            input_size,
            head,
            output,
            ..
        } => {
            let has_target = check_width(path, layout, width, inputs_only)?;
            if has_target && *head == Head::Softmax {
                for (line, r) in &p.rows {
                    for &v in &r[*input_size..] {
                        check_class(path, *line, v, Some(*output), CLASS_HINT)?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// Layouts (a) and (c): the row width against the layout's; returns whether the rows hold
/// the targets (they may not when `inputs_only`).
fn check_width(path: &Path, layout: &CsvLayout, width: usize, inputs_only: bool) -> Result<bool> {
    let (inputs, targets, what, hint) = match *layout {
        CsvLayout::Rows {
            seq_len,
            input_size,
            head,
            output,
            token_vocab,
        } => {
            let tw = if head == Head::Softmax { 1 } else { output };
            let i_w = if token_vocab.is_some() { 1 } else { input_size };
            (
                seq_len.checked_mul(i_w),
                Some(tw),
                format!("T·I + {tw} = {seq_len}·{i_w} + {tw}"),
                "set --seq-len and --input-size to match the file (T·I features, then the target)",
            )
        }
        CsvLayout::OneToMany {
            input_size,
            seq_len,
            head,
            output,
        } => {
            let per_step = if head == Head::Softmax { 1 } else { output };
            (
                Some(input_size),
                seq_len.checked_mul(per_step),
                format!("I + T·O = {input_size} + {seq_len}·{per_step}"),
                "set --input-size I and --seq-len T to match the file (I features, then T steps of targets)",
            )
        }
        CsvLayout::Series { .. } => return Ok(true),
    };
    let need = inputs.zip(targets).and_then(|(i, t)| i.checked_add(t));
    if need == Some(width) {
        return Ok(true);
    }
    if inputs_only && inputs == Some(width) {
        return Ok(false);
    }
    let need = need.map_or("more than fits in memory".to_string(), |n| n.to_string());
    Err(Error::file(
        path,
        format!("rows have {width} columns, expected {what} = {need}"),
        hint,
    ))
}

fn check_series(path: &Path, layout: &CsvLayout, width: usize) -> Result<()> {
    let CsvLayout::Series {
        columns,
        target_cols,
        input_cols,
        target_shift,
        ..
    } = layout
    else {
        return Ok(());
    };
    if width != *columns {
        return Err(Error::file(
            path,
            format!("rows have {width} columns, the model was trained on {columns}"),
            "use a file with the training file's columns",
        ));
    }
    let cols = target_cols.iter().chain(input_cols.iter().flatten());
    if let Some(&c) = cols.clone().find(|&&c| c >= width) {
        return Err(Error::file(
            path,
            format!("column {c} does not exist"),
            "check --target-cols and --input-cols",
        ));
    }
    if target_cols.is_empty() || input_cols.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::file(
            path,
            "no target or no input column",
            "name at least one of each",
        ));
    }
    if *target_shift > 1 {
        return Err(Error::config("target-shift", target_shift, "0 or 1"));
    }
    if *target_shift == 0 {
        let inputs = input_cols.clone().unwrap_or_else(|| (0..width).collect());
        if let Some(c) = target_cols.iter().find(|c| inputs.contains(c)) {
            return Err(Error::config(
                "input-cols",
                c,
                "with --target-shift 0 a target column cannot also be an input (the model would read its own answer)",
            ));
        }
    }
    Ok(())
}
