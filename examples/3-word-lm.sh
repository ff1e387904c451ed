#!/bin/sh
# Recipe 3: a sigmoid RNN over word embeddings (H = 256, E = 64, no biases), next-word
# softmax; words are runs of letters and digits, punctuation marks and line breaks, the
# 2000 most frequent (seen at least 5 times) kept, the rest <unk>. Needs issue #11.
set -eu
WGRNN=${WGRNN:-"cargo run --release --quiet --"}
OUT=${OUT:-examples/out}
mkdir -p "$OUT"
$WGRNN train --data data/shakespeare-tiny.txt --tokens word --min-count 5 --max-vocab 2000 \
    --activation sigmoid --hidden 256 --embed 64 --no-bias --no-head-bias \
    --seq-len 32 --batch 32 --optimizer adam --lr 0.002 \
    --steps "${STEPS:-1500}" --eval-every 500 --sample-every 0 --out "$OUT/word-lm.safetensors" --json
$WGRNN sample --checkpoint "$OUT/word-lm.safetensors" --prime "KING" --len 60 --temperature 0.8 --top-k 40
