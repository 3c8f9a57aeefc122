#!/usr/bin/env bash
# One device call, diagnostics before fixes: (1) where lina-run and fla's HF model part ways in
# fp32 (bench/parity_layers.py, GLA and RetNet 340M, random weights from lina-run --init);
# (2) gradient accuracy of lina.ops (auto / register tiles) and fla on the same bf16 inputs
# (bench/grad_accuracy_vs_fla.py); (3) the per-kernel time of lina-run's decode step at batch 1
# (Nsight Compute, --graphs 0, summed per kernel name over 2 steps).
# Usage on the GPU machine, from the repository root: bench/run_parity_and_accuracy.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
start=$(date +%s)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
export LINA_BUILD_TARGETS=${LINA_BUILD_TARGETS:-"lina-run _lina"}
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl > /dev/null 2>&1
export PYTHONPATH="$PWD/$build/python:/tmp/site" PYTHONUNBUFFERED=1
export LINA_CACHE_DIR=$(mktemp -d)
run=$build/tools/lina-run/lina-run
for m in gla retnet; do $run --init library/models/$m-340M.json --out /tmp/$m-340M --seed 1 > /dev/null 2>&1 & done
wait
jobs=${LINA_FLA_WARM_JOBS:-4}
for i in $(seq 0 $((jobs - 1))); do
  LINA_FLA_WARM="$i/$jobs" timeout 240 python3 bench/grad_accuracy_vs_fla.py > "$out/grad_warm_$i.log" 2>&1 &
done
for m in gla retnet; do
  timeout 300 python3 bench/parity_layers.py /tmp/$m-340M $run > "$out/parity_$m.jsonl" 2> "$out/parity_$m.err" &
done
wait
cat "$out"/parity_*.jsonl; tail -3 "$out"/parity_*.err
echo "parity + warm: $(( $(date +%s) - start )) s"
timeout 200 python3 bench/grad_accuracy_vs_fla.py 2> "$out/grad_accuracy.err" | tee "$out/grad_accuracy.jsonl"
tail -3 "$out/grad_accuracy.err"
echo "accuracy: $(( $(date +%s) - start )) s"
ids=$(python3 -c "import random; random.seed(0); print(','.join(str(random.randrange(3, 32000)) for _ in range(128)))")
timeout 60 $run --model /tmp/gla-340M --token-ids "$ids" --max-new-tokens 8 --graphs 0 --stop-at-eos 0 > /dev/null 2>&1
# Launches per decode step: count them from a run of 4 and of 6 new tokens' kernel totals.
timeout 150 ncu --csv --metrics gpu__time_duration.sum --launch-skip 600 --launch-count 600 \
  $run --model /tmp/gla-340M --token-ids "$ids" --max-new-tokens 8 --graphs 0 --stop-at-eos 0 > "$out/ncu_decode.csv" 2> "$out/ncu.err"
python3 bench/ncu_kernel_times.py "$out/ncu_decode.csv"
tail -3 "$out/ncu.err"
echo "total: $(( $(date +%s) - start )) s"
