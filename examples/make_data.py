#!/usr/bin/env python3
"""Writes the generated data files of the recipes in examples/data/ (standard library only,
deterministic: the same bytes on every run). Run from the repository root:
    python3 examples/make_data.py
"""
import math
import random

rng = random.Random(12)


def pick(items):
    return items[int(rng.random() * len(items))]


# 1. A series for the regression RNN: y_t depends on x_t and the two inputs before it, so
#    a model needs its state; predicting 0 gives half-MSE = mean(y^2) / 2.
with open("examples/data/series.csv", "w") as f:
    f.write("x,y\n")
    xs = [0.0, 0.0]
    for t in range(600):
        x = math.sin(0.37 * t) * math.cos(0.11 * t) + 0.3 * (rng.random() - 0.5)
        xs.append(x)
        y = 0.5 * xs[-1] + 0.4 * xs[-2] - 0.3 * xs[-3]
        f.write(f"{x:.4f},{y:.4f}\n")

# 5a. Labelled lines for sentiment-style classification: one sentiment word decides the
#     label, flipped by a "not" right before it, so word order matters.
POS = ["good", "great", "lovely", "superb", "charming", "moving", "clever", "bright"]
NEG = ["bad", "awful", "dull", "poor", "tedious", "clumsy", "bleak", "weak"]
FILL = ["the", "film", "was", "a", "very", "plot", "and", "it", "really", "story",
        "acting", "quite", "ending", "cast", "so", "music"]
with open("examples/data/sentiment.tsv", "w") as f:
    for _ in range(500):
        label = pick(["pos", "neg"])
        negate = rng.random() < 0.3
        word = pick(POS if (label == "pos") != negate else NEG)
        words = [pick(FILL) for _ in range(2 + int(rng.random() * 7))]
        at = int(rng.random() * (len(words) + 1))
        words[at:at] = (["not"] if negate else []) + [word]
        f.write(f"{label}\t{' '.join(words)}\n")

# 5b. One-to-many: two features (amplitude a, frequency w) -> 12 steps of a sin(w (s + 1));
#     predicting 0 gives MSE = mean(y^2).
with open("examples/data/waves.csv", "w") as f:
    for _ in range(240):
        a = 0.3 + 0.7 * rng.random()
        w = 0.2 + 0.6 * rng.random()
        ys = [a * math.sin(w * (s + 1)) for s in range(12)]
        f.write(",".join([f"{a:.3f}", f"{w:.3f}"] + [f"{y:.3f}" for y in ys]) + "\n")
