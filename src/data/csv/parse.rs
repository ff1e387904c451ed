//! Reading CSV files: numeric rows (with an optional header), quoted records (for a text
//! column), and column names or indices given on the command line.

use std::path::Path;

use crate::data::read_file;
use crate::error::{Error, Result};

pub(crate) struct Parsed {
    pub header: Option<Vec<String>>,
    /// (line number, cells)
    pub rows: Vec<(usize, Vec<f32>)>,
}

fn utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| Error::file(path, "is not UTF-8 text", "pass a comma-separated text file"))
}

/// Numeric rows, all as wide as the first; a first line whose cells are all non-numeric is
/// a header.
pub(crate) fn parse(path: &Path) -> Result<Parsed> {
    let bytes = read_file(path)?;
    let text = utf8(path, &bytes)?;
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

/// Records of a CSV file with quoted fields (RFC 4180: a field in double quotes may hold
/// commas, line breaks and `""` for a quote): (first line number, cells). Blank lines are
/// skipped; every record must be as wide as the first (the header).
pub(crate) fn records(path: &Path) -> Result<Vec<(usize, Vec<String>)>> {
    let bytes = read_file(path)?;
    let text = utf8(path, &bytes)?;
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    let (mut cells, mut cell) = (Vec::new(), String::new());
    let (mut line, mut start) = (1usize, 1usize);
    let mut chars = text.chars().peekable();
    let (mut quoted, mut any) = (false, false);
    let bad = |line: usize, what: &str| {
        Error::file(
            path,
            format!("line {line}: {what}"),
            "quote a field that holds commas, quotes or line breaks as \"...\", with \"\" for a quote",
        )
    };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',' | '\n' | '\r')) {
                        return Err(bad(line, "text after a closing quote"));
                    }
                }
                _ => {
                    line += (c == '\n') as usize;
                    cell.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if cell.trim().is_empty() => {
                cell.clear();
                quoted = true;
                any = true;
            }
            '"' => return Err(bad(line, "a quote inside an unquoted field")),
            ',' => {
                cells.push(std::mem::take(&mut cell));
                any = true;
            }
            '\r' => {}
            '\n' => {
                if any || !cell.trim().is_empty() {
                    cells.push(std::mem::take(&mut cell));
                    out.push((start, std::mem::take(&mut cells)));
                }
                cell.clear();
                any = false;
                line += 1;
                start = line;
            }
            _ => cell.push(c),
        }
    }
    if quoted {
        return Err(bad(start, "a quoted field is not closed"));
    }
    if any || !cell.trim().is_empty() {
        cells.push(cell);
        out.push((start, cells));
    }
    let Some(w) = out.first().map(|r| r.1.len()) else {
        return Err(Error::file(
            path,
            "has no records",
            "add a header line and at least one record",
        ));
    };
    if let Some((n, r)) = out.iter().find(|r| r.1.len() != w) {
        return Err(Error::file(
            path,
            format!("line {n}: {} fields, but the header has {w}", r.len()),
            "every record needs as many comma-separated fields as the header",
        ));
    }
    Ok(out)
}

/// The 0-based index of each comma-separated column `spec` names: a header name, else an
/// index below `width`. `flag` and `what` ("target column") name the option in the error.
pub(crate) fn resolve_cols(
    path: &Path,
    header: Option<&[String]>,
    width: usize,
    spec: &str,
    (flag, what): (&str, &str),
) -> Result<Vec<usize>> {
    let mut cols = Vec::new();
    for name in spec.split(',').map(str::trim) {
        let by_name = header.and_then(|h| h.iter().position(|c| c.trim() == name));
        match by_name.or_else(|| name.parse::<usize>().ok().filter(|&i| i < width)) {
            Some(i) => cols.push(i),
            None => {
                let known = match header {
                    Some(h) => format!("columns: {}", h.join(", ")),
                    None => format!("no header; indices 0..{width}"),
                };
                return Err(Error::file(
                    path,
                    format!("unknown {what} {name:?}"),
                    format!("{flag} takes header names or 0-based indices ({known})"),
                ));
            }
        }
    }
    Ok(cols)
}

/// A class id in a numeric cell: a non-negative integer, below `classes` when known.
pub(crate) fn check_class(path: &Path, line: usize, v: f32, classes: Option<usize>, hint: &str) -> Result<u32> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_records() {
        let d = std::env::temp_dir().join(format!("wgrnn-records-{}", std::process::id()));
        std::fs::write(&d, "label,text\npos,\"a, \"\"b\"\"\nc\"\n\nneg,plain\r\n").unwrap();
        let r = records(&d).unwrap();
        assert_eq!(r[1], (2, vec!["pos".to_string(), "a, \"b\"\nc".to_string()]));
        assert_eq!(r[2], (5, vec!["neg".to_string(), "plain".to_string()]));
        for bad in ["a,b\n\"x\"y,1\n", "a,b\nx\"y,1\n", "a,b\n\"open,1\n", "a,b\n1,2,3\n"] {
            std::fs::write(&d, bad).unwrap();
            assert!(records(&d).is_err(), "{bad:?}");
        }
        let _ = std::fs::remove_file(&d);
    }
}
