//! Inputs that once crashed a reader (found by tests/fuzz_loaders.rs), kept as files in
//! tests/fuzz_regressions/. Every file there is fed to the reader of its kind, and the ones
//! with a known history get the exact check of that history.

mod cli_util;
use cli_util::*;
use std::path::{Path, PathBuf};

use wgrnn::batch_file::read_batch_file;
use wgrnn::checkpoint::Checkpoint;
use wgrnn::data::csv::{CsvLayout, CsvOptions};
use wgrnn::data::CsvData;
use wgrnn::{Head, ModelConfig};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions")
}

/// No reader panics on any file of the corpus, whatever the file's kind.
#[test]
fn every_file_of_the_corpus() {
    let cfg = ModelConfig::char_lm(5, 3, 1);
    for entry in std::fs::read_dir(corpus()).expect("the corpus directory") {
        let p = entry.expect("a directory entry").path();
        let _ = Checkpoint::load(&p);
        let _ = read_batch_file(&p, &cfg);
        if let Ok(d) = CsvData::load(&p, &CsvOptions::default(), 0.0) {
            let _ = d.all_batches(2, 2);
        }
    }
}

/// A checkpoint whose stored CSV layout says T = 2^63, I = 2: T·I + 1 wrapped around to 1,
/// so a one-column file passed the width check and building the first batch indexed out of
/// bounds (`eval --data`).
#[test]
fn stored_csv_layout_with_wrapping_product() {
    let dir = corpus();
    let o = run(&[
        "eval",
        "--checkpoint",
        s(&dir.join("csv-layout-wraps.safetensors")),
        "--data",
        s(&dir.join("one-column.csv")),
        "--device",
        "cpu",
    ]);
    fails(&o, &["one-column.csv", "more than fits in memory", "hint"]);
    let layout = CsvLayout::Rows {
        seq_len: 1 << 63,
        input_size: 2,
        head: Head::Linear,
        output: 1,
        token_vocab: None,
    };
    assert!(CsvData::load_layout(&dir.join("one-column.csv"), layout, 0.0).is_err());
}

/// Flags T = 2^62 and I = 4 on the same one-column file: T·I wrapped to 0 and the file was
/// taken for sequences of 2^62 steps (a capacity-overflow panic on the first batch).
#[test]
fn csv_options_with_wrapping_product() {
    let opts = CsvOptions {
        seq_len: Some(1 << 62),
        input_size: Some(4),
        head: Head::Linear,
        ..CsvOptions::default()
    };
    let e = CsvData::load(&corpus().join("one-column.csv"), &opts, 0.0).expect_err("refused");
    assert!(e.to_string().contains("too few columns"), "{e}");
}
