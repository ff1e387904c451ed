#!/usr/bin/env python3
"""How a training step's cost grows with T, B, H and L: runs `wgrnn bench --json` around a
base workload (A: char-LM V=65, E=H=256, L=1, T=64, B=64), one dimension at a time, and
writes the table as JSON lines and an SVG plot (step time vs each dimension, log-log).

Usage: benches/sweep.py [--device cpu|gpu] [--out benches/sweep-cpu] [--small]"""
import argparse
import json
import math
import subprocess

BASE = {"hidden": 256, "layers": 1, "seq-len": 64, "batch": 64}
SWEEPS = {
    "seq-len": [16, 32, 64, 128, 256],
    "batch": [8, 16, 32, 64, 128, 256],
    "hidden": [64, 128, 256, 512, 1024],
    "layers": [1, 2, 3, 4],
}


def bench(device, cfg, steps):
    args = ["./target/release/wgrnn", "bench", "--device", device, "--json", "--steps", str(steps), "--warmup", "1"]
    for k, v in cfg.items():
        args += [f"--{k}", str(v)]
    args += ["--embed", str(cfg["hidden"])]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


def svg(rows, path):
    w, h, pad = 300, 220, 42
    parts = []
    for i, (dim, pts) in enumerate(rows.items()):
        ox = (i % 2) * (w + 20)
        oy = (i // 2) * (h + 30)
        xs = [math.log(p[0]) for p in pts]
        ys = [math.log(p[1]) for p in pts]
        x0, x1 = min(xs), max(xs) or 1
        y0, y1 = min(ys), max(ys)
        y1 = y1 if y1 > y0 else y0 + 1
        sx = lambda x: ox + pad + (x - x0) / ((x1 - x0) or 1) * (w - pad - 10)
        sy = lambda y: oy + h - pad + 10 - (y - y0) / (y1 - y0) * (h - pad - 10)
        parts.append(f'<rect x="{ox + pad}" y="{oy + 10}" width="{w - pad - 10}" height="{h - pad}" fill="none" stroke="#999"/>')
        parts.append(f'<text x="{ox + w / 2}" y="{oy + h}" text-anchor="middle" font-size="12">{dim} (log)</text>')
        parts.append(f'<text x="{ox + 4}" y="{oy + 24}" font-size="10">ms</text>')
        pts_s = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
        parts.append(f'<polyline points="{pts_s}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
        for (v, ms), x, y in zip(pts, xs, ys):
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#1f77b4"/>')
            parts.append(f'<text x="{sx(x):.1f}" y="{oy + h - pad + 24}" text-anchor="middle" font-size="9">{v}</text>')
            parts.append(f'<text x="{sx(x) + 4:.1f}" y="{sy(y) - 4:.1f}" font-size="9">{ms:.3g}</text>')
    total_h = ((len(rows) + 1) // 2) * (h + 30)
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w + 20}" height="{total_h}" font-family="sans-serif">\n')
        f.write('<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(parts) + "\n</svg>\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    ap.add_argument("--small", action="store_true", help="fewer, smaller points (for the slow software GPU)")
    a = ap.parse_args()
    out = a.out or f"benches/sweep-{a.device}"
    base, sweeps, steps = dict(BASE), SWEEPS, 5
    if a.small:
        base = {"hidden": 64, "layers": 1, "seq-len": 16, "batch": 16}
        sweeps = {"seq-len": [8, 16, 32], "batch": [8, 16, 32], "hidden": [32, 64, 128], "layers": [1, 2, 3]}
        steps = 3
    rows = {}
    with open(out + ".jsonl", "w") as f:
        for dim, values in sweeps.items():
            rows[dim] = []
            for v in values:
                cfg = dict(base, **{dim: v})
                r = bench(a.device, cfg, steps)
                r["sweep"] = dim
                f.write(json.dumps(r) + "\n")
                rows[dim].append((v, r["step_ms_median"]))
                print(f"{dim}={v}: {r['step_ms_median']:.1f} ms/step, {r['tokens_per_s']:.0f} tokens/s, {r['gflops']:.1f} GFLOP/s", flush=True)
    svg(rows, out + ".svg")


if __name__ == "__main__":
    main()
