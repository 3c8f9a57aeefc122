#!/usr/bin/env bash
# One device call, for when device time allows only one: build; then, side by side, fla's Triton
# warm-up (fwd+bwd kernels into Triton's cache) and the register-tile backward's GPU checks; then
# lina.ops against fla 0.6.0 and SDPA, fwd+bwd time and peak memory in one process
# (bench/train_side_by_side.py); then lina-bench rows (the register-tile backward, the derived
# passes at one shape, GSA's forward) and the tuner's GPU test.
# Usage on the GPU machine, from the repository root: bench/run_kir_backward_vs_fla.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
start=$(date +%s)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" >> "$out/device.txt" 2>&1
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl > /dev/null 2>&1
export PYTHONPATH="$PWD/$build/python:/tmp/site" PYTHONUNBUFFERED=1
export LINA_CACHE_DIR=$(mktemp -d)
ops=${LINA_TRAIN_OPS:-gla,simple_gla,retention,sdpa}
shapes=${LINA_TRAIN_SHAPES:-B4_T4096_H64_D128,B8_T2048_H16_D128}
jobs=${LINA_FLA_WARM_JOBS:-8}
for i in $(seq 0 $((jobs - 1))); do
  LINA_FLA_WARM="$i/$jobs" timeout "${LINA_FLA_WARM_TIMEOUT:-200}" python3 bench/train_side_by_side.py "$ops" "$shapes" \
    > "$out/fla_warm_$i.log" 2>&1 &
done
LINA_SUITE_JOBS=8 LINA_SUITE_TIMEOUT=150 timeout 170 scripts/device_backward_suite.sh "$out/kir_backward" "$build" \
  'Library/RegisterTileBackward.*' > "$out/kir_backward_suite.txt" 2>&1
wait
cat "$out"/fla_warm_*.log > "$out/fla_warm.txt"; rm -f "$out"/fla_warm_*.log
head -30 "$out/kir_backward_suite.txt"
echo "checks + fla warm-up: $(( $(date +%s) - start )) s"
timeout "${LINA_BENCH_TIMEOUT:-180}" python3 bench/train_side_by_side.py "$ops" "$shapes" | tee "$out/train_side_by_side.jsonl"
echo "side by side: $(( $(date +%s) - start )) s"
bench="$build/tools/lina-bench/lina-bench"
{
  for op in gla simple_gla retention; do
    timeout 40 "$bench" --op $op --shape 2,16384,16 --dims K=128,V=128 --reps 10 --backward
    timeout 40 "$bench" --op $op --shape 8,2048,16 --dims K=128,V=128 --reps 5 --backward --kernels simt | sed 's/^{/{"kernels": "simt", /'
  done
  for shape in 4,4096,64 8,2048,16; do
    for k in register simt; do
      timeout 40 "$bench" --op gsa --shape $shape --dims K=128,V=128,M=64 --reps 10 --kernels $k | sed "s/^{/{\"kernels\": \"$k\", /"
    done
  done
} 2>&1 | tee "$out/lina_bench.jsonl" | cut -c1-330
echo "lina-bench: $(( $(date +%s) - start )) s"
timeout 60 "$build/tests/gpu/lina_gpu_tuner_tests" > "$out/tuner_test.txt" 2>&1
echo "tuner test: exit $? ($(grep -c '^\[       OK' "$out/tuner_test.txt") ok)"
echo "total: $(( $(date +%s) - start )) s"
