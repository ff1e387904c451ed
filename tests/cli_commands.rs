//! `sample`, `eval`, `grad`, `check`, `info` on a checkpoint made by `train`, and an
//! independent read of the checkpoint with Python's `safetensors` + numpy.

mod cli_util;
use cli_util::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

#[test]
fn sample_and_eval() {
    let d = dir("sample-eval");
    let m = tiny_text_model(&d, &[]);
    let text = ok(&run(&[
        "sample",
        "--checkpoint",
        s(&m),
        "--len",
        "50",
        "--prime",
        "the ",
        "--device",
        "cpu",
    ]));
    assert!(
        text.starts_with("the ") && text.trim_end().chars().count() >= 40,
        "{text:?}"
    );
    let again = ok(&run(&[
        "sample",
        "--checkpoint",
        s(&m),
        "--len",
        "50",
        "--prime",
        "the ",
        "--device",
        "cpu",
    ]));
    assert_eq!(text, again, "sampling with the same seed is deterministic");
    let e = ok(&run(&[
        "eval",
        "--checkpoint",
        s(&m),
        "--data",
        s(&d.join("text.txt")),
        "--json",
        "--device",
        "cpu",
    ]));
    let v = json(&e);
    let (nats, bits) = (v["loss"].as_f64().unwrap(), v["bits_per_char"].as_f64().unwrap());
    assert!(nats > 0.0 && nats < 3.5, "{v}");
    assert!((bits - nats / std::f64::consts::LN_2).abs() < 1e-9);
    let plain = ok(&run(&["eval", "--checkpoint", s(&m), "--device", "cpu"]));
    assert!(plain.contains("bits/char"), "{plain}");
}

fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// inputs/targets int64 (B, T) from the tiny model's vocabulary
pub fn write_token_batch(path: &Path, b: usize, t: usize, v: i64) {
    let ids: Vec<i64> = (0..b * t).map(|i| (i as i64 * 7 + 3) % v).collect();
    let next: Vec<i64> = ids.iter().map(|x| (x + 1) % v).collect();
    let (x, y) = (i64_bytes(&ids), i64_bytes(&next));
    let tensors = vec![
        ("inputs", TensorView::new(Dtype::I64, vec![b, t], &x).unwrap()),
        ("targets", TensorView::new(Dtype::I64, vec![b, t], &y).unwrap()),
    ];
    std::fs::write(path, safetensors::serialize(tensors, None).unwrap()).unwrap();
}

fn read_grads(path: &Path) -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.iter()
        .map(|(n, t)| {
            assert_eq!(t.dtype(), Dtype::F32);
            let v = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n.to_string(), v)
        })
        .collect()
}

#[test]
fn grad_on_cpu_and_gpu() {
    let d = dir("grad");
    let m = tiny_text_model(&d, &[]);
    let batch = d.join("batch.safetensors");
    write_token_batch(&batch, 3, 7, 20);
    let mut out = HashMap::new();
    for dev in ["cpu", "gpu"] {
        let g = d.join(format!("grads-{dev}.safetensors"));
        let stdout = ok(&run(&[
            "grad",
            "--checkpoint",
            s(&m),
            "--batch",
            s(&batch),
            "--out",
            s(&g),
            "--device",
            dev,
        ]));
        assert!(stdout.contains("loss"), "{stdout}");
        out.insert(dev, read_grads(&g));
    }
    let (cpu, gpu) = (&out["cpu"], &out["gpu"]);
    for name in [
        "loss",
        "grad.rnn.weight_ih_l0",
        "grad.rnn.weight_hh_l0",
        "grad.rnn.bias_ih_l0",
        "grad.rnn.bias_hh_l0",
        "grad.head.weight",
        "grad.head.bias",
    ] {
        let (c, g) = (&cpu[name], &gpu[name]);
        let diff: f64 = c
            .iter()
            .zip(g)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = c.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        assert!(
            diff <= 1e-4 * norm.max(1e-12),
            "{name}: |gpu - cpu| = {diff}, |cpu| = {norm}"
        );
    }
    assert_eq!(cpu.len(), 7);
}

#[test]
fn check_cpu_against_gpu() {
    let stdout = ok(&run(&[
        "check",
        "--steps",
        "2",
        "--hidden",
        "16",
        "--batch",
        "3",
        "--seq-len",
        "5",
    ]));
    assert!(stdout.contains("all within SPEC"), "{stdout}");
    let stdout = ok(&run(&[
        "check",
        "--steps",
        "2",
        "--hidden",
        "8",
        "--layers",
        "2",
        "--input-size",
        "3",
        "--head",
        "linear",
        "--seq",
        "many-to-one",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--lr",
        "0.1",
        "--json",
    ]));
    assert_eq!(json(&stdout)["ok"], true, "{stdout}");
}

