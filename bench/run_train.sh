#!/usr/bin/env bash
# Side-by-side forward + backward benchmark in one run on the GPU machine: lina (lina-bench
# --backward) and fla + PyTorch SDPA (fla_train.py), same shapes, same device.
# Usage: bench/run_train.sh BUILD OUTDIR   (LINA_BENCH_SKIP_FLA=1: lina only; LINA_OPS="gla gsa" and
# LINA_FLA_OPS=gla,gsa,sdpa pick the ops of each side; LINA_FLA_TIMEOUT bounds fla's autotuning)
set -uo pipefail
build=${1:-build}
out=${2:-.}
export LINA_CACHE_DIR=$(mktemp -d)
# LINA_FLA_WARM_JOBS=N: first compile fla's kernels into Triton's cache with N processes side by
# side (bench/fla_train.py, LINA_FLA_WARM), so the timed run below autotunes without compiling.
if [ "${LINA_BENCH_SKIP_FLA:-0}" != 1 ] && [ -n "${LINA_FLA_WARM_JOBS:-}" ]; then
  for i in $(seq 0 $((LINA_FLA_WARM_JOBS - 1))); do
    LINA_FLA_WARM="$i/$LINA_FLA_WARM_JOBS" timeout "${LINA_FLA_WARM_TIMEOUT:-300}" \
      python3 bench/fla_train.py ${LINA_FLA_OPS:-} > "$out/fla_warm_$i.log" 2>&1 &
  done
  wait
  cat "$out"/fla_warm_*.log > "$out/fla_warm.jsonl"; rm -f "$out"/fla_warm_*.log
fi
for shape in "4,4096,64" "8,2048,16"; do
  for op in ${LINA_OPS:-gla simple_gla retention gsa}; do
    dims=K=128,V=128
    [ "$op" = gsa ] && dims=$dims,M=64
    "$build/tools/lina-bench/lina-bench" --op "$op" --shape "$shape" --dims "$dims" --reps 10 --backward
  done
done | tee "$out/lina_train.jsonl"
[ "${LINA_BENCH_SKIP_FLA:-0}" = 1 ] || timeout "${LINA_FLA_TIMEOUT:-480}" python3 bench/fla_train.py ${LINA_FLA_OPS:-} | tee "$out/fla_train.jsonl"
