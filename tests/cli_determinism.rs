//! Every file the program writes is byte-identical for identical inputs, so outputs can be
//! compared with `cmp` and cached by hash. The JSONL log is exempt: it records wall-clock
//! figures (tokens/s, seconds).

mod cli_util;
use cli_util::*;
use safetensors::tensor::{Dtype, TensorView};

#[test]
fn identical_grad_runs_write_identical_files() {
    let d = dir("det-grad");
    let m = tiny_text_model(&d, &[]);
    let ids: Vec<u8> = (0..12i64).flat_map(|i| (i % 5).to_le_bytes()).collect();
    let views = [("inputs", &ids), ("targets", &ids)]
        .map(|(n, b)| (n.to_string(), TensorView::new(Dtype::I64, vec![3, 4], b).unwrap()));
    let batch = d.join("batch.safetensors");
    std::fs::write(&batch, safetensors::serialize(views, None).unwrap()).unwrap();
    let grad = |name: &str| {
        let out = d.join(name);
        ok(&run(&[
            "grad",
            "--checkpoint",
            s(&m),
            "--batch",
            s(&batch),
            "--out",
            s(&out),
            "--device",
            "cpu",
        ]));
        std::fs::read(out).unwrap()
    };
    assert!(grad("g1.safetensors") == grad("g2.safetensors"), "grad outputs differ");
}

#[test]
fn identical_train_runs_write_identical_checkpoints_and_plots() {
    let d = dir("det-train");
    let data = d.join("t.txt");
    std::fs::write(&data, small_text()).unwrap();
    let train = |tag: &str, extra: &[&str]| {
        let (out, plot) = (d.join(format!("{tag}.safetensors")), d.join(format!("{tag}.svg")));
        let mut flags = vec!["--steps", "12", "--eval-every", "4", "--plot", s(&plot)];
        flags.extend_from_slice(extra);
        ok(&run(&train_args(&data, &out, &flags)));
        (std::fs::read(out).unwrap(), std::fs::read(plot).unwrap())
    };
    let runs: [(&str, &[&str]); 3] = [
        ("plain", &[]),
        ("stateful", &["--stateful"]),
        ("log", &["--plot-scale", "log"]),
    ];
    for (tag, extra) in runs {
        let (ck1, plot1) = train(&format!("{tag}1"), extra);
        let (ck2, plot2) = train(&format!("{tag}2"), extra);
        assert!(ck1 == ck2, "{tag}: checkpoints differ");
        assert!(plot1 == plot2, "{tag}: plots differ");
        assert!(
            plot1.starts_with(b"<svg") && plot1.windows(5).any(|w| w == b"<text"),
            "{tag}: not an SVG with labels"
        );
    }
}
