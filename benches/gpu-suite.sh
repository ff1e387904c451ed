#!/usr/bin/env bash
# The GPU benchmark suite (issue 10): one command, no arguments, at most ~8 minutes on a
# real GPU. It runs `wgrnn info`; `wgrnn check` on three configurations; the GEMM ladder
# (C = A·B^T, N = 1024 / 2048 / 4096) on every matrix-product kernel; workloads A–E, G and
# the large-batch L (BENCHMARKS.md), training and --infer, each with the tuner (--tune quick,
# the default) and with --tune off. It writes JSON lines and prints a summary table:
# GFLOP/s, % of the best GEMM, tokens/s, dispatches per step, the recurrence and the matrix-
# product kernels chosen.
#
#   benches/gpu-suite.sh            the suite, on the adapter --device gpu opens
#   benches/gpu-suite.sh --quick    smaller sizes: under 3 minutes on lavapipe
#   benches/gpu-suite.sh --smoke    tiny sizes, seconds (tests/gpu_suite.rs runs it in CI)
#   --out DIR                       where the results go [default: ./gpu-suite-<date>-<time>]
#
# WGRNN=path/to/wgrnn runs that binary (default: cargo build --release first). WGRNN_ADAPTER,
# WGRNN_BACKEND and WGRNN_CACHE_DIR pass through; the tuner's cache is the user's, so a second
# run reuses the first one's choices. Needs python3 for the summary (the JSON lines do not).
# Exit status: non-zero when a check fails or a command errs (the others still run).
set -uo pipefail
cd "$(dirname "$0")/.."

size=full
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) size=quick ;;
    --smoke) size=smoke ;;
    --out) out="$2"; shift ;;
    *) echo "usage: benches/gpu-suite.sh [--quick | --smoke] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "${WGRNN:-}" ]; then cargo build --release --quiet || exit 1; fi
W=${WGRNN:-./target/release/wgrnn}
out=${out:-gpu-suite-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out" || exit 1
jsonl="$out/suite.jsonl"
: > "$jsonl"
status=0

# one JSON line: what ran, then the command's own JSON
record() { # part name tune mode json
  printf '{"part":"%s","name":"%s","tune":"%s","mode":"%s","size":"%s","result":%s}\n' \
    "$1" "$2" "$3" "$4" "$size" "$5" >> "$jsonl"
}
run() { # part name tune mode -- command...
  local part=$1 name=$2 tune=$3 mode=$4; shift 5
  local res
  if res=$("$W" "$@" 2> "$out/last-stderr.txt"); then
    record "$part" "$name" "$tune" "$mode" "$res"
  else
    # `check` prints its JSON and fails when a bound is broken; anything else is an error
    status=1
    if [ -n "$res" ] && [ "$part" = check ]; then
      record "$part" "$name" "$tune" "$mode" "$res"
    fi
    echo "FAILED: wgrnn $*: $(tail -n 1 "$out/last-stderr.txt")" >&2
  fi
}

# Sizes: ladder, timed steps (warm-up steps include the tuning), and the workloads' batch
# and sequence lengths (the full suite: BENCHMARKS.md's; quick and smoke shrink B and T,
# keeping the layer sizes, except smoke, which shrinks everything).
case $size in
  full) ladder="1024 2048 4096"; gemm_steps=3; steps="--steps 5 --warmup 2"; big_steps="--steps 2 --warmup 1" ;;
  quick) ladder="256 512"; gemm_steps=1; steps="--steps 2 --warmup 1"; big_steps=$steps ;;
  smoke) ladder="64"; gemm_steps=1; steps="--steps 1 --warmup 0"; big_steps="--steps 1 --warmup 0" ;;
esac
workload() { # name -> bench flags
  case "$size:$1" in
    full:A)  echo "--vocab 65 --embed 256 --hidden 256 --layers 1 --seq-len 64 --batch 64" ;;
    full:B)  echo "--vocab 65 --embed 512 --hidden 512 --layers 1 --seq-len 64 --batch 256" ;;
    full:C)  echo "--vocab 65 --embed 256 --hidden 256 --layers 3 --seq-len 64 --batch 64" ;;
    full:D)  echo "--vocab 65 --embed 128 --hidden 128 --layers 1 --seq-len 512 --batch 32" ;;
    full:E)  echo "--input-size 8 --output-size 1 --loss mse --hidden 128 --layers 1 --seq-len 100 --batch 128" ;;
    full:G)  echo "--vocab 65 --embed 256 --hidden 256 --layers 1 --seq-len 32 --batch 128" ;;
    full:L)  echo "--vocab 65 --embed 1024 --hidden 1024 --layers 2 --seq-len 64 --batch 4096" ;;
    quick:A) echo "--vocab 65 --embed 256 --hidden 256 --layers 1 --seq-len 32 --batch 16" ;;
    quick:B) echo "--vocab 65 --embed 512 --hidden 512 --layers 1 --seq-len 32 --batch 64" ;;
    quick:C) echo "--vocab 65 --embed 256 --hidden 256 --layers 3 --seq-len 32 --batch 16" ;;
    quick:D) echo "--vocab 65 --embed 128 --hidden 128 --layers 1 --seq-len 128 --batch 8" ;;
    quick:E) echo "--input-size 8 --output-size 1 --loss mse --hidden 128 --layers 1 --seq-len 50 --batch 32" ;;
    quick:G) echo "--vocab 65 --embed 256 --hidden 256 --layers 1 --seq-len 32 --batch 32" ;;
    quick:L) echo "--vocab 65 --embed 1024 --hidden 1024 --layers 2 --seq-len 8 --batch 16" ;;
    smoke:A) echo "--vocab 11 --embed 8 --hidden 8 --layers 1 --seq-len 4 --batch 3" ;;
    smoke:E) echo "--input-size 3 --output-size 1 --loss mse --hidden 6 --layers 1 --seq-len 5 --batch 2" ;;
  esac
}
if [ $size = smoke ]; then names="A E"; checks="tanh"; else names="A B C D E G L"; checks="tanh relu mse"; fi

