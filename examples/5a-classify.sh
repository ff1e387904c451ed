#!/bin/sh
# Recipe 5a: a sigmoid RNN reading labelled lines (label<TAB>text) word by word, one class
# per line at its own last word (many-to-one over variable lengths), trained with Adam;
# then accuracy and per-line predictions. Needs the variable lengths of issue #11.
set -eu
WGRNN=${WGRNN:-"cargo run --release --quiet --"}
OUT=${OUT:-examples/out}
mkdir -p "$OUT"
$WGRNN train --data examples/data/sentiment.tsv --seq many-to-one --tokens word \
    --activation sigmoid --hidden 32 --embed 16 --optimizer adam --lr 0.01 --seq-len 16 --batch 32 \
    --val-fraction 0.2 --steps "${STEPS:-1500}" --eval-every 500 --out "$OUT/classify.safetensors" --json
$WGRNN eval --checkpoint "$OUT/classify.safetensors"
$WGRNN predict --checkpoint "$OUT/classify.safetensors" --data examples/data/sentiment.tsv \
    --format jsonl --out "$OUT/classify-predictions.jsonl"
