#!/bin/sh
# Recipe 5b: one-to-many generation: two features (amplitude, frequency) in at the first
# step, a 12-step wave out, tanh cell, linear head, MSE, SGD with momentum; then the
# generated sequences.
set -eu
WGRNN=${WGRNN:-"cargo run --release --quiet --"}
OUT=${OUT:-examples/out}
mkdir -p "$OUT"
$WGRNN train --data examples/data/waves.csv --seq one-to-many --input-size 2 --seq-len 12 \
    --head linear --activation tanh --hidden 32 --optimizer sgd --lr 0.05 --momentum 0.9 --batch 16 \
    --steps "${STEPS:-3000}" --eval-every 500 --out "$OUT/one-to-many.safetensors" --json
$WGRNN predict --checkpoint "$OUT/one-to-many.safetensors" --data examples/data/waves.csv \
    --out "$OUT/one-to-many-predictions.csv"
