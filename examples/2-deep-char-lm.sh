#!/bin/sh
# Recipe 2: a deep (L = 3) character-level language model of the bundled Shakespeare text,
# softmax cross-entropy averaged over the T steps (--reduction mean), then sampling.
set -eu
WGRNN=${WGRNN:-"cargo run --release --quiet --"}
OUT=${OUT:-examples/out}
mkdir -p "$OUT"
$WGRNN train --data data/shakespeare-tiny.txt --layers 3 --hidden 128 --activation tanh \
    --reduction mean --seq-len 64 --batch 32 --optimizer adam --lr 0.002 \
    --steps "${STEPS:-2000}" --eval-every 500 --sample-every 0 --out "$OUT/deep-char.safetensors" --json
$WGRNN sample --checkpoint "$OUT/deep-char.safetensors" --prime "ROMEO:" --len 300 --temperature 0.8
