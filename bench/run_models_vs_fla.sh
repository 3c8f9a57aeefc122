#!/usr/bin/env bash
# One device call for #18: lina.models beside fla 0.6.0's HF classes (bench/models_vs_fla.py):
# parity of logits and gradients for GLA/RetNet/GSA/RWKV6, converted Mistral -> GLA/GSA in fla's
# classes, a fine-tune of a converted model, and training tokens/s on both.
# Wheels: shared/device/prep.sh fla, then bench/fetch_model_wheels.sh (transformers & co.).
# Usage on the GPU machine: bench/run_models_vs_fla.sh OUTDIR [STEPS]
set -uo pipefail
out=${1:?output directory}
steps=${2:-300}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv > "$out/device.txt" 2>&1
cat "$out/device.txt"
export LINA_BUILD_TARGETS="_lina"
scripts/device_build.sh build-device > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl > "$out/pip.log" 2>&1 || tail -5 "$out/pip.log"
export PYTHONPATH=/tmp/site:$PWD/build-device/python
timeout ${LINA_MODELS_TIMEOUT:-480} python3 bench/models_vs_fla.py "$out/run" --steps "$steps" > "$out/rows.jsonl" 2> "$out/stderr.txt"
echo "rc=$?"
cat "$out/rows.jsonl"
tail -20 "$out/stderr.txt"
