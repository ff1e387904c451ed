//! `wgrnn train` end to end: the default corpus, small text / CSV / synthetic tasks with the
//! loss going down, logs and plots, and exact resume.

mod cli_util;
use cli_util::*;
use wgrnn::checkpoint::Checkpoint;

fn first_last(losses: &[(u64, f64)]) -> (f64, f64) {
    let n = losses.len().min(5);
    let mean = |s: &[(u64, f64)]| s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64;
    (mean(&losses[..n]), mean(&losses[losses.len() - n..]))
}

#[test]
fn default_corpus_shortened() {
    let d = dir("default");
    let out = d.join("m.safetensors");
    let stdout = ok(&run(&[
        "train",
        "--steps",
        "30",
        "--eval-every",
        "30",
        "--val-batches",
        "2",
        "--sample-every",
        "0",
        "--json",
        "--device",
        "cpu",
        "--out",
        s(&out),
    ]));
    let v = json(&stdout);
    assert_eq!(v["steps"], 30);
    let (val, uni) = (v["val_loss"].as_f64().unwrap(), v["unigram_baseline"].as_f64().unwrap());
    assert!((3.0..3.6).contains(&uni), "unigram baseline {uni}");
    // ln(V) ≈ 4.2 at the start; 30 Adam steps get near the unigram level
    assert!(val < 3.6, "val loss {val}");
    assert!(out.exists());
}

#[test]
fn text_loss_goes_down_with_log_and_plot() {
    let d = dir("text");
    let (log, plot) = (d.join("log.jsonl"), d.join("loss.svg"));
    tiny_text_model(
        &d,
        &["--steps", "60", "--log", s(&log), "--plot", s(&plot), "--lr", "0.01"],
    );
    let losses = logged_losses(&log);
    assert_eq!(losses.len(), 60);
    let (a, b) = first_last(&losses);
    assert!(b < a * 0.7, "loss {a} -> {b}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().any(|l| l.contains("\"type\":\"val\"")));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
}

#[test]
fn stateful_text_trains() {
    let d = dir("stateful");
    let log = d.join("log.jsonl");
    tiny_text_model(&d, &["--steps", "60", "--stateful", "--log", s(&log), "--lr", "0.01"]);
    let (a, b) = first_last(&logged_losses(&log));
    assert!(b < a * 0.7, "loss {a} -> {b}");
}

#[test]
fn csv_sequence_per_row_classification() {
    let d = dir("csv-rows");
    // class = whether the sum of the 8 steps × 2 features is positive
    let mut csv = String::from(&(0..16).map(|i| format!("x{i}")).collect::<Vec<_>>().join(","));
    csv += ",label\n";
    let mut state = 12345u64;
    for _ in 0..400 {
        let mut sum = 0.0;
        let mut cells = Vec::new();
        for _ in 0..16 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0;
            sum += v;
            cells.push(format!("{v:.4}"));
        }
        cells.push(((sum > 0.0) as u32).to_string());
        csv += &(cells.join(",") + "\n");
    }
    let data = d.join("rows.csv");
    std::fs::write(&data, csv).unwrap();
    let log = d.join("log.jsonl");
    let out = d.join("m.safetensors");
    let stdout = ok(&run(&[
        "train",
        "--data",
        s(&data),
        "--seq-len",
        "8",
        "--input-size",
        "2",
        "--hidden",
        "16",
        "--steps",
        "150",
        "--batch",
        "16",
        "--lr",
        "0.01",
        "--eval-every",
        "50",
        "--quiet",
        "--json",
        "--device",
        "cpu",
        "--log",
        s(&log),
        "--out",
        s(&out),
    ]));
    let v = json(&stdout);
    let (a, b) = first_last(&logged_losses(&log));
    assert!(b < a * 0.8, "loss {a} -> {b}");
    assert!(v["val_accuracy"].as_f64().unwrap() > 0.7, "{v}");
    let e = ok(&run(&[
        "eval",
        "--checkpoint",
        s(&out),
        "--data",
        s(&data),
        "--json",
        "--device",
        "cpu",
    ]));
    assert!(json(&e)["accuracy"].as_f64().unwrap() > 0.7, "{e}");
}

