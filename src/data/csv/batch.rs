//! Time-major batches from CSV rows, one builder per layout. Rows without targets (`predict`)
//! get zero targets, which every head accepts.

use super::CsvLayout;
use crate::batch::{Batch, Inputs, Targets};
use crate::config::Head;

/// Layouts (a) and (c): one sequence per row `idx`.
pub(super) fn rows(layout: &CsvLayout, rows: &[Vec<f32>], idx: &[usize]) -> Batch<f32> {
    match *layout {
        CsvLayout::Rows {
            seq_len,
            input_size,
            head,
            output,
            token_vocab,
        } => many_to_one(rows, idx, seq_len, input_size, head, output, token_vocab.is_some()),
        CsvLayout::OneToMany {
            input_size,
            seq_len,
            head,
            output,
        } => one_to_many(rows, idx, input_size, seq_len, head, output),
        CsvLayout::Series { .. } => unreachable!("series rows are cut into windows"),
    }
}

/// Inputs (T, B, I) or token ids (T, B); targets (1, B) or (1, B, O).
fn many_to_one(
    rows: &[Vec<f32>],
    idx: &[usize],
    t: usize,
    i_w: usize,
    head: Head,
    output: usize,
    ids: bool,
) -> Batch<f32> {
    let b = idx.len();
    let i_w = if ids { 1 } else { i_w };
    let mut x = vec![0.0f32; t * b * i_w];
    for (bi, &r) in idx.iter().enumerate() {
        for s in 0..t {
            x[(s * b + bi) * i_w..(s * b + bi + 1) * i_w].copy_from_slice(&rows[r][s * i_w..(s + 1) * i_w]);
        }
    }
    let feat = t * i_w;
    let inputs = match ids {
        true => Inputs::Tokens(x.iter().map(|&v| v as u32).collect()),
        false => Inputs::Dense(x),
    };
    let tw = if head == Head::Softmax { 1 } else { output };
    let target = |r: usize| rows[r].get(feat..feat + tw);
    let targets = if head == Head::Softmax {
        Targets::Classes(idx.iter().map(|&r| target(r).map_or(0, |c| c[0] as u32)).collect())
    } else {
        Targets::Values(
            idx.iter()
                .flat_map(|&r| target(r).map_or(vec![0.0; tw], <[f32]>::to_vec))
                .collect(),
        )
    };
    Batch {
        batch: b,
        steps: t,
        inputs,
        targets,
        h0: None,
        lengths: None,
    }
}

/// Inputs (1, B, I); targets (T, B) class ids or (T, B, O) values.
fn one_to_many(rows: &[Vec<f32>], idx: &[usize], i_w: usize, t: usize, head: Head, output: usize) -> Batch<f32> {
    let b = idx.len();
    let per_step = if head == Head::Softmax { 1 } else { output };
    let mut x = vec![0.0f32; b * i_w];
    let mut y = vec![0.0f32; t * b * per_step];
    for (bi, &r) in idx.iter().enumerate() {
        let row = &rows[r];
        x[bi * i_w..(bi + 1) * i_w].copy_from_slice(&row[..i_w]);
        if row.len() > i_w {
            for s in 0..t {
                let src = &row[i_w + s * per_step..i_w + (s + 1) * per_step];
                y[(s * b + bi) * per_step..(s * b + bi + 1) * per_step].copy_from_slice(src);
            }
        }
    }
    let targets = match head {
        Head::Softmax => Targets::Classes(y.iter().map(|&v| v as u32).collect()),
        _ => Targets::Values(y),
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

/// Layout (b): windows of T rows from `starts`: inputs (T, B, I) of the input columns,
/// targets (T, B, O) of the target columns `target_shift` rows later.
pub(super) fn series(layout: &CsvLayout, rows: &[Vec<f32>], starts: &[usize], t: usize) -> Batch<f32> {
    let CsvLayout::Series {
        columns,
        target_cols,
        input_cols,
        target_shift,
        ..
    } = layout
    else {
        unreachable!("series batches are cut from the series layout")
    };
    let all: Vec<usize>;
    let inputs = match input_cols {
        Some(c) => c,
        None => {
            all = (0..*columns).collect();
            &all
        }
    };
    let (b, i_w, o) = (starts.len(), inputs.len(), target_cols.len());
    let mut x = vec![0.0f32; t * b * i_w];
    let mut y = vec![0.0f32; t * b * o];
    for (bi, &s) in starts.iter().enumerate() {
        for k in 0..t {
            let at = k * b + bi;
            for (j, &c) in inputs.iter().enumerate() {
                x[at * i_w + j] = rows[s + k][c];
            }
            for (j, &c) in target_cols.iter().enumerate() {
                y[at * o + j] = rows[s + k + target_shift][c];
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
