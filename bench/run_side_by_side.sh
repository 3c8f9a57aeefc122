#!/usr/bin/env bash
# Forward side by side in one process (bench/forward_side_by_side.py): lina.ops, fla 0.6.0 and
# PyTorch SDPA on the same tensors and the same GPU. First compiles fla's autotuned kernels into
# Triton's cache with LINA_FLA_WARM_JOBS processes side by side (default 12), so the timed run
# autotunes without compiling; lina starts from an empty kernel cache (its first_call_ms is cold).
# Usage: bench/run_side_by_side.sh BUILD OUTDIR [OPS]   (LINA_BENCH_SHAPES=label,...: only those shapes)
set -uo pipefail
build=${1:-build-device}
out=${2:-.}
ops=${3:-}
mkdir -p "$out"
export PYTHONPATH="$PWD/$build/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export LINA_CACHE_DIR=$(mktemp -d)
jobs=${LINA_FLA_WARM_JOBS:-12}
start=$(date +%s)
for i in $(seq 0 $((jobs - 1))); do
  LINA_FLA_WARM="$i/$jobs" timeout "${LINA_FLA_WARM_TIMEOUT:-300}" python3 bench/forward_side_by_side.py $ops \
    > "$out/fla_warm_$i.log" 2>&1 &
done
wait
echo "fla warm-up: $jobs processes, $(( $(date +%s) - start )) s" | tee "$out/warm.txt"
cat "$out"/fla_warm_*.log >> "$out/warm.txt"; rm -f "$out"/fla_warm_*.log
timeout "${LINA_BENCH_TIMEOUT:-420}" python3 bench/forward_side_by_side.py $ops | tee "$out/side_by_side.jsonl"
