//! Structured fuzzing of the three readers of untrusted files: the checkpoint loader, the CSV
//! reader and the `grad` batch-file reader. cargo-fuzz needs a nightly toolchain, so these are
//! proptest properties with bounded case counts (a few seconds each): whatever the bytes,
//! the reader returns `Ok` or `Err` and never panics, and what it accepts is usable (batches
//! that validate against the model and run through the CPU engine).
//!
//! Inputs that once crashed a reader live in tests/fuzz_regressions/ (see
//! tests/fuzz_regressions.rs).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};

use wgrnn::batch_file::read_batch_file;
use wgrnn::checkpoint::{Checkpoint, TrainMeta};
use wgrnn::data::csv::{CsvLayout, CsvOptions};
use wgrnn::data::{CsvData, DataSpec, Vocab};
use wgrnn::{CpuEngine, Engine, Head, Input, ModelConfig, OptimConfig, OptimKind, OptimState, ParamLayout, SeqShape};

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the scratch directory");
    d
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        // a failing input is reported as is: shrinking re-runs file loads for minutes
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    })
}

/// A small but complete checkpoint: two layers, Adam state, vocabulary, training metadata
/// and a carried state, so that every branch of the loader has something to read.
fn valid_checkpoint(dir: &Path) -> Vec<u8> {
    let cfg = ModelConfig::char_lm(5, 3, 2);
    let kind = OptimKind::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let optim = OptimConfig::new(kind, 0.01);
    let layout = ParamLayout::new(&cfg);
    let ck = Checkpoint {
        config: cfg,
        optim,
        params: layout.init(&cfg, 1),
        optim_state: OptimState::new(&kind, layout.total),
        vocab: Some(Vocab::from_text("abcde")),
        step: 7,
        train: Some(TrainMeta {
            seed: 1,
            batch: 2,
            seq_len: 4,
            val_fraction: 0.0,
            stateful: true,
            data: DataSpec::Bundled,
            rng_word_pos: "12".into(),
            stream_pos: 1,
            data_fingerprint: None,
        }),
        carried: Some(vec![0.25; 2 * 2 * 3]),
    };
    let p = dir.join("valid.safetensors");
    ck.save(&p).expect("save the fixture");
    let loaded = Checkpoint::load(&p).expect("the fixture loads");
    assert_eq!(loaded.params, ck.params);
    std::fs::read(&p).expect("read the fixture")
}

/// Loads `bytes` as a checkpoint; Ok or Err, never a panic (a panic fails the test run).
fn load_checkpoint(path: &Path, bytes: &[u8]) -> wgrnn::Result<Checkpoint> {
    std::fs::write(path, bytes).expect("write the case");
    Checkpoint::load(path)
}

fn header_len(bytes: &[u8]) -> usize {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize
}

#[test]
fn checkpoint_truncated_at_every_length() {
    let d = scratch("ck-trunc");
    let bytes = valid_checkpoint(&d);
    let p = d.join("case.safetensors");
    for n in 0..bytes.len() {
        assert!(
            load_checkpoint(&p, &bytes[..n]).is_err(),
            "truncated to {n} bytes loads"
        );
    }
}

#[test]
fn checkpoint_flipped_bytes() {
    let d = scratch("ck-flip");
    let bytes = valid_checkpoint(&d);
    let data_start = 8 + header_len(&bytes);
    let p = d.join("case.safetensors");
    let flips = prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4);
    runner(400)
        .run(&flips, |flips| {
            let mut b = bytes.clone();
            for (i, x) in &flips {
                let at = i.index(b.len());
                b[at] ^= x;
            }
            let r = load_checkpoint(&p, &b);
            // the checksum covers every tensor byte: damage there is always caught
            if flips.iter().all(|(i, _)| i.index(b.len()) >= data_start) {
                prop_assert!(r.is_err(), "a flipped data byte went unnoticed");
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn checkpoint_header_length_prefix() {
    let d = scratch("ck-len");
    let bytes = valid_checkpoint(&d);
    let n = header_len(&bytes) as i64;
    let p = d.join("case.safetensors");
    let prefix = prop_oneof![any::<u64>(), (-16i64..16).prop_map(move |k| (n + k).max(0) as u64)];
    runner(300)
        .run(&prefix, |len| {
            let mut b = bytes.clone();
            b[..8].copy_from_slice(&len.to_le_bytes());
            let r = load_checkpoint(&p, &b);
            prop_assert!(len == n as u64 || r.is_err(), "header length {len} (real {n}) loads");
            Ok(())
        })
        .unwrap();
}

/// Values a mutated header field may take: small, boundary and absurd numbers, wrong types.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        prop::sample::select(vec![
            0u64,
            1,
            2,
            3,
            4,
            5,
            7,
            64,
            4096,
            1 << 24,
            1 << 31,
            1 << 40,
            u64::MAX
        ])
        .prop_map(|v| json!(v)),
        Just(json!(-1)),
        Just(json!(1.5e300)),
        Just(json!(null)),
        Just(json!("F64")),
        Just(json!([])),
        Just(json!({})),
        prop::collection::vec(prop::sample::select(vec![0u64, 1, 2, 3, 5, 1 << 33, u64::MAX]), 0..4)
            .prop_map(|v| json!(v)),
    ]
}