#[test]
fn info_lists_adapters() {
    let stdout = ok(&run(&["info"]));
    assert!(stdout.contains("--device auto picks"), "{stdout}");
}

/// Names, shapes, dtypes, metadata and the checksum, read by Python's safetensors + numpy;
/// with torch installed, also `load_state_dict` into nn.Embedding / nn.RNN / nn.Linear.
#[test]
fn python_reads_checkpoint() {
    let d = dir("python");
    let m = tiny_text_model(&d, &["--embed", "8", "--layers", "2"]);
    let script = r#"
import json, sys
try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as e:
    sys.exit(f"python packages missing ({e}); install them with: pip install safetensors numpy")
path = sys.argv[1]
t = load_file(path)
with safe_open(path, "np") as f:
    meta = f.metadata()
cfg = json.loads(meta["config"])
V, H = len(meta["vocab"]), cfg["hidden"]
E = cfg["input"]["embed"]
want = {"embed.weight": (V, E), "head.weight": (V, H), "head.bias": (V,)}
for l in range(cfg["layers"]):
    want[f"rnn.weight_ih_l{l}"] = (H, E if l == 0 else H)
    want[f"rnn.weight_hh_l{l}"] = (H, H)
    want[f"rnn.bias_ih_l{l}"] = (H,)
    want[f"rnn.bias_hh_l{l}"] = (H,)
for name, shape in want.items():
    assert t[name].shape == shape, (name, t[name].shape, shape)
    assert t[name].dtype == np.float32, (name, t[name].dtype)
    assert np.isfinite(t[name]).all(), name
    for slot in ("m", "v"):
        assert t[f"optim.{slot}.{name}"].shape == shape
assert int(meta["step"]) == 20 and meta["format"] == "wgrnn-checkpoint-1"
# FNV-1a over the metadata (but the checksum) and every tensor's name, dtype, shape, bytes
h = 0xcbf29ce484222325
parts = [f"{k}\0{v}\0".encode() for k, v in sorted(meta.items()) if k != "checksum"]
for name in sorted(t):
    shape = ",".join(map(str, t[name].shape))
    parts.append(f"{name}\0F32\0{shape}\0".encode() + t[name].astype("<f4").tobytes())
for byte in b"".join(parts):
    h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
assert f"{h:016x}" == meta["checksum"], "checksum"
try:
    import torch
except ImportError:
    print("ok (torch not installed: load_state_dict not tried)")
    sys.exit(0)
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, E)
        self.rnn = torch.nn.RNN(E, H, cfg["layers"], nonlinearity=cfg["activation"])
        self.head = torch.nn.Linear(H, V)
model = M()
model.load_state_dict({k: torch.from_numpy(v) for k, v in t.items() if not k.startswith(("optim.", "state."))})
print("ok (torch load_state_dict)")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, s(&m)])
        .output();
    let out = out.expect("python3 is needed for this test (apt-get install python3; pip install safetensors numpy)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python read failed:\n{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

/// Training, evaluation and sampling on the wgpu path (a missing adapter fails the test).
#[test]
fn train_eval_sample_on_gpu() {
    let d = dir("gpu-train");
    let data = d.join("text.txt");
    std::fs::write(&data, small_text()).unwrap();
    let (out, log) = (d.join("m.safetensors"), d.join("log.jsonl"));
    let stdout = ok(&run(&[
        "train",
        "--data",
        s(&data),
        "--hidden",
        "16",
        "--steps",
        "40",
        "--batch",
        "4",
        "--seq-len",
        "16",
        "--lr",
        "0.01",
        "--eval-every",
        "20",
        "--sample-every",
        "0",
        "--quiet",
        "--json",
        "--device",
        "gpu",
        "--out",
        s(&out),
        "--log",
        s(&log),
    ]));
    assert!(json(&stdout)["engine"].as_str().unwrap().starts_with("gpu"), "{stdout}");
    let losses = logged_losses(&log);
    assert!(losses[losses.len() - 1].1 < losses[0].1, "{losses:?}");
    ok(&run(&[
        "eval",
        "--checkpoint",
        s(&out),
        "--data",
        s(&data),
        "--device",
        "gpu",
    ]));
    let text = ok(&run(&[
        "sample",
        "--checkpoint",
        s(&out),
        "--len",
        "20",
        "--device",
        "gpu",
    ]));
    assert!(!text.trim().is_empty());
}
