#!/usr/bin/env python3
"""Golden cases for tests/golden.rs, computed by PyTorch autograd (an independent source).

Run from anywhere (needs torch, numpy, safetensors; CI does not: it only reads the files
this writes):

    python3 tests/golden/make_golden.py

Writes, beside this script:
- cases.json: one entry per model case (wgrnn ModelConfig in its serde form, B, T, the
  expected loss, which optional gradients exist) and per optimiser case (wgrnn OptimConfig
  in its serde form, the base model case, the expected loss before each step);
- <case>.safetensors: the tensors of a model case, all float64 (ids int64):
    <SPEC §3 name>          the weights, e.g. rnn.weight_ih_l0 (H, I)
    batch.inputs            (B, T_in, I) dense | (B, T_in) token ids      -- BATCH-FIRST
    batch.targets           (B, T_out) class ids | (B, T_out, O) values    -- BATCH-FIRST
    batch.h0                (L·dirs, B, H), when the case passes an initial state
    batch.lengths           (B) int64 sequence lengths, when the case is ragged (padding
                            steps hold valid ids / zeros, as wgrnn requires)
    grad.<SPEC §3 name>     dL/dweight
    grad.dx                 (B, T_in, in_0) dL/d(layer-0 input): dense vectors, one-hot
                            vectors (plain tokens, width V) or embedded vectors (width E)
    grad.dh0                (L·dirs, B, H)
  wgrnn batches are time-major; tests/golden.rs converts.
- opt_<case>.safetensors: step<k>.<SPEC §3 name>, the weights after k optimiser steps.

Dimension letters: B batch, T steps, I input width, H hidden, O outputs, V vocabulary,
E embedding width, L layers, dirs = 2 for bidirectional models.

Ragged cases run nn.RNN on pack_padded_sequence(enforce_sorted=False), the reference for
SPEC §1's variable lengths: padding steps carry no target, many-to-one reads h_n, the mean
divides by the number of valid targets.

Every weight, input, target and h0 value is rounded to float32 first (then held in float64),
so the f32 CPU engine sees exactly the values the float64 reference used. Optimiser
hyper-parameters are rounded to float32 too, because wgrnn's OptimConfig stores f32.
"""

import json
import os

import numpy as np
import torch
from torch import nn
from safetensors.torch import save_file

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))


def r32(v):
    """The float64 value of v rounded to float32 (what wgrnn's f32 config fields hold)."""
    return float(np.float32(v))


def f32(t):
    return t.float().double()


# ---------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------


def in_width(c):
    inp = c["input"]
    if inp["kind"] == "dense":
        return inp["size"]
    return inp["embed"] if inp["embed"] is not None else inp["vocab"]


