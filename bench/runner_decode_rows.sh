#!/usr/bin/env bash
# The model runner's GPU tests and lina-run's decode rows on a random GLA-340M (128-token prompt,
# 256 new tokens; batch 1 and 4 with lina's GEMV and with cuBLAS, batch 32), each row after a short
# untimed run that fills the kernel cache. Called by the device scripts after their build.
# Usage: bench/runner_decode_rows.sh BUILD OUTDIR
set -uo pipefail
build=${1:?build directory}
out=${2:?output directory}
run=$build/tools/lina-run/lina-run
$run --init library/models/gla-340M.json --out /tmp/gla-340M --seed 1 > /dev/null 2>&1 &
LINA_GPU_LOG=$out/model_runner_checks.log timeout 200 "$build/tests/gpu/lina_gpu_model_tests" > "$out/model_runner_tests.txt" 2>&1
wait
grep -E "^\[  (FAILED|     OK|  SKIPPED) |Failure" "$out/model_runner_tests.txt" | head -20
short=$(python3 -c "import random; random.seed(0); print(','.join(str(random.randrange(3, 32000)) for _ in range(128)))")
for b in 1 4 32; do timeout 60 $run --model /tmp/gla-340M --token-ids $short --batch $b --max-new-tokens 3 > /dev/null 2>&1; done
{
  echo "== gla-340M"
  for args in "--max-new-tokens 256" "--max-new-tokens 256 --gemv 0" "--batch 4 --max-new-tokens 256" \
              "--batch 4 --max-new-tokens 256 --gemv 0" "--batch 32 --max-new-tokens 256"; do
    echo "-- $args"; timeout 60 $run --model /tmp/gla-340M --token-ids $short $args --stop-at-eos 0 | tail -1
  done
} 2>&1 | tee "$out/lina_run.txt"
