//! Structured fuzzing of the text readers of issue #12 (see tests/fuzz_loaders.rs for the
//! approach): labelled lines (TSV and quoted CSV, characters or words) and token streams
//! (words, ids). Whatever the bytes, the reader returns `Ok` or `Err` and never panics, and
//! what it accepts gives batches that validate against the model it asks for.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

use wgrnn::data::{Dataset, LabelFormat, LabelSpec, LabelledData, Labels, TextData, Tokenizer};
use wgrnn::ModelConfig;

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the scratch directory");
    d
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    })
}

fn fail(e: wgrnn::Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Pieces of lines: labels, words, punctuation, tabs, quotes, commas, odd characters.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["pos", "neg", "x", "good", "bad", "the", "film", "42"]).prop_map(String::from),
        3 => prop::sample::select(vec![" ", "\t", ",", "\"", "\"\"", "\n", "\r\n", ".", "'", "<unk>", ""]).prop_map(String::from),
        1 => "[\\PC]{0,3}",
        1 => prop::collection::vec(any::<u8>(), 0..3).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..40).prop_map(|p| p.concat())
}

/// Every batch a loaded source gives must validate against the model it asks for.
fn exercise(data: &Dataset) -> Result<(), TestCaseError> {
    let io = data.model_io(Some(2));
    let cfg = ModelConfig {
        input: io.input,
        output: io.output,
        head: io.head,
        seq: io.seq,
        ..ModelConfig::char_lm(2, 2, 1)
    };
    if cfg.validate().is_err() {
        return Ok(());
    }
    let t = data.seq_len(3);
    if data.check_len(2, t, false, "case").is_err() {
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut batches = vec![data.random_batch(&mut rng, 3, t)];
    batches.extend(data.val_batches(2, t, 1, 3));
    batches.extend(data.all_batches(2, t, 1));
    for b in &batches {
        b.validate(&cfg).map_err(fail)?;
    }
    Ok(())
}

#[test]
fn labelled_reader() {
    let d = scratch("labelled");
    let (tsv, csv) = (d.join("case.tsv"), d.join("case.csv"));
    let tokens = prop::sample::select(vec![
        Tokenizer::Char,
        Tokenizer::Word {
            min_count: 1,
            max_vocab: None,
        },
        Tokenizer::Word {
            min_count: 2,
            max_vocab: Some(3),
        },
    ]);
    let cols = prop::sample::select(vec!["0", "1", "2", "pos", "x", "good"]);
    let labels = prop::sample::select(vec![Labels::Define, Labels::Ignored]);
    runner(500)
        .run(
            &(
                text(),
                tokens,
                1usize..6,
                (cols.clone(), cols),
                labels,
                prop::sample::select(vec![0.0, 0.3]),
            ),
            |(body, tokens, max_len, (tc, lc), labels, val)| {
                std::fs::write(&tsv, &body).expect("write the case");
                std::fs::write(&csv, &body).expect("write the case");
                let formats = [
                    (&tsv, LabelFormat::Tsv),
                    (
                        &csv,
                        LabelFormat::Csv {
                            text_col: tc.to_string(),
                            label_col: lc.to_string(),
                        },
                    ),
                ];
                for (path, format) in formats {
                    let spec = LabelSpec {
                        format,
                        tokens,
                        max_len,
                        classes: vec!["neg".into(), "pos".into()],
                    };
                    if let Ok(data) = LabelledData::load(path, &spec, val, None, labels) {
                        prop_assert!(data.steps <= max_len);
                        prop_assert!(data.train.iter().all(|e| !e.tokens.is_empty()));
                        exercise(&Dataset::Labelled(data))?;
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn token_stream_reader() {
    let tokens = prop::sample::select(vec![
        Tokenizer::Ids,
        Tokenizer::Word {
            min_count: 1,
            max_vocab: None,
        },
        Tokenizer::Word {
            min_count: 3,
            max_vocab: Some(2),
        },
        Tokenizer::Char,
    ]);
    let ids = prop::collection::vec(prop_oneof![(0u32..20).prop_map(|i| i.to_string()), piece()], 0..40)
        .prop_map(|p| p.join(","));
    runner(500)
        .run(
            &(
                prop_oneof![text(), ids],
                tokens,
                prop::sample::select(vec![0.0, 0.1, 0.4]),
            ),
            |(body, tokens, val)| {
                if let Ok(data) = TextData::from_tokens(&body, "case", tokens, val, None) {
                    prop_assert_eq!(
                        data.vocab.encode(&body, "case").map_err(fail)?.len(),
                        data.train.len() + data.val.len()
                    );
                    exercise(&Dataset::Text(data))?;
                }
                Ok(())
            },
        )
        .unwrap();
}
