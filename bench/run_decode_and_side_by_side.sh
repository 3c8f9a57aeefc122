#!/usr/bin/env bash
# One device call: the model runner's GPU tests and lina-run's decode rows on a random GLA-340M,
# then the forward side by side against fla 0.6.0 and SDPA (bench/run_side_by_side.sh).
# Usage on the GPU machine, from the repository root: bench/run_decode_and_side_by_side.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
start=$(date +%s)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
cat "$out/device.txt"
export LINA_BUILD_TARGETS="lina-run lina_gpu_model_tests _lina"
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl > /dev/null 2>&1
export PYTHONPATH=/tmp/site
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/device.txt"
export LINA_CACHE_DIR=$(mktemp -d)
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
echo "runner: $(( $(date +%s) - start )) s"
left=$(( ${LINA_CALL_SECONDS:-570} - ($(date +%s) - start) ))
LINA_FLA_WARM_JOBS=${LINA_FLA_WARM_JOBS:-14} LINA_FLA_WARM_TIMEOUT=${LINA_FLA_WARM_TIMEOUT:-200} \
  LINA_BENCH_TIMEOUT=$(( left - 220 )) bench/run_side_by_side.sh "$build" "$out" > /dev/null 2>&1
head -1 "$out/warm.txt"
python3 - "$out/side_by_side.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if not line.startswith("{"): continue
    r = json.loads(line)
    print({k: r[k] for k in r if k in ("op", "shape", "lina_ms", "fla_ms", "speedup_vs_fla", "sdpa_ms", "roofline_fraction", "rel_diff_vs_fla")})
PY
echo "total: $(( $(date +%s) - start )) s"