/// Rewrites every `"key": number` in a metadata JSON text at the `k`-th number with `with`.
fn replace_number(text: &str, k: usize, with: &str) -> String {
    let mut out = String::new();
    let mut seen = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c.is_ascii_digit() {
            let mut num = c.to_string();
            while let Some(&(_, d)) = chars.peek() {
                if d.is_ascii_digit() || d == '.' || d == 'e' || d == '-' {
                    num.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out += if seen == k { with } else { &num };
            seen += 1;
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Clone, Debug)]
enum HeaderEdit {
    /// set field `field` ("dtype" | "shape" | "data_offsets") of the `tensor`-th entry
    Tensor {
        tensor: prop::sample::Index,
        field: &'static str,
        value: serde_json::Value,
    },
    RemoveTensor(prop::sample::Index),
    /// replace the `k`-th number inside metadata value `key`
    MetaNumber {
        key: &'static str,
        k: usize,
        with: &'static str,
    },
    MetaSet {
        key: &'static str,
        value: &'static str,
    },
    MetaRemove(&'static str),
}

fn header_edit() -> impl Strategy<Value = HeaderEdit> {
    let keys = vec!["format", "config", "optim", "step", "vocab", "train", "checksum"];
    prop_oneof![
        (
            any::<prop::sample::Index>(),
            prop::sample::select(vec!["dtype", "shape", "data_offsets"]),
            json_value()
        )
            .prop_map(|(tensor, field, value)| HeaderEdit::Tensor { tensor, field, value }),
        any::<prop::sample::Index>().prop_map(HeaderEdit::RemoveTensor),
        (
            prop::sample::select(vec!["config", "optim", "train", "step"]),
            0usize..12,
            prop::sample::select(vec!["0", "1", "3", "4096", "16777216", "18446744073709551615", "1e300", "-1"])
        )
            .prop_map(|(key, k, with)| HeaderEdit::MetaNumber { key, k, with }),
        (
            prop::sample::select(keys.clone()),
            prop::sample::select(vec![
                "",
                "{}",
                "null",
                "[]",
                "\u{1F600}",
                "aa",
                "{\"kind\":\"csv\",\"path\":\"x.csv\",\"layout\":{\"kind\":\"rows\",\"seq_len\":9223372036854775808,\"input_size\":2,\"head\":\"linear\",\"output\":1}}"
            ])
        )
            .prop_map(|(key, value)| HeaderEdit::MetaSet { key, value }),
        prop::sample::select(keys).prop_map(HeaderEdit::MetaRemove),
    ]
}

fn apply(header: &mut serde_json::Value, e: &HeaderEdit) {
    let Some(obj) = header.as_object_mut() else { return };
    let tensors: Vec<String> = obj.keys().filter(|k| *k != "__metadata__").cloned().collect();
    match e {
        HeaderEdit::Tensor { tensor, field, value } => {
            if let Some(t) = obj.get_mut(&tensors[tensor.index(tensors.len())]) {
                t[*field] = value.clone();
            }
        }
        HeaderEdit::RemoveTensor(i) => {
            obj.remove(&tensors[i.index(tensors.len())]);
        }
        HeaderEdit::MetaNumber { key, k, with } => {
            if let Some(v) = obj["__metadata__"].get_mut(*key) {
                if let Some(s) = v.as_str() {
                    *v = serde_json::Value::String(replace_number(s, *k, with));
                }
            }
        }
        HeaderEdit::MetaSet { key, value } => obj["__metadata__"][*key] = serde_json::json!(value),
        HeaderEdit::MetaRemove(key) => {
            if let Some(m) = obj["__metadata__"].as_object_mut() {
                m.remove(*key);
            }
        }
    }
}

#[test]
fn checkpoint_mutated_header() {
    let d = scratch("ck-header");
    let bytes = valid_checkpoint(&d);
    let n = header_len(&bytes);
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("the header is JSON");
    let data = bytes[8 + n..].to_vec();
    let p = d.join("case.safetensors");
    let csv = d.join("x.csv");
    std::fs::write(&csv, "1\n2\n3\n").unwrap();
    runner(500)
        .run(&prop::collection::vec(header_edit(), 1..4), |edits| {
            let mut h = header.clone();
            for e in &edits {
                apply(&mut h, e);
            }
            let text = serde_json::to_string(&h).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut b = (text.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(text.as_bytes());
            b.extend_from_slice(&data);
            if let Ok(ck) = load_checkpoint(&p, &b) {
                // what loads must be usable: an engine takes its weights and state
                let mut e = CpuEngine::new(ck.config, ck.optim, ck.params).map_err(fail)?;
                e.set_optim_state(&ck.optim_state).map_err(fail)?;
                if let Some(DataSpec::Csv { layout, .. }) = ck.train.map(|t| t.data) {
                    if let Ok(data) = CsvData::load_layout(&csv, layout, 0.0) {
                        let _ = data.all_batches(2, 4);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

fn fail(e: wgrnn::Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// CSV cells: numbers, boundary values, non-finite and non-numeric text.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u32..4).prop_map(|v| v.to_string()),
        2 => (-1e3f32..1e3).prop_map(|v| v.to_string()),
        1 => prop::sample::select(vec![
            "", " 1 ", "-0", "1e39", "-1e39", "1e-45", "NaN", "inf", "-inf", "x", "a b", "4294967296",
            "18446744073709551616", "0.5", "2.0", "\u{feff}1", "\"1\"",
        ])
        .prop_map(String::from),
    ]
}

fn csv_text() -> impl Strategy<Value = String> {
    let width = 1usize..6;
    (
        width,
        prop::collection::vec((any::<bool>(), prop::collection::vec(cell(), 0..7)), 0..12),
        prop::sample::select(vec!["", "a,b,c,d,e\n", "name\n", "x,y\n"]),
        prop::sample::select(vec!["\n", "\r\n"]),
    )
        .prop_map(|(w, rows, header, nl)| {
            let mut s = header.to_string();
            for (regular, mut cells) in rows {
                // mostly rectangular files, so the checks past the first ragged row are reached
                if regular {
                    cells.resize(w, "1".into());
                }
                s += &cells.join(",");
                s += nl;
            }
            s
        })
}

fn csv_options() -> impl Strategy<Value = (CsvOptions, f64)> {
    let small = prop::option::of(prop_oneof![0usize..5, Just(usize::MAX), Just(1usize << 62)]);
    let cols = prop::option::of(prop::sample::select(vec![
        "0",
        "1",
        "4",
        "a",
        "b,c",
        "e",
        "0,0",
        "",
        "99999999999999999999",
    ]));
    let seq = prop::option::of(prop::sample::select(vec![
        SeqShape::ManyToMany,
        SeqShape::ManyToOne,
        SeqShape::OneToMany,
    ]));
    (
        (small.clone(), small.clone(), small.clone()),
        prop::sample::select(vec![Head::Softmax, Head::Linear, Head::Sigmoid]),
        (cols.clone(), cols, prop::option::of(0usize..3)),
        (seq, any::<bool>()),
        prop::sample::select(vec![0.0, 0.05, 0.3, 0.49]),
    )
        .prop_map(
            |((seq_len, input_size, output), head, (target_cols, input_cols, target_shift), (seq, token_ids), val)| {
                let opts = CsvOptions {
                    seq_len,
                    input_size,
                    head,
                    output,
                    target_cols: target_cols.map(String::from),
                    input_cols: input_cols.map(String::from),
                    target_shift,
                    seq,
                    token_ids,
                };
                (opts, val)
            },
        )
}

/// Everything a training run and `eval` do with loaded CSV data: the batches must validate
/// against the model the data asks for.
fn exercise_csv(data: &CsvData, path: &Path) -> Result<(), TestCaseError> {
    let io = data.model_io();
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
    let t = data.fixed_seq_len().unwrap_or(3);
    if data.check_len(t, path).is_err() {
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut batches = vec![data.random_batch(&mut rng, 3, t)];
    batches.extend(data.val_batches(2, t));
    batches.extend(data.all_batches(2, t));
    for b in &batches {
        b.validate(&cfg).map_err(fail)?;
    }
    Ok(())
}

#[test]
fn csv_reader() {
    let d = scratch("csv");
    let p = d.join("case.csv");
    runner(600)
        .run(&(csv_text(), csv_options()), |(text, (opts, val))| {
            std::fs::write(&p, &text).expect("write the case");
            if let Ok(data) = CsvData::load(&p, &opts, val) {
                exercise_csv(&data, &p)?;
            }
            Ok(())
        })
        .unwrap();
}

/// Layouts as a checkpoint's metadata may hold them (any numbers at all).
#[test]
fn csv_reader_with_stored_layout() {
    let d = scratch("csv-layout");
    let p = d.join("case.csv");
    let n = prop_oneof![0usize..6, Just(usize::MAX), Just(1usize << 63), Just(1usize << 32)];
    let head = prop::sample::select(vec![Head::Softmax, Head::Linear, Head::Sigmoid]);
    let cols = prop::option::of(prop::collection::vec(n.clone(), 0..3));
    let layout = prop_oneof![
        (
            n.clone(),
            n.clone(),
            head.clone(),
            n.clone(),
            prop::option::of(n.clone())
        )
            .prop_map(|(seq_len, input_size, head, output, token_vocab)| CsvLayout::Rows {
                seq_len,
                input_size,
                head,
                output,
                token_vocab,
            }),
        (
            n.clone(),
            prop::collection::vec(n.clone(), 0..3),
            head.clone(),
            cols,
            n.clone()
        )
            .prop_map(
                |(columns, target_cols, head, input_cols, target_shift)| CsvLayout::Series {
                    columns,
                    target_cols,
                    head,
                    input_cols,
                    target_shift,
                }
            ),
        (n.clone(), n.clone(), head, n).prop_map(|(input_size, seq_len, head, output)| CsvLayout::OneToMany {
            input_size,
            seq_len,
            head,
            output,
        }),
    ];
    runner(400)
        .run(&(csv_text(), layout), |(text, layout)| {
            std::fs::write(&p, &text).expect("write the case");
            if let Ok(data) = CsvData::load_layout(&p, layout, 0.0) {
                exercise_csv(&data, &p)?;
            }
            Ok(())
        })
        .unwrap();
}

/// A batch-file tensor: name, dtype, shape and a fill pattern.
fn batch_tensor() -> impl Strategy<Value = (&'static str, Dtype, Vec<usize>, u8)> {
    (
        prop::sample::select(vec!["inputs", "inputs", "targets", "targets", "h0", "x"]),
        prop::sample::select(vec![Dtype::I64, Dtype::F32, Dtype::I32, Dtype::F64]),
        prop::collection::vec(prop::sample::select(vec![0usize, 1, 2, 3, 4, 5]), 0..4),
        any::<u8>(),
    )
}

/// Element bytes for a fill pattern: valid ids / finite values mostly, sometimes not.
fn fill(dtype: Dtype, n: usize, pattern: u8) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let k = (i as i64 + pattern as i64) % 7 - pattern.is_multiple_of(5) as i64;
            let f = if pattern.is_multiple_of(11) {
                f32::NAN
            } else {
                k as f32 * 0.25
            };
            match dtype {
                Dtype::I64 => k.to_le_bytes().to_vec(),
                Dtype::I32 => (k as i32).to_le_bytes().to_vec(),
                Dtype::F64 => (f as f64).to_le_bytes().to_vec(),
                _ => f.to_le_bytes().to_vec(),
            }
        })
        .collect()
}

/// Models the batch reader is run against: tokens (many-to-many), dense many-to-one
/// regression, dense one-to-many classification.
fn batch_models() -> Vec<ModelConfig> {
    let tokens = ModelConfig::char_lm(5, 3, 2);
    let dense = ModelConfig {
        input: Input::Dense { size: 2 },
        output: 3,
        head: Head::Linear,
        seq: SeqShape::ManyToOne,
        ..tokens
    };
    let one_to_many = ModelConfig {
        input: Input::Dense { size: 3 },
        output: 4,
        head: Head::Softmax,
        seq: SeqShape::OneToMany,
        ..tokens
    };
    vec![tokens, dense, one_to_many]
}

fn check_batch(path: &Path, cfg: &ModelConfig) -> Result<(), TestCaseError> {
    if let Ok(batch) = read_batch_file(path, cfg) {
        batch.validate(cfg).map_err(fail)?;
        let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1);
        let params = ParamLayout::new(cfg).init(cfg, 1);
        let mut e = CpuEngine::new(*cfg, opt, params).map_err(fail)?;
        e.loss_and_grads(&batch, wgrnn::Want::default()).map_err(fail)?;
    }
    Ok(())
}

#[test]
fn batch_file_reader() {
    let d = scratch("batch");
    let p = d.join("case.safetensors");
    let models = batch_models();
    let file = prop::collection::vec(batch_tensor(), 0..4);
    runner(600)
        .run(&(file, 0usize..3), |(tensors, m)| {
            let data: Vec<_> = tensors
                .iter()
                .map(|(n, dt, sh, pat)| (*n, *dt, sh.clone(), fill(*dt, sh.iter().product(), *pat)))
                .collect();
            let mut views = Vec::new();
            for (n, dt, sh, bytes) in &data {
                // a name twice would not serialise; the reader never sees that case
                if views.iter().any(|(v, _): &(String, TensorView)| v == n) {
                    continue;
                }
                views.push((
                    n.to_string(),
                    TensorView::new(*dt, sh.clone(), bytes).expect("consistent view"),
                ));
            }
            let bytes = safetensors::serialize(views, None).map_err(|e| TestCaseError::fail(e.to_string()))?;
            std::fs::write(&p, bytes).expect("write the case");
            check_batch(&p, &models[m])
        })
        .unwrap();
}

#[test]
fn batch_file_damaged_bytes() {
    let d = scratch("batch-bytes");
    let p = d.join("case.safetensors");
    let cfg = ModelConfig::char_lm(5, 3, 2);
    let ids: Vec<u8> = (0..6i64).flat_map(|i| (i % 5).to_le_bytes()).collect();
    let h0 = fill(Dtype::F32, 2 * 2 * 3, 1);
    let views = vec![
        (
            "inputs".to_string(),
            TensorView::new(Dtype::I64, vec![2, 3], &ids).unwrap(),
        ),
        (
            "targets".to_string(),
            TensorView::new(Dtype::I64, vec![2, 3], &ids).unwrap(),
        ),
        (
            "h0".to_string(),
            TensorView::new(Dtype::F32, vec![2, 2, 3], &h0).unwrap(),
        ),
    ];
    let valid = safetensors::serialize(views, None).unwrap();
    std::fs::write(&p, &valid).unwrap();
    check_batch(&p, &cfg).unwrap();
    assert!(read_batch_file(&p, &cfg).is_ok());
    for n in 0..valid.len() {
        std::fs::write(&p, &valid[..n]).unwrap();
        assert!(read_batch_file(&p, &cfg).is_err(), "truncated to {n} bytes reads");
    }
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4);
    runner(400)
        .run(&edits, |edits| {
            let mut b = valid.clone();
            for (i, x) in &edits {
                let at = i.index(b.len());
                b[at] ^= x;
            }
            std::fs::write(&p, &b).expect("write the case");
            check_batch(&p, &cfg)
        })
        .unwrap();
}

/// Metadata edits signed with a valid checksum (the library's writer computes it), so only
/// the loader's own validation stands between the edit and the commands: whatever loads must
/// evaluate on its stored data without a panic (B or T of 0 once divided by zero in `eval`).
#[test]
fn checkpoint_resigned_metadata() {
    let d = scratch("ck-resigned");
    let bytes = valid_checkpoint(&d);
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .iter()
        .map(|(n, t)| (n.to_string(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: std::collections::BTreeMap<String, String> = meta.metadata().clone().unwrap().into_iter().collect();
    let p = d.join("case.safetensors");
    let meta_edit = header_edit().prop_filter("metadata edits", |e| {
        !matches!(e, HeaderEdit::Tensor { .. } | HeaderEdit::RemoveTensor(_))
    });
    runner(300)
        .run(&prop::collection::vec(meta_edit, 1..4), |edits| {
            let mut h = serde_json::json!({ "__metadata__": meta });
            for e in &edits {
                apply(&mut h, e);
            }
            let mut m: std::collections::BTreeMap<String, String> = h["__metadata__"]
                .as_object()
                .unwrap()
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            m.remove("checksum");
            wgrnn::tensor_file::write_tensors(&p, &tensors, m).map_err(fail)?;
            let Ok(ck) = Checkpoint::load(&p) else { return Ok(()) };
            let mut e = CpuEngine::new(ck.config, ck.optim, ck.params).map_err(fail)?;
            e.set_optim_state(&ck.optim_state).map_err(fail)?;
            if let Some(tm) = &ck.train {
                if let Ok(data) = wgrnn::data::Dataset::load(&tm.data, tm.val_fraction, ck.vocab.clone()) {
                    if wgrnn::checkpoint::check_positions(tm, &data, "data").is_ok() {
                        let val = data.val_batches(tm.batch, tm.seq_len, tm.seed, 2);
                        let _ = wgrnn::train::evaluate(&mut e, &val);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}
