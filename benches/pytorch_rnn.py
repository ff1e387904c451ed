#!/usr/bin/env python3
"""PyTorch CPU baseline for BENCHMARKS.md: the issue-5 workloads as nn.Embedding(V, E=H) ->
nn.RNN(tanh) -> nn.Linear (or dense inputs with an MSE head), SGD, 2 threads.
Prints one JSON object per workload with the median step time and tokens/s, measured the
same way as `wgrnn bench` (warm-up steps, then the median of timed steps)."""
import json
import sys
import time

import torch
import torch.nn as nn

torch.set_num_threads(2)
torch.manual_seed(0)

WORKLOADS = {
    # name: (V or None for dense, I, H, L, T, B, O)
    "A": (65, None, 256, 1, 64, 64, 65),
    "B": (65, None, 512, 1, 64, 256, 65),
    "C": (65, None, 256, 3, 64, 64, 65),
    "D": (65, None, 128, 1, 512, 32, 65),
    "E": (None, 8, 128, 1, 100, 128, 1),
}


class Model(nn.Module):
    def __init__(self, v, i, h, l, o):
        super().__init__()
        self.embed = nn.Embedding(v, h) if v else None
        self.rnn = nn.RNN(h if v else i, h, l, nonlinearity="tanh")
        self.head = nn.Linear(h, o)

    def forward(self, x):
        if self.embed is not None:
            x = self.embed(x)
        y, _ = self.rnn(x)
        return self.head(y)


def run(name, steps, warmup, infer):
    v, i, h, l, t, b, o = WORKLOADS[name]
    m = Model(v, i, h, l, o)
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    if v:
        x = torch.randint(0, v, (t, b))
        y = torch.randint(0, o, (t, b))
        loss_fn = lambda out: nn.functional.cross_entropy(out.reshape(-1, o), y.reshape(-1))
    else:
        x = torch.rand(t, b, i) * 2 - 1
        y = torch.rand(t, b, o)
        loss_fn = lambda out: nn.functional.mse_loss(out, y)
    times = []
    for k in range(warmup + steps):
        start = time.perf_counter()
        if infer:
            with torch.no_grad():
                loss_fn(m(x)).item()
        else:
            opt.zero_grad()
            loss = loss_fn(m(x))
            loss.backward()
            opt.step()
            loss.item()
        if k >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    med = times[len(times) // 2]
    return {"workload": name, "mode": "infer" if infer else "train", "step_ms_median": med,
            "tokens_per_s": b * t / (med * 1e-3), "torch": torch.__version__}


if __name__ == "__main__":
    names = sys.argv[1:] or list(WORKLOADS)
    infer = "--infer" in names
    for n in [n for n in names if n in WORKLOADS]:
        print(json.dumps(run(n, steps=10, warmup=2, infer=infer)), flush=True)
