#!/usr/bin/env bash
# Sets up, builds and runs the end-to-end demo on the embedded standard library: every program is
# compiled through the whole pipeline, its kernels are compiled with NVRTC, and it runs on the GPU
# against the reference interpreter when a GPU is present, otherwise on the CPU reference
# (forward and backward, checked by finite differences).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
cmake --preset default -DPython_EXECUTABLE=/usr/bin/python3 >/dev/null  # Debian's, with the packages setup.sh installs
cmake --build --preset default -j "$(nproc)"
linac=build/tools/linac/linac
gpu=0
if "$linac" check library/ops/gla.lina --shape 1,8,1 --dims K=64,V=64 >/dev/null 2>&1; then gpu=1; fi
for op in gla simple_gla retention gsa; do
  src=library/ops/$op.lina
  m=""; [ "$op" = gsa ] && m=",M=64"  # only GSA has slots; linac rejects dims a program lacks
  echo "==================== $src"
  "$linac" "$src" --time-passes | grep '// time'
  "$linac" "$src"
  "$linac" compile "$src" --arch sm_90a --dims K=128,V=128$m
  if [ "$gpu" = 1 ]; then
    "$linac" check "$src" --shape 2,1000,4 --dims K=128,V=128$m --dtype bf16 --initial-state
    "$linac" check "$src" --shape 1,0,4 --varlen 0,0,37,400,1000 --dims K=64,V=64${m:+,M=32} --dtype fp32 --initial-state
  else
    "$linac" run-reference "$src" --shape 2,100,4 --dims K=64,V=64${m:+,M=32} --initial-state --seed 1
    "$linac" run-reference "$src" --shape 1,0,4 --varlen 0,37,37,100 --dims K=64,V=64${m:+,M=32} --seed 2
    "$linac" run-reference "$src" --shape 1,6,2 --dims K=4,V=3${m:+,M=2} --initial-state --backward --fd | tail -1
  fi
done
# A model from a shipped config: a random GLA checkpoint in fla's layout, then greedy generation
# on the CPU (lina-run; the GPU engine is not built yet).
echo "==================== lina-run (library/models/gla-tiny.json)"
model=$(mktemp -d)
build/tools/lina-run/lina-run --init library/models/gla-tiny.json --out "$model" --seed 1
build/tools/lina-run/lina-run --model "$model" --token-ids 1,17,42,99 --max-new-tokens 16
rm -rf "$model"
# lina.models on torch: a Llama-layout checkpoint (a tiny random Mistral) converted to GLA,
# fine-tuned on packed documents, and generated from (.venv-torch from PyPI; LINA_SKIP_TORCH=1 skips).
scripts/setup_torch.sh || echo "setup_torch: failed; skipping the torch example"
if [ -x .venv-torch/bin/python ]; then
  echo "==================== convert, fine-tune, generate (examples/convert_and_finetune.sh)"
  LINA_EXAMPLE_DIR=$(mktemp -d) examples/convert_and_finetune.sh "" 20
fi
if [ "$gpu" = 1 ]; then echo "demo: the standard library compiled, ran on the GPU and matched the reference; a GLA model generated on the CPU"
else echo "demo: no GPU here: the standard library compiled (RIR, CUDA, NVRTC cubins) and ran on the CPU reference; a GLA model generated on the CPU"; fi
