//! The data formats of issue #12 at the library level: word and id tokens, labelled lines
//! (TSV and CSV), CSV column choice and target shift, one-to-many rows, token-id rows, and
//! their storage in checkpoints. Every batch must validate against the model the data asks
//! for; every malformed file is an error naming the line.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

use wgrnn::batch::{Inputs, Targets};
use wgrnn::checkpoint::{Checkpoint, TrainMeta};
use wgrnn::data::csv::CsvOptions;
use wgrnn::data::{
    CsvData, DataSpec, Dataset, LabelFormat, LabelSpec, LabelledData, Labels, TextData, TokenKind, Tokenizer, Vocab,
};
use wgrnn::{Head, Input, ModelConfig, OptimConfig, OptimKind, OptimState, ParamLayout, SeqShape};

fn scratch(name: &str, file: &str, body: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("data-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(file);
    std::fs::write(&p, body).unwrap();
    p
}

/// The model a source asks for, with small widths.
fn model_for(data: &Dataset) -> ModelConfig {
    let io = data.model_io(None);
    ModelConfig {
        input: io.input,
        output: io.output,
        head: io.head,
        seq: io.seq,
        ..ModelConfig::char_lm(2, 4, 1)
    }
}

fn check_batches(data: &Dataset, b: usize, t: usize) {
    let cfg = model_for(data);
    cfg.validate().unwrap();
    let t = data.seq_len(t);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut all = vec![data.random_batch(&mut rng, b, t)];
    all.extend(data.val_batches(b, t, 1, 4));
    all.extend(data.all_batches(b, t, 1));
    for batch in &all {
        batch.validate(&cfg).unwrap();
    }
}

fn err(r: wgrnn::Result<impl std::fmt::Debug>) -> String {
    let e = r.expect_err("refused").to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

fn labels(format: LabelFormat, tokens: Tokenizer, max_len: usize) -> LabelSpec {
    LabelSpec {
        format,
        tokens,
        max_len,
        classes: Vec::new(),
    }
}

const WORDS: Tokenizer = Tokenizer::Word {
    min_count: 1,
    max_vocab: None,
};

#[test]
fn word_text_counts_the_training_split_only() {
    let text = "a b c. a b d!\n".repeat(9) + "zebra zebra zebra zebra\n";
    let tok = Tokenizer::Word {
        min_count: 2,
        max_vocab: None,
    };
    let d = TextData::from_tokens(&text, "t", tok, 0.1, None).unwrap();
    let words = d.vocab.word_list().unwrap();
    assert_eq!(words[0], "<unk>");
    // "zebra" is in the validation split only, "c" and "d" in the training split
    assert!(
        !words.contains(&"zebra".to_string()) && words.contains(&"d".to_string()),
        "{words:?}"
    );
    assert!(d.val.contains(&0), "unseen words are <unk> in the validation split");
    let capped = Tokenizer::Word {
        min_count: 1,
        max_vocab: Some(3),
    };
    let d = TextData::from_tokens(&text, "t", capped, 0.0, None).unwrap();
    assert_eq!(d.vocab.word_list().unwrap(), ["<unk>", "a", "b"]);
    check_batches(&Dataset::Text(d), 3, 4);
    let one = Tokenizer::Word {
        min_count: 100,
        max_vocab: None,
    };
    assert!(err(TextData::from_tokens(&text, "t", one, 0.0, None)).contains("distinct word"));
}

#[test]
fn id_streams() {
    let d = TextData::from_tokens("0,1,2\n3 4 5\n", "ids", Tokenizer::Ids, 0.0, None).unwrap();
    assert_eq!((d.vocab.len(), d.train.clone()), (6, vec![0, 1, 2, 3, 4, 5]));
    check_batches(&Dataset::Text(d), 2, 2);
    let e = err(TextData::from_tokens("1,2\n3,x\n", "ids", Tokenizer::Ids, 0.0, None));
    assert!(e.contains("line 2") && e.contains("\"x\""), "{e}");
    let e = err(TextData::from_tokens(
        "1,2,9",
        "ids",
        Tokenizer::Ids,
        0.0,
        Some(Vocab::ids(5)),
    ));
    assert!(e.contains("outside the model's vocabulary 0..5"), "{e}");
    assert!(err(TextData::from_tokens("-1 2", "ids", Tokenizer::Ids, 0.0, None)).contains("not a token id"));
}

#[test]
fn labelled_lines() {
    let body = "pos\tgood fun film\nneg\tbad\n\npos\tgreat, great fun\nneg\tdull and a bit too long\n";
    let p = scratch("tsv", "l.tsv", body);
    let spec = labels(LabelFormat::Tsv, WORDS, 4);
    let d = LabelledData::load(&p, &spec, 0.0, None, Labels::Define).unwrap();
    assert_eq!(d.classes(), ["neg", "pos"]);
    assert_eq!((d.steps, d.truncated), (4, 1), "the last line is cut to 4 words");
    assert_eq!(d.train.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 2, 4, 5]);
    let data = Dataset::Labelled(d.clone());
    assert!(data.warnings()[0].contains("1 of 4 examples"));
    let b = &d.batches(&d.train, 3)[0];
    assert_eq!(b.lengths.as_deref(), Some(&[3, 1, 4][..]));
    assert_eq!((b.batch, b.steps), (3, 4));
    let Inputs::Tokens(x) = &b.inputs else {
        panic!("token inputs")
    };
    assert_eq!(
        x[3 + 1],
        0,
        "padding after the second example's one word: (T, B) index 1·B + 1"
    );
    assert_eq!(b.targets, Targets::Classes(vec![1, 0, 1]));
    check_batches(&data, 3, 64);

    // the classes are kept: a new file must use them, or may leave labels out for predict
    let known = LabelSpec { ..d.spec.clone() };
    let p2 = scratch("tsv-known", "l.tsv", "neg\tfun\nmeh\tbad\n");
    let e = err(LabelledData::load(
        &p2,
        &known,
        0.0,
        Some(d.vocab.clone()),
        Labels::Known,
    ));
    assert!(
        e.contains("line 2") && e.contains("\"meh\"") && e.contains("neg, pos"),
        "{e}"
    );
    let p3 = scratch("tsv-inputs", "l.tsv", "unknown words here\npos\tgood\n");
    let d3 = LabelledData::load(&p3, &known, 0.0, Some(d.vocab.clone()), Labels::Ignored).unwrap();
    assert_eq!(d3.train[0].tokens, [0, 0, 0], "unknown words are <unk>");
}

#[test]
fn malformed_labelled_lines() {
    let spec = labels(LabelFormat::Tsv, Tokenizer::Char, 8);
    for (body, needles) in [
        ("pos\tok\nno tab here\n", &["line 2", "no tab"][..]),
        ("pos\tok\n\tno label\n", &["line 2", "empty label"]),
        ("pos\tok\nneg\t   \n", &["line 2", "empty text"]),
        ("pos\tok\npos\tfine\n", &["1 class", "at least 2"]),
        ("\n\n", &["no examples"]),
    ] {
        let p = scratch("tsv-bad", "l.tsv", body);
        let e = err(LabelledData::load(&p, &spec, 0.0, None, Labels::Define));
        for n in needles {
            assert!(e.contains(n), "{body:?}: {e}");
        }
    }
}

#[test]
fn labelled_csv() {
    let body = "id,text,label\n1,\"fine, really\",pos\n2,\"said \"\"no\"\"\",neg\n3,plain,pos\n";
    let p = scratch("csv", "l.csv", body);
    let by_name = LabelFormat::Csv {
        text_col: "text".into(),
        label_col: "label".into(),
    };
    let d = LabelledData::load(&p, &labels(by_name, Tokenizer::Char, 64), 0.0, None, Labels::Define).unwrap();
    assert_eq!(d.vocab.decode(&d.train[1].tokens), "said \"no\"");
    assert_eq!(d.train.iter().map(|e| e.label).collect::<Vec<_>>(), [1, 0, 1]);
    let by_index = LabelFormat::Csv {
        text_col: "1".into(),
        label_col: "2".into(),
    };
    assert!(LabelledData::load(&p, &labels(by_index, WORDS, 64), 0.0, None, Labels::Define).is_ok());
    for (text_col, label_col, needle) in [
        ("body", "label", "unknown text column \"body\""),
        ("text", "9", "unknown label column \"9\""),
        ("text,id", "label", "--text-col names 2 columns"),
    ] {
        let f = LabelFormat::Csv {
            text_col: text_col.into(),
            label_col: label_col.into(),
        };
        let e = err(LabelledData::load(
            &p,
            &labels(f, Tokenizer::Char, 64),
            0.0,
            None,
            Labels::Define,
        ));
        assert!(e.contains(needle), "{e}");
    }
    let ragged = scratch("csv-ragged", "l.csv", "text,label\na,pos\nb,neg,extra\n");
    let f = LabelFormat::Csv {
        text_col: "text".into(),
        label_col: "label".into(),
    };
    let e = err(LabelledData::load(
        &ragged,
        &labels(f, Tokenizer::Char, 8),
        0.0,
        None,
        Labels::Define,
    ));
    assert!(e.contains("line 3") && e.contains("3 fields"), "{e}");
}

fn csv(name: &str, body: &str, opts: CsvOptions) -> wgrnn::Result<CsvData> {
    CsvData::load(&scratch(name, "d.csv", body), &opts, 0.0)
}

fn series_opts(targets: &str, inputs: Option<&str>, shift: Option<usize>) -> CsvOptions {
    CsvOptions {
        head: Head::Linear,
        target_cols: Some(targets.into()),
        input_cols: inputs.map(String::from),
        target_shift: shift,
        ..CsvOptions::default()
    }
}

#[test]
fn series_columns_and_target_shift() {
    let body = "a,b,y\n1,10,100\n2,20,200\n3,30,300\n4,40,400\n";
    // same-row targets: by default every other column is an input
    let d = csv("shift0", body, series_opts("y", None, Some(0))).unwrap();
    assert_eq!(d.model_io().input, Input::Dense { size: 2 });
    let b = &d.all_batches(1, 4)[0];
    assert_eq!(
        b.inputs,
        Inputs::Dense(vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0])
    );
    assert_eq!(b.targets, Targets::Values(vec![100.0, 200.0, 300.0, 400.0]));
    // next-row targets from chosen inputs (by index and by name)
    let d = csv("shift1", body, series_opts("2", Some("b"), None)).unwrap();
    let b = &d.all_batches(1, 3)[0];
    assert_eq!(b.inputs, Inputs::Dense(vec![10.0, 20.0, 30.0]));
    assert_eq!(b.targets, Targets::Values(vec![200.0, 300.0, 400.0]));
    check_batches(&Dataset::Csv(d), 2, 2);
    for (opts, needle) in [
        (series_opts("y", Some("c"), None), "unknown input column \"c\""),
        (series_opts("y", Some("7"), None), "unknown input column \"7\""),
        (series_opts("y", None, Some(2)), "target-shift"),
        (series_opts("y", Some("a,y"), Some(0)), "cannot also be an input"),
        (
            CsvOptions {
                input_cols: Some("a".into()),
                ..CsvOptions::default()
            },
            "input-cols",
        ),
    ] {
        let e = err(csv("bad-series", body, opts));
        assert!(e.contains(needle), "{e}");
    }
    let d = csv("short", body, series_opts("y", None, Some(0))).unwrap();
    assert!(
        d.check_len(4, Path::new("d.csv")).is_ok(),
        "shift 0 needs T rows, not T + 1"
    );
    assert!(d.check_len(5, Path::new("d.csv")).is_err());
}

