#!/bin/sh
# Recipe 1: a regression RNN predicting y_t from x_t (and, through its state, the inputs
# before it): tanh cell, h0 = 0, no biases, half-MSE J_t = ½(ŷ_t − y_t)², plain SGD, on the
# generated series examples/data/series.csv. Needs the bias-free models of issue #11.
set -eu
WGRNN=${WGRNN:-"cargo run --release --quiet --"}
OUT=${OUT:-examples/out}
mkdir -p "$OUT"
$WGRNN train --data examples/data/series.csv --input-cols x --target-cols y --target-shift 0 \
    --head linear --loss half-mse --activation tanh --no-bias --no-head-bias \
    --optimizer sgd --lr 0.1 --clip-norm 0 --hidden 16 --seq-len 25 --batch 16 \
    --steps "${STEPS:-2000}" --eval-every 500 --out "$OUT/regression.safetensors" --json
$WGRNN predict --checkpoint "$OUT/regression.safetensors" --data examples/data/series.csv \
    --out "$OUT/regression-predictions.csv"