#[test]
fn csv_series_regression() {
    let d = dir("csv-series");
    let mut csv = String::from("t,a,b\n");
    for i in 0..600 {
        let t = i as f64 * 0.2;
        csv += &format!("{:.3},{:.4},{:.4}\n", (i % 50) as f64 / 50.0, t.sin(), (0.5 * t).cos());
    }
    let data = d.join("series.csv");
    std::fs::write(&data, csv).unwrap();
    let log = d.join("log.jsonl");
    let out = d.join("m.safetensors");
    ok(&run(&[
        "train",
        "--data",
        s(&data),
        "--target-cols",
        "a,b",
        "--head",
        "linear",
        "--seq-len",
        "20",
        "--hidden",
        "16",
        "--steps",
        "100",
        "--batch",
        "8",
        "--lr",
        "0.01",
        "--eval-every",
        "50",
        "--quiet",
        "--device",
        "cpu",
        "--log",
        s(&log),
        "--out",
        s(&out),
    ]));
    let (a, b) = first_last(&logged_losses(&log));
    assert!(b < a * 0.5, "loss {a} -> {b}");
    let e = ok(&run(&[
        "eval",
        "--checkpoint",
        s(&out),
        "--data",
        s(&data),
        "--device",
        "cpu",
    ]));
    assert!(e.contains("MSE"), "{e}");
}

#[test]
fn tasks_adding_and_sine() {
    for (task, t, steps) in [("adding", "10", "200"), ("sine", "20", "100")] {
        let d = dir(&format!("task-{task}"));
        let log = d.join("log.jsonl");
        ok(&run(&[
            "train",
            "--task",
            task,
            "--seq-len",
            t,
            "--hidden",
            "16",
            "--steps",
            steps,
            "--batch",
            "16",
            "--lr",
            "0.01",
            "--eval-every",
            "0",
            "--quiet",
            "--device",
            "cpu",
            "--log",
            s(&log),
            "--out",
            s(&d.join("m.safetensors")),
        ]));
        let (a, b) = first_last(&logged_losses(&log));
        assert!(b < a * 0.6, "{task}: loss {a} -> {b}");
    }
}

/// 20 steps in one run == 10 steps + resume to 20: every logged loss and every tensor of the
/// final checkpoint bitwise, on the CPU path; with dropout, the resumed run draws the masks
/// the uninterrupted one did.
#[test]
fn resume_is_exact() {
    let options = ["--layers", "2", "--dropout", "0.3", "--bidirectional", "--no-bias"];
    for extra in [&[][..], &["--stateful"][..], &options[..]] {
        let d = dir(&format!("resume{}", extra.len()));
        let data = d.join("text.txt");
        std::fs::write(&data, small_text()).unwrap();
        let train = |out: &std::path::Path, log: &std::path::Path, steps: &str, resume: Option<&std::path::Path>| {
            let mut args = vec![
                "train",
                "--data",
                s(&data),
                "--hidden",
                "16",
                "--batch",
                "4",
                "--seq-len",
                "8",
                "--eval-every",
                "5",
                "--sample-every",
                "0",
                "--quiet",
                "--device",
                "cpu",
                "--steps",
                steps,
                "--out",
                s(out),
                "--log",
                s(log),
            ];
            args.extend_from_slice(extra);
            if let Some(r) = resume {
                args.extend_from_slice(&["--resume", s(r)]);
            }
            ok(&run(&args));
        };
        let (full, full_log) = (d.join("full.safetensors"), d.join("full.jsonl"));
        train(&full, &full_log, "20", None);
        let (part, part_log) = (d.join("part.safetensors"), d.join("part.jsonl"));
        train(&part, &part_log, "10", None);
        train(&part, &part_log, "20", Some(&part.clone()));
        let a = logged_losses(&full_log);
        let b = logged_losses(&part_log);
        assert_eq!(a.len(), 20);
        let bits = |v: &[(u64, f64)]| v.iter().map(|p| (p.0, p.1.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "losses differ after resume {extra:?}");
        let (fa, fb) = (Checkpoint::load(&full).unwrap(), Checkpoint::load(&part).unwrap());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&fa.params),
            bits(&fb.params),
            "weights differ after resume {extra:?}"
        );
        assert_eq!(fa.optim_state.step, fb.optim_state.step);
        for (x, y) in fa.optim_state.slots.iter().zip(&fb.optim_state.slots) {
            assert_eq!(bits(x), bits(y), "optimiser state differs after resume {extra:?}");
        }
        assert_eq!(fa.train, fb.train, "sampler state differs after resume {extra:?}");
        assert_eq!(fa.carried.as_deref().map(bits), fb.carried.as_deref().map(bits));
    }
}