class Model(nn.Module):
    """nn.Embedding (optional) + nn.RNN + nn.Linear: state_dict names are SPEC §3's."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        inp = c["input"]
        if inp["kind"] == "tokens" and inp["embed"] is not None:
            self.embed = nn.Embedding(inp["vocab"], inp["embed"])
        # nn.RNN has no sigmoid cell: a sigmoid model keeps nn.RNN only as the holder of its
        # parameters (same names and shapes) and runs manual_rnn below.
        nl = "tanh" if c["activation"] == "sigmoid" else c["activation"]
        dirs = 2 if c["bidirectional"] else 1
        self.rnn = nn.RNN(
            in_width(c),
            c["hidden"],
            c["layers"],
            nonlinearity=nl,
            bias=c["bias"],
            batch_first=True,
            bidirectional=c["bidirectional"],
            dropout=0.0,
        )
        self.head = nn.Linear(c["hidden"] * dirs, c["output"], bias=c["head_bias"])


def manual_rnn(rnn, x, h0, f):
    """The Elman recurrence written out (SPEC §1), on the parameters of an nn.RNN.
    x (B, T, in_0), h0 (L, B, H); returns the top layer's states (B, T, H)."""
    seq = x
    for l in range(rnn.num_layers):
        w_ih = getattr(rnn, f"weight_ih_l{l}")
        w_hh = getattr(rnn, f"weight_hh_l{l}")
        b_ih = getattr(rnn, f"bias_ih_l{l}")
        b_hh = getattr(rnn, f"bias_hh_l{l}")
        h = h0[l]
        outs = []
        for t in range(seq.shape[1]):
            h = f(seq[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
            outs.append(h)
        seq = torch.stack(outs, dim=1)
    return seq


def init_weights(model, gen):
    """Fixed, f32-representable weights. U(-0.7, 0.7) is wider than PyTorch's default for
    these small H, so the activations are well away from 0 (relu kinks) and from saturation."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "embed.weight":
                p.copy_(f32(torch.randn(p.shape, generator=gen)))
            else:
                p.copy_(f32((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.7))


def make_batch(c, B, T, with_h0, gen, lengths):
    """A batch-first batch: inputs (B, T_in, ...), targets (B, T_out, ...), h0 (L·dirs, B, H),
    lengths (B) when given."""
    t_in = 1 if c["seq"] == "one-to-many" else T
    t_out = 1 if c["seq"] == "many-to-one" else T
    inp = c["input"]
    if inp["kind"] == "dense":
        x = f32(torch.rand((B, t_in, inp["size"]), generator=gen) * 2 - 1)
    else:
        x = torch.randint(0, inp["vocab"], (B, t_in), generator=gen)
    if c["head"] == "softmax":
        y = torch.randint(0, c["output"], (B, t_out), generator=gen)
    else:
        y = f32(torch.rand((B, t_out, c["output"]), generator=gen))
    b = {"inputs": x, "targets": y}
    if with_h0:
        dirs = 2 if c["bidirectional"] else 1
        b["h0"] = f32(torch.rand((c["layers"] * dirs, B, c["hidden"]), generator=gen) - 0.5)
    if lengths is not None:
        b["lengths"] = torch.tensor(lengths, dtype=torch.int64)
    return b


def run(model, batch, B, T):
    """Forward + loss. Returns (loss, x0, h0): x0 is the layer-0 input of the steps that carry
    one (B, T_in, in_0) and, like h0, has .grad after loss.backward()."""
    c = model.c
    inp = c["input"]
    x = batch["inputs"]
    if inp["kind"] == "dense":
        x0 = x.clone().requires_grad_(True)
    elif inp["embed"] is None:
        # Plain tokens act as one-hot vectors (SPEC §1); their gradient is wgrnn's dx.
        x0 = nn.functional.one_hot(x, inp["vocab"]).double().requires_grad_(True)
    else:
        x0 = model.embed(x)
        x0.retain_grad()
    if c["seq"] == "one-to-many":
        # an input at step 1 only, zero input afterwards
        pad = torch.zeros((B, T - 1, x0.shape[2]))
        xs = torch.cat([x0, pad], dim=1)
    else:
        xs = x0
    dirs = 2 if c["bidirectional"] else 1
    if "h0" in batch:
        h0 = batch["h0"].clone().requires_grad_(True)
    else:
        h0 = torch.zeros((c["layers"] * dirs, B, c["hidden"]))
    lengths = batch.get("lengths")
    if c["activation"] == "sigmoid":
        top = manual_rnn(model.rnn, xs, h0, torch.sigmoid)
        h_n = None
    elif lengths is not None:
        packed = nn.utils.rnn.pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = model.rnn(packed, h0)
        top, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    else:
        top, h_n = model.rnn(xs, h0)
    if c["seq"] == "many-to-one" and lengths is None and dirs == 1:
        top = top[:, -1:]  # one target, after the last step
    elif c["seq"] == "many-to-one":
        # the top layer's final states h_n: each sequence's own last step, and [h_T ; hr_1]
        # when bidirectional (the output at T would hold hr_T instead)
        top = torch.cat(list(h_n[-dirs:]), dim=1).unsqueeze(1)
    logits = model.head(top)  # (B, T_out, O)
    if lengths is not None and c["seq"] != "many-to-one":
        # padding steps carry no target
        valid = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        logits = logits[valid].unsqueeze(0)
        batch = dict(batch, targets=batch["targets"][valid].unsqueeze(0))
    O = c["output"]
    y = batch["targets"]
    if c["head"] == "softmax":
        loss = nn.CrossEntropyLoss(reduction=c["reduction"])(logits.reshape(-1, O), y.reshape(-1))
    else:
        y_hat = torch.sigmoid(logits) if c["head"] == "sigmoid" else logits
        if c["reduction"] == "mean":
            # = Σ_n Σ_k (ŷ - y)² / O / N, SPEC §1's mean
            loss = nn.MSELoss(reduction="mean")(y_hat, y)
        else:
            # SPEC §1's sum keeps the per-step 1/O: loss_t = Σ_k (ŷ - y)² / O, summed over the
            # N (sequence, step) pairs. PyTorch's MSELoss(sum) has no 1/O, hence the division.
            loss = nn.MSELoss(reduction="sum")(y_hat, y) / O
    return loss, x0, h0


def model_config(input_, hidden, layers, activation, output, head, reduction, seq, **options):
    """wgrnn's ModelConfig, in its serde JSON form; `options`: bias, head_bias, bidirectional."""
    return {
        "input": input_,
        "hidden": hidden,
        "layers": layers,
        "activation": activation,
        "output": output,
        "head": head,
        "reduction": reduction,
        "seq": seq,
        "init": "default",
        "bias": options.get("bias", True),
        "head_bias": options.get("head_bias", True),
        "bidirectional": options.get("bidirectional", False),
        "dropout": {"p": 0.0, "seed": 0},
    }


def dense(size):
    return {"kind": "dense", "size": size}


def tokens(vocab, embed=None):
    return {"kind": "tokens", "vocab": vocab, "embed": embed}


# name, config, B, T, with_h0, seed, lengths (None: all T)
CASES = [
    # char-level LM: tokens in, softmax over the vocabulary, target at every step, L = 2
    ("charlm_tanh_l2", model_config(tokens(5), 4, 2, "tanh", 5, "softmax", "mean", "many-to-many"), 3, 4, True, 1, None),
    # sequence regression: dense, relu, one target after the last step, summed MSE, O = 2
    ("dense_relu_m2o_linear_sum", model_config(dense(3), 5, 1, "relu", 2, "linear", "sum", "many-to-one"), 3, 5, True, 2, None),
    # generation from one token through an embedding table, sigmoid head (MSE), L = 2
    (
        "embed_tanh_o2m_sigmoidhead",
        model_config(tokens(6, 3), 4, 2, "tanh", 3, "sigmoid", "mean", "one-to-many"),
        2,
        4,
        False,
        3,
        None,
    ),
    # sigmoid cell (manual loop), dense, softmax head, summed cross-entropy, L = 2
    ("dense_sigmoidcell_softmax_sum", model_config(dense(2), 3, 2, "sigmoid", 4, "softmax", "sum", "many-to-many"), 2, 3, True, 4, None),
    # sequence classification: dense, tanh, L = 3, mean cross-entropy after the last step
    ("dense_tanh_m2o_softmax_l3", model_config(dense(4), 3, 3, "tanh", 3, "softmax", "mean", "many-to-one"), 4, 3, True, 5, None),
    # sigmoid cell, plain tokens, one-to-many, linear head
    ("tokens_sigmoidcell_o2m_linear", model_config(tokens(4), 3, 1, "sigmoid", 2, "linear", "mean", "one-to-many"), 2, 3, True, 6, None),
    # nn.RNN(bias=False, bidirectional=True) on a packed ragged batch: char-LM, L = 2
    (
        "tokens_nobias_bi_ragged",
        model_config(tokens(5), 3, 2, "tanh", 5, "softmax", "mean", "many-to-many", bias=False, bidirectional=True),
        4,
        5,
        True,
        7,
        [5, 1, 3, 2],
    ),
    # bidirectional with biases, ragged, classification from h_n = [h_len ; hr_1], relu, L = 2
    (
        "dense_bi_ragged_m2o_linear",
        model_config(dense(3), 4, 2, "relu", 2, "linear", "mean", "many-to-one", bidirectional=True),
        3,
        4,
        True,
        8,
        [2, 4, 1],
    ),
    # no head bias, ragged one-to-many through an embedding table, summed loss
    (
        "embed_noheadbias_ragged_o2m",
        model_config(tokens(6, 3), 4, 1, "tanh", 3, "sigmoid", "sum", "one-to-many", head_bias=False),
        3,
        4,
        False,
        9,
        [4, 2, 1],
    ),
    # bidirectional without lengths: many-to-one reads [h_T ; hr_1], not the output at T
    (
        "embed_bi_m2o_softmax",
        model_config(tokens(7, 2), 3, 1, "tanh", 3, "softmax", "mean", "many-to-one", bidirectional=True),
        3,
        3,
        True,
        10,
        None,
    ),
]


# name, base case, wgrnn OptimConfig (serde form), seed-free: the steps reuse the base batch
def optim_cases():
    eps = r32(1e-8)
    return [
        (
            "sgd_momentum_wd",
            "charlm_tanh_l2",
            {"kind": {"name": "sgd", "momentum": r32(0.9)}, "lr": r32(0.1), "weight_decay": r32(0.01), "clip": {"norm": None, "value": None}},
        ),
        (
            "adam_clipnorm",
            "dense_relu_m2o_linear_sum",
            {
                "kind": {"name": "adam", "beta1": r32(0.9), "beta2": r32(0.999), "eps": eps},
                "lr": r32(0.01),
                "weight_decay": 0.0,
                # well below the gradient norm, so clipping is active at both steps
                "clip": {"norm": r32(0.5), "value": None},
            },
        ),
        (
            "adagrad_clipvalue",
            "embed_tanh_o2m_sigmoidhead",
            {
                "kind": {"name": "adagrad", "eps": eps},
                "lr": r32(0.1),
                "weight_decay": r32(0.001),
                # below the largest gradient elements (~0.02), so some are clipped at each step
                "clip": {"norm": None, "value": r32(0.01)},
            },
        ),
    ]


def torch_optimizer(model, oc):
    k = oc["kind"]
    wd = oc["weight_decay"]
    if k["name"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=oc["lr"], momentum=k["momentum"], weight_decay=wd)
    if k["name"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=oc["lr"], betas=(k["beta1"], k["beta2"]), eps=k["eps"], weight_decay=wd)
    # wgrnn's Adagrad eps is 1e-8 (the classic char-rnn's), PyTorch's default is 1e-10
    return torch.optim.Adagrad(model.parameters(), lr=oc["lr"], eps=k["eps"], weight_decay=wd)


def check_manual_rnn():
    """manual_rnn is nn.RNN's maths: compare them on a tanh model before trusting it for sigmoid."""
    gen = torch.Generator().manual_seed(99)
    rnn = nn.RNN(3, 4, 2, nonlinearity="tanh", batch_first=True)
    x = torch.rand((2, 5, 3), generator=gen)
    h0 = torch.rand((2, 2, 4), generator=gen)
    ref, _ = rnn(x, h0)
    diff = (manual_rnn(rnn, x, h0, torch.tanh) - ref).abs().max().item()
    assert diff < 1e-14, diff


def main():
    check_manual_rnn()
    manifest = {"generator": f"make_golden.py, torch {torch.__version__}", "cases": [], "optim": []}
    built = {}
    for name, c, B, T, with_h0, seed, lengths in CASES:
        gen = torch.Generator().manual_seed(seed)
        model = Model(c)
        init_weights(model, gen)
        batch = make_batch(c, B, T, with_h0, gen, lengths)
        built[name] = (c, B, T, {k: v.detach().clone() for k, v in model.state_dict().items()}, batch)

        loss, x0, h0 = run(model, batch, B, T)
        loss.backward()
        out = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        for k, v in batch.items():
            out[f"batch.{k}"] = v.contiguous()
        for k, p in model.named_parameters():
            out[f"grad.{k}"] = p.grad.detach().clone().contiguous()
        out["grad.dx"] = x0.grad.detach().clone().contiguous()
        if with_h0:
            out["grad.dh0"] = h0.grad.detach().clone().contiguous()
        fname = f"{name}.safetensors"
        save_file(out, os.path.join(HERE, fname))
        manifest["cases"].append(
            {"name": name, "file": fname, "config": c, "batch": B, "steps": T, "h0": with_h0, "loss": loss.item()}
        )
        print(f"{name}: loss {loss.item():.6f}")

    for name, base, oc in optim_cases():
        c, B, T, sd, batch = built[base]
        model = Model(c)
        model.load_state_dict(sd)
        opt = torch_optimizer(model, oc)
        out, losses, norms = {}, [], []
        for k in (1, 2):
            opt.zero_grad()
            loss, _, _ = run(model, batch, B, T)
            loss.backward()
            if oc["clip"]["value"] is not None:
                clipped = sum(int((p.grad.abs() > oc["clip"]["value"]).sum()) for p in model.parameters())
                norms.append(f"{clipped} elements clipped")
                nn.utils.clip_grad_value_(model.parameters(), oc["clip"]["value"])
            if oc["clip"]["norm"] is not None:
                norms.append(nn.utils.clip_grad_norm_(model.parameters(), oc["clip"]["norm"]).item())
            opt.step()
            losses.append(loss.item())
            for pn, v in model.state_dict().items():
                out[f"step{k}.{pn}"] = v.detach().clone().contiguous()
        fname = f"opt_{name}.safetensors"
        save_file(out, os.path.join(HERE, fname))
        manifest["optim"].append({"name": name, "base": base, "file": fname, "optim": oc, "losses": losses})
        print(f"{name}: losses {losses} clipping {norms}")

    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
