#!/usr/bin/env bash
# CPU path vs PyTorch on the issue-5 workloads, run back to back so both see the same
# machine load. Needs python3 with torch. Usage: benches/compare_cpu.sh [A B C D E] [--infer]
# WGRNN=path/to/wgrnn times another build (e.g. a copy of an older commit's binary) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${WGRNN:-}" ]; then cargo build --release --quiet; fi
W=${WGRNN:-./target/release/wgrnn}
infer=""; names=()
for a in "$@"; do if [ "$a" = "--infer" ]; then infer="--infer"; else names+=("$a"); fi; done
[ ${#names[@]} -gt 0 ] || names=(A B C D E)
args() {
  case "$1" in
    A) echo "--vocab 65 --embed 256 --hidden 256 --layers 1 --seq-len 64 --batch 64" ;;
    B) echo "--vocab 65 --embed 512 --hidden 512 --layers 1 --seq-len 64 --batch 256 --steps 5" ;;
    C) echo "--vocab 65 --embed 256 --hidden 256 --layers 3 --seq-len 64 --batch 64" ;;
    D) echo "--vocab 65 --embed 128 --hidden 128 --layers 1 --seq-len 512 --batch 32" ;;
    E) echo "--input-size 8 --output-size 1 --loss mse --hidden 128 --layers 1 --seq-len 100 --batch 128" ;;
  esac
}
printf "%-3s %-6s %12s %12s %12s %7s\n" wl mode wgrnn_tok/s torch_tok/s wgrnn_GFLOP/s ratio
for n in "${names[@]}"; do
  # shellcheck disable=SC2046
  w=$($W bench --device cpu $(args "$n") $infer --json)
  t=$(python3 benches/pytorch_rnn.py "$n" $infer)
  python3 - "$n" "$w" "$t" <<'PY'
import json, sys
n, w, t = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{n:<3} {w['mode']:<6} {w['tokens_per_s']:12.0f} {t['tokens_per_s']:12.0f} {w['gflops']:12.1f} {w['tokens_per_s']/t['tokens_per_s']:7.2f}")
PY
done
