#!/usr/bin/env bash
# One device call for #20 and #18: fla's layers and 340M models unpatched and through
# lina.patch_fla() (bench/fla_patch_vs_fla.py), then lina.models beside fla's HF classes
# (bench/models_vs_fla.py) with what time is left. Wheels: shared/device/prep.sh fla, then
# bench/fetch_model_wheels.sh. Usage on the GPU machine: bench/run_dropin_and_models_vs_fla.sh OUTDIR [STEPS]
set -uo pipefail
out=${1:?output directory}
steps=${2:-100}
budget=${LINA_CALL_SECONDS:-540}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv > "$out/device.txt" 2>&1
cat "$out/device.txt"
export LINA_BUILD_TARGETS="_lina"
scripts/device_build.sh build-device > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl > "$out/pip.log" 2>&1 || tail -5 "$out/pip.log"
export PYTHONPATH=/tmp/site:$PWD/build-device/python
echo "build: $(elapsed) s"
timeout ${LINA_PATCH_TIMEOUT:-300} python3 bench/fla_patch_vs_fla.py > "$out/patch_rows.jsonl" 2> "$out/patch_stderr.txt"
echo "patch rc=$? at $(elapsed) s"
cat "$out/patch_rows.jsonl"
grep -E "Error|error" "$out/patch_stderr.txt" | sort | uniq -c | head -10
left=$(( budget - $(elapsed) - 10 ))
if [ "$left" -gt 60 ]; then
  timeout "$left" python3 bench/models_vs_fla.py "$out/models" --steps "$steps" > "$out/models_rows.jsonl" 2> "$out/models_stderr.txt"
  echo "models rc=$? at $(elapsed) s"
  cat "$out/models_rows.jsonl"
  tail -5 "$out/models_stderr.txt"
else
  echo "models: no time left ($left s)"
fi
echo "total: $(elapsed) s"