"$W" info > "$out/info.txt" 2>&1 || status=1
cat "$out/info.txt"

for c in $checks; do
  case $c in
    tanh) args="--hidden 33 --layers 2 --embed 7 --batch 5 --seq-len 9 --steps 3" ;;
    relu) args="--hidden 70 --layers 1 --activation relu --init irnn --batch 3 --seq-len 17 --steps 3" ;;
    mse) args="--hidden 20 --layers 2 --head linear --output-size 3 --input-size 4 --seq many-to-one --batch 6 --seq-len 11 --steps 3" ;;
  esac
  [ $size = smoke ] && args="--hidden 5 --batch 2 --seq-len 3 --steps 1"
  # shellcheck disable=SC2086
  run check "$c" quick train -- check $args --json
done

for n in $ladder; do
  run gemm "$n" - - -- bench --device gpu --gemm "$n" --steps "$gemm_steps" --json
done

for name in $names; do
  flags=$(workload "$name")
  s=$steps; [ "$name" = L ] && s=$big_steps
  for tune in quick off; do
    for mode in train infer; do
      inf=""; [ $mode = infer ] && inf="--infer"
      # shellcheck disable=SC2086
      run workload "$name" "$tune" "$mode" -- bench --device gpu $flags $s --tune "$tune" $inf --json
    done
  done
done

if command -v python3 > /dev/null; then
  python3 - "$jsonl" <<'PY' | tee "$out/summary.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
device = next((r["result"][0]["device"] for r in rows if r["part"] == "gemm"), "?")
print(f"\nGPU suite ({rows[0]['size'] if rows else '?'}) on {device}")

gemm = {}  # kernel -> {n: gflops}
for r in rows:
    if r["part"] == "gemm":
        for g in r["result"]:
            gemm.setdefault(g["kernel"], {})[g["n"]] = g["gflops"]
sizes = sorted({n for v in gemm.values() for n in v})
best = max((v for k in gemm.values() for v in k.values()), default=0.0)
if gemm:
    print("\nGEMM C = A·B^T, GFLOP/s (% of the best GEMM measured)")
    print(f"{'kernel':<10}" + "".join(f"{'N=' + str(n):>18}" for n in sizes))
    for k, v in gemm.items():
        cells = "".join(f"{v[n]:>10.1f} ({100 * v[n] / best:3.0f}%)" if n in v else f"{'-':>18}" for n in sizes)
        print(f"{k:<10}{cells}")
    print(f"best GEMM: {best:.1f} GFLOP/s")

work = [r for r in rows if r["part"] == "workload"]
if work:
    print("\nworkloads: tokens/s, GFLOP/s, % of the best GEMM, dispatches per step; tuned/off = speed-up of --tune quick over --tune off")
    print(f"{'wl':<3} {'mode':<6} {'tune':<6} {'tokens/s':>12} {'GFLOP/s':>9} {'% GEMM':>7} {'disp':>6} {'tuned/off':>9}  {'recurrence':<12} matmul kernels")
    speed = {(r["name"], r["mode"], r["tune"]): r["result"]["tokens_per_s"] for r in work}
    for r in work:
        res = r["result"]
        ks = res.get("kernels", {}).get("matmul", {})
        used = ", ".join(f"{k} ×{list(ks.values()).count(k)}" for k in sorted(set(ks.values())))
        off = speed.get((r["name"], r["mode"], "off"))
        ratio = f"{res['tokens_per_s'] / off:9.2f}" if r["tune"] != "off" and off else f"{'':>9}"
        pct = 100 * res["gflops"] / best if best else 0.0
        print(f"{r['name']:<3} {r['mode']:<6} {r['tune']:<6} {res['tokens_per_s']:>12.0f} {res['gflops']:>9.2f} "
              f"{pct:>6.0f}% {res.get('dispatches_per_step', 0):>6} {ratio}  {res.get('recurrence', '-'):<12} {used}")

checks = [r for r in rows if r["part"] == "check"]
if checks:
    good = sum(1 for r in checks if r["result"]["ok"])
    print(f"\ncheck (GPU vs CPU, SPEC §5): {good}/{len(checks)} configurations within bounds")
PY
else
  echo "python3 not found: no summary table; the results are in $jsonl"
fi
echo "results: $jsonl"
exit $status