#[test]
fn one_to_many_rows() {
    let body = "0.5,1,2,3\n0.25,4,5,6\n";
    let opts = CsvOptions {
        seq: Some(SeqShape::OneToMany),
        seq_len: Some(3),
        head: Head::Linear,
        ..CsvOptions::default()
    };
    let d = csv("o2m", body, opts.clone()).unwrap();
    assert_eq!(d.model_io().seq, SeqShape::OneToMany);
    let b = &d.all_batches(2, 3)[0];
    assert_eq!(b.inputs, Inputs::Dense(vec![0.5, 0.25]));
    assert_eq!(b.targets, Targets::Values(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    check_batches(&Dataset::Csv(d.clone()), 2, 3);
    let e = err(csv(
        "o2m-bad",
        body,
        CsvOptions {
            seq_len: Some(2),
            ..opts.clone()
        },
    ));
    assert!(e.contains("T = 2 steps"), "{e}");
    // predict reads rows of inputs only
    let only = scratch("o2m-inputs", "d.csv", "0.5\n0.75\n");
    let d = CsvData::load_inputs(&only, d.layout.clone()).unwrap();
    assert_eq!(d.all_batches(2, 3)[0].targets, Targets::Values(vec![0.0; 6]));
    // classes per step
    let classes = CsvOptions {
        head: Head::Softmax,
        ..opts
    };
    let d = csv("o2m-classes", "0.5,0,2,1\n", classes).unwrap();
    assert_eq!(d.model_io().output, 3);
}

#[test]
fn token_id_rows() {
    let opts = CsvOptions {
        seq: Some(SeqShape::ManyToOne),
        seq_len: Some(3),
        token_ids: true,
        ..CsvOptions::default()
    };
    let d = csv("ids", "1,2,3,0\n4,0,1,1\n", opts.clone()).unwrap();
    assert_eq!(d.model_io().input, Input::Tokens { vocab: 5, embed: None });
    let b = &d.all_batches(2, 3)[0];
    assert_eq!(b.inputs, Inputs::Tokens(vec![1, 4, 2, 0, 3, 1]));
    check_batches(&Dataset::Csv(d), 2, 3);
    let e = err(csv("ids-bad", "1,2.5,3,0\n", opts.clone()));
    assert!(e.contains("line 1") && e.contains("not a non-negative integer"), "{e}");
    let e = err(csv(
        "ids-series",
        "1,2\n",
        CsvOptions {
            seq: Some(SeqShape::ManyToMany),
            ..opts
        },
    ));
    assert!(e.contains("tokens"), "{e}");
}

fn save_and_load(dir_name: &str, cfg: ModelConfig, vocab: Option<Vocab>, data: DataSpec) -> wgrnn::Result<Checkpoint> {
    let kind = OptimKind::Sgd { momentum: 0.0 };
    let layout = ParamLayout::new(&cfg);
    let ck = Checkpoint {
        config: cfg,
        optim: OptimConfig::new(kind, 0.1),
        params: layout.init(&cfg, 1),
        optim_state: OptimState::new(&kind, layout.total),
        vocab,
        step: 1,
        train: Some(TrainMeta {
            seed: 1,
            batch: 2,
            seq_len: 4,
            val_fraction: 0.0,
            stateful: false,
            data,
            rng_word_pos: "0".into(),
            stream_pos: 0,
            data_fingerprint: None,
        }),
        carried: None,
    };
    let p = scratch(dir_name, "x", "").with_file_name("ck.safetensors");
    ck.save(&p)?;
    Checkpoint::load(&p)
}

#[test]
fn checkpoints_keep_words_ids_and_classes() {
    let words = Vocab::from_words(["b", "a", "b"], 1, None);
    let text = |tokens| DataSpec::Text {
        path: "/x.txt".into(),
        tokens,
    };
    let ck = save_and_load(
        "ck-words",
        ModelConfig::char_lm(3, 4, 1),
        Some(words.clone()),
        text(WORDS),
    )
    .unwrap();
    assert_eq!(ck.vocab, Some(words.clone()));
    let ids = save_and_load(
        "ck-ids",
        ModelConfig::char_lm(7, 4, 1),
        Some(Vocab::ids(7)),
        text(Tokenizer::Ids),
    );
    assert_eq!(
        ids.unwrap().vocab.map(|v| (v.kind(), v.len())),
        Some((TokenKind::Ids, 7))
    );
    // a word vocabulary with data read as characters (or the reverse) is refused
    let e = err(save_and_load(
        "ck-mixed",
        ModelConfig::char_lm(3, 4, 1),
        Some(words.clone()),
        text(Tokenizer::Char),
    ));
    assert!(e.contains("tokens") && e.contains("words"), "{e}");
    let spec = LabelSpec {
        classes: vec!["neg".into(), "pos".into()],
        ..labels(LabelFormat::Tsv, WORDS, 8)
    };
    let classifier = ModelConfig {
        output: 2,
        seq: SeqShape::ManyToOne,
        ..ModelConfig::char_lm(3, 4, 1)
    };
    let labelled = |labels| DataSpec::Labelled {
        path: "/x.tsv".into(),
        labels,
    };
    let ck = save_and_load("ck-labels", classifier, Some(words.clone()), labelled(spec.clone())).unwrap();
    assert!(matches!(ck.train.unwrap().data, DataSpec::Labelled { labels, .. } if labels == spec));
    let three = LabelSpec {
        classes: vec!["a".into(), "b".into(), "c".into()],
        ..spec
    };
    let e = err(save_and_load("ck-count", classifier, Some(words), labelled(three)));
    assert!(e.contains("classes") && e.contains("O = 2"), "{e}");
}

/// Checkpoints written before `loss`, word tokens or labelled data existed still load.
#[test]
fn older_metadata_loads() {
    let p = scratch("ck-old", "x", "").with_file_name("ck.safetensors");
    let cfg = ModelConfig::char_lm(3, 4, 1);
    let kind = OptimKind::Sgd { momentum: 0.0 };
    let layout = ParamLayout::new(&cfg);
    let ck = Checkpoint {
        config: cfg,
        optim: OptimConfig::new(kind, 0.1),
        params: layout.init(&cfg, 1),
        optim_state: OptimState::new(&kind, layout.total),
        vocab: Some(Vocab::from_text("abc")),
        step: 0,
        train: None,
        carried: None,
    };
    ck.save(&p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert!(
        !meta.contains_key("tokens") && !meta.contains_key("words"),
        "a char model's metadata is unchanged"
    );
    let mut config: serde_json::Value = serde_json::from_str(&meta["config"]).unwrap();
    assert_eq!(config["loss"], "mse");
    config.as_object_mut().unwrap().remove("loss");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .iter()
        .map(|(n, t)| (n.to_string(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    let mut m: std::collections::BTreeMap<String, String> = meta.into_iter().collect();
    m.remove("checksum");
    m.insert("config".into(), config.to_string());
    wgrnn::tensor_file::write_tensors(&p, &tensors, m).unwrap();
    let old = Checkpoint::load(&p).unwrap();
    assert_eq!(old.config, cfg);
}
