#!/bin/sh
# Recipe 4: the min-char-rnn setting: tanh cell and softmax head with biases, H = 100,
# T = 25, one stream (B = 1) whose state is carried across windows, the loss summed over
# the window, Adagrad (lr 0.1), gradients clipped to [-5, 5]; then sampling.
set -eu
WGRNN=${WGRNN:-"cargo run --release --quiet --"}
OUT=${OUT:-examples/out}
mkdir -p "$OUT"
$WGRNN train --data data/shakespeare-tiny.txt --hidden 100 --activation tanh --seq-len 25 --batch 1 \
    --stateful --reduction sum --optimizer adagrad --lr 0.1 --clip-norm 0 --clip-value 5 \
    --steps "${STEPS:-50000}" --eval-every 10000 --sample-every 0 --out "$OUT/min-char-rnn.safetensors" --json
$WGRNN sample --checkpoint "$OUT/min-char-rnn.safetensors" --len 300 --temperature 1
