#!/usr/bin/env bash
# Forward + backward side by side in one process (bench/train_side_by_side.py): lina.ops, fla
# 0.6.0 and SDPA on the same tensors, times and peak memory. First compiles fla's autotuned
# kernels into Triton's cache with LINA_FLA_WARM_JOBS processes side by side (default 12).
# Usage: bench/run_train_side_by_side.sh BUILD OUTDIR [OPS] [SHAPES]
set -uo pipefail
build=${1:-build-device}
out=${2:-.}
ops=${3:-}
shapes=${4:-}
export PYTHONPATH="$PWD/$build/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export LINA_CACHE_DIR=$(mktemp -d)
jobs=${LINA_FLA_WARM_JOBS:-12}
start=$(date +%s)
for i in $(seq 0 $((jobs - 1))); do
  LINA_FLA_WARM="$i/$jobs" timeout "${LINA_FLA_WARM_TIMEOUT:-300}" python3 bench/train_side_by_side.py "$ops" $shapes \
    > "$out/fla_train_warm_$i.log" 2>&1 &
done
wait
echo "fla warm-up: $jobs processes, $(( $(date +%s) - start )) s" | tee "$out/train_warm.txt"
cat "$out"/fla_train_warm_*.log >> "$out/train_warm.txt"; rm -f "$out"/fla_train_warm_*.log
timeout "${LINA_BENCH_TIMEOUT:-420}" python3 bench/train_side_by_side.py "$ops" $shapes | tee "$out/train_side_by_side.jsonl"
