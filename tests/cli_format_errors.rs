//! Every malformed input of issue #12's formats and flags is one error line naming the
//! problem, a non-zero exit and no panic: labelled files, word and id tokens, CSV columns and
//! shapes, models given to the wrong path, `predict` and `sample` misuse.

mod cli_util;
use cli_util::*;
use std::path::{Path, PathBuf};

fn write(d: &Path, name: &str, body: &str) -> PathBuf {
    let p = d.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn train_fails(data: &Path, extra: &[&str], needles: &[&str]) {
    let out = data.with_extension("safetensors");
    let o = run(&train_args(data, &out, extra));
    let line = fails(&o, needles);
    assert!(line.starts_with("error: "), "{line}");
}

fn labelled_text() -> String {
    "pos\tgood fun\nneg\tbad film\n".repeat(10)
}

#[test]
fn malformed_labelled_files() {
    let d = dir("fmte-labels");
    let m2o = ["--seq", "many-to-one"];
    for (name, body, needles) in [
        ("tab.tsv", "pos\tgood\nno tab\n", &["tab.tsv", "line 2", "no tab"][..]),
        ("label.tsv", "pos\tgood\n \tbad\n", &["line 2", "empty label"]),
        ("text.tsv", "pos\tgood\nneg\t \n", &["line 2", "empty text"]),
        ("one.tsv", "pos\tgood\npos\tfine\n", &["1 class", "at least 2"]),
        ("blank.tsv", "\n \n", &["no examples"]),
    ] {
        train_fails(&write(&d, name, body), &m2o, needles);
    }
    let good = write(&d, "good.tsv", &labelled_text());
    for (flags, needles) in [
        (&["--output-size", "3"][..], &["output-size", "2 outputs"][..]),
        (&["--tokens", "ids"], &["tokens", "labelled"]),
        (&["--target-shift", "0"], &["target-shift", "labelled"]),
        (&["--head", "linear"], &["head", "softmax"]),
        (&["--text-col", "text"], &["text-col", ".csv"]),
        (&["--seq", "one-to-many", "--text-col", "t"], &["seq", "many-to-one"]),
        (&["--stateful"], &["stateful"]),
        (&["--loss", "half-mse"], &["loss", "softmax"]),
    ] {
        let mut f = m2o.to_vec();
        f.extend_from_slice(flags);
        train_fails(&good, &f, needles);
    }
}

#[test]
fn malformed_labelled_csv() {
    let d = dir("fmte-csv");
    let cols = ["--text-col", "text", "--label-col", "label"];
    for (name, body, flags, needles) in [
        (
            "quote.csv",
            "text,label\n\"open,pos\n",
            &cols[..],
            &["line 2", "not closed"][..],
        ),
        ("ragged.csv", "text,label\na,pos\nb\n", &cols, &["line 3", "1 fields"]),
        (
            "name.csv",
            "body,label\na,pos\n",
            &cols,
            &["unknown text column \"text\"", "body, label"],
        ),
        (
            "index.csv",
            "text,label\na,pos\n",
            &["--text-col", "0", "--label-col", "5"],
            &["unknown label column"],
        ),
        (
            "half.csv",
            "text,label\na,pos\n",
            &["--text-col", "text"],
            &["--text-col and --label-col"],
        ),
        (
            "empty.csv",
            "text,label\n\"\",pos\nb,neg\n",
            &cols,
            &["line 2", "empty text"],
        ),
    ] {
        train_fails(&write(&d, name, body), flags, needles);
    }
}

#[test]
fn bad_token_flags() {
    let d = dir("fmte-tokens");
    let text = write(&d, "t.txt", &small_text());
    train_fails(&text, &["--min-count", "2"], &["min-count", "--tokens word"]);
    train_fails(&text, &["--max-vocab", "9"], &["max-vocab", "--tokens word"]);
    train_fails(
        &text,
        &["--tokens", "word", "--max-vocab", "1"],
        &["max-vocab", "<unk>"],
    );
    train_fails(&text, &["--tokens", "word", "--min-count", "1000"], &["distinct word"]);
    train_fails(&text, &["--tokens", "ids"], &["line 1", "not a token id"]);
    train_fails(&text, &["--tokens", "bytes"], &["--tokens", "char | word | ids"]);
    train_fails(&text, &["--seq", "one-to-many"], &["seq", "many-to-many"]);
    let numbers = write(&d, "n.csv", "1,2,0\n3,4,1\n");
    train_fails(&numbers, &["--tokens", "word"], &["tokens", "numeric CSV"]);
    let o = run(&["train", "--tokens", "word", "--device", "cpu", "--steps", "1"]);
    fails(&o, &["tokens", "--data"]);
    let o = run(&[
        "train", "--task", "adding", "--tokens", "word", "--device", "cpu", "--steps", "1",
    ]);
    fails(&o, &["tokens", "--task adding"]);
    let rows = write(&d, "rows.csv", "1,2.5,0\n");
    train_fails(
        &rows,
        &["--tokens", "ids", "--seq", "many-to-one", "--seq-len", "2"],
        &["line 1", "2.5"],
    );
    let text = write(&d, "e.txt", &small_text());
    train_fails(&text, &["--embed", "4", "--task", "sine"], &["task"]);
}

#[test]
fn bad_csv_columns_and_shapes() {
    let d = dir("fmte-cols");
    let series = write(&d, "s.csv", &format!("a,b,y\n{}", "1,2,3\n".repeat(40)));
    let lin = ["--head", "linear", "--target-cols", "y"];
    for (flags, needles) in [
        (
            &["--input-cols", "c"][..],
            &["unknown input column \"c\"", "a, b, y"][..],
        ),
        (&["--input-cols", "3"], &["unknown input column \"3\""]),
        (&["--target-shift", "2"], &["target-shift", "0", "1"]),
        (&["--target-shift", "x"], &["--target-shift"]),
        (
            &["--target-shift", "0", "--input-cols", "a,y"],
            &["input-cols", "its own answer"],
        ),
        (&["--seq", "one-to-many"], &["target-cols", "many-to-many"]),
        (&["--seq", "many-to-one"], &["target-cols"]),
    ] {
        let mut f = lin.to_vec();
        f.extend_from_slice(flags);
        train_fails(&series, &f, needles);
    }
    train_fails(&series, &["--input-cols", "a"], &["input-cols", "many-to-one"]);
    train_fails(&series, &["--target-shift", "0"], &["target-shift"]);
    let rows = write(&d, "o2m.csv", &"0.5,1,2,3,4\n".repeat(10));
    let o2m = ["--seq", "one-to-many", "--head", "linear", "--seq-len", "3"];
    train_fails(&rows, &o2m, &["rows have 5 columns", "T = 3 steps"]);
    let o2m_width = [
        "--seq",
        "one-to-many",
        "--head",
        "linear",
        "--seq-len",
        "2",
        "--output-size",
        "3",
    ];
    train_fails(&rows, &o2m_width, &["rows have 5 columns", "I + T·O = 1 + 2·3"]);
    let text = write(&d, "t.txt", &small_text());
    train_fails(&text, &["--input-cols", "a"], &["input-cols", ".csv"]);
    train_fails(&text, &["--loss", "half-mse"], &["loss", "softmax"]);
    train_fails(
        &series,
        &["--loss", "l1", "--head", "linear"],
        &["--loss", "mse | half-mse"],
    );
}

/// Models given to the wrong path: a word model resumed as characters (and the reverse), a
/// classifier sampled, a language model or a task given to predict, labels it never saw.
#[test]
fn models_on_the_wrong_path() {
    let d = dir("fmte-paths");
    let text = write(&d, "t.txt", &small_text());
    let word = d.join("word.safetensors");
    ok(&run(&train_args(&text, &word, &["--tokens", "word"])));
    let resume = |ck: &Path, flags: &[&str]| {
        let mut a = vec![
            "train",
            "--resume",
            s(ck),
            "--steps",
            "5",
            "--device",
            "cpu",
            "--out",
            s(ck),
            "--quiet",
        ];
        a.extend_from_slice(flags);
        run(&a)
    };
    fails(
        &resume(&word, &["--tokens", "char"]),
        &["--tokens does not match the checkpoint"],
    );
    let chars = d.join("chars.safetensors");
    ok(&run(&train_args(&text, &chars, &[])));
    fails(&resume(&chars, &["--tokens", "word"]), &["--tokens does not match"]);
    fails(&resume(&chars, &["--loss", "half-mse"]), &["--loss does not match"]);
    let p = run(&[
        "predict",
        "--checkpoint",
        s(&chars),
        "--data",
        s(&text),
        "--device",
        "cpu",
    ]);
    fails(&p, &["language model", "sample", "eval"]);

    let labelled = write(&d, "l.tsv", &labelled_text());
    let cls = d.join("cls.safetensors");
    ok(&run(&train_args(
        &labelled,
        &cls,
        &["--seq", "many-to-one", "--tokens", "word"],
    )));
    fails(
        &run(&["sample", "--checkpoint", s(&cls), "--device", "cpu"]),
        &["sampling needs a language model"],
    );
    let unknown = write(&d, "u.tsv", "pos\tgood\nmeh\tbad\n");
    let e = run(&[
        "eval",
        "--checkpoint",
        s(&cls),
        "--data",
        s(&unknown),
        "--device",
        "cpu",
    ]);
    fails(&e, &["line 2", "\"meh\"", "neg, pos"]);
    let notab = write(&d, "n.tsv", "pos\tgood\nbad film\n");
    let e = run(&["eval", "--checkpoint", s(&cls), "--data", s(&notab), "--device", "cpu"]);
    fails(&e, &["line 2", "no tab"]);

    let task = d.join("task.safetensors");
    let mut a = vec![
        "train", "--task", "adding", "--steps", "2", "--hidden", "4", "--batch", "2",
    ];
    a.extend_from_slice(&["--seq-len", "4", "--device", "cpu", "--quiet", "--out", s(&task)]);
    ok(&run(&a));
    let p = run(&[
        "predict",
        "--checkpoint",
        s(&task),
        "--data",
        s(&text),
        "--device",
        "cpu",
    ]);
    fails(&p, &["no data format"]);
}

#[test]
fn bad_predict_and_sample_flags() {
    let d = dir("fmte-predict");
    let rows = write(&d, "r.csv", &"1,2,0\n3,4,1\n".repeat(10));
    let model = d.join("m.safetensors");
    ok(&run(&train_args(&rows, &model, &["--seq-len", "2"])));
    let predict = |extra: &[&str]| {
        let mut a = vec!["predict", "--checkpoint", s(&model), "--device", "cpu"];
        a.extend_from_slice(extra);
        run(&a)
    };
    fails(
        &predict(&["--data", s(&rows), "--out", s(&rows)]),
        &["--out and --data name the same file"],
    );
    fails(
        &predict(&["--data", s(&rows), "--out", s(&model)]),
        &["--out and --checkpoint"],
    );
    fails(&predict(&["--data", s(&d.join("missing.csv"))]), &["missing.csv"]);
    let wide = write(&d, "w.csv", "1,2,3,4\n");
    fails(&predict(&["--data", s(&wide)]), &["w.csv", "4 columns"]);
    fails(
        &predict(&["--data", s(&rows), "--format", "xml"]),
        &["--format", "csv | jsonl"],
    );
    fails(&predict(&["--data", s(&rows), "--out", s(&d)]), &["directory"]);
    let lm = tiny_text_model(&d, &[]);
    for (t, needle) in [("-1", ">= 0"), ("nan", "finite"), ("inf", "finite")] {
        let o = run(&["sample", "--checkpoint", s(&lm), "--temperature", t, "--device", "cpu"]);
        fails(&o, &["temperature", needle]);
    }
    let o = run(&["sample", "--checkpoint", s(&lm), "--top-k", "some", "--device", "cpu"]);
    fails(&o, &["--top-k"]);
}
