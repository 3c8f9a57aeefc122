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
# on the CPU (lina-run; on a GPU machine `--device cuda` runs the GPU engine).
echo "==================== lina-run (library/models/gla-tiny.json)"
model=$(mktemp -d)
build/tools/lina-run/lina-run --init library/models/gla-tiny.json --out "$model" --seed 1
build/tools/lina-run/lina-run --model "$model" --token-ids 1,17,42,99 --max-new-tokens 16
rm -rf "$model"
# RWKV6 from its shipped config on the same CPU engine.
echo "==================== lina-run (library/models/rwkv6-tiny.json)"
model=$(mktemp -d)
build/tools/lina-run/lina-run --init library/models/rwkv6-tiny.json --out "$model" --seed 1
build/tools/lina-run/lina-run --model "$model" --token-ids 1,17,42,99 --max-new-tokens 16 --device cpu
rm -rf "$model"
# The LLVM CPU backend (where llvm-14-dev is installed): GLA's fused kernel compiled for this CPU.
if "$linac" library/ops/gla.lina --emit=llvm --dims K=64,V=64 > /tmp/lina-demo-gla.ll 2>/dev/null; then
  echo "==================== linac --emit=llvm (GLA, fused chunk 16, for this CPU)"
  head -1 /tmp/lina-demo-gla.ll
  echo "$(grep -c '<8 x float>' /tmp/lina-demo-gla.ll) vectorised <8 x float> instructions"
fi
# lina.models on torch: a Llama-layout checkpoint (a tiny random Mistral) converted to GLA,
# fine-tuned on packed documents, and generated from (.venv-torch from PyPI; LINA_SKIP_TORCH=1 skips).
scripts/setup_torch.sh || echo "setup_torch: failed; skipping the torch example"
if [ -x .venv-torch/bin/python ]; then
  echo "==================== convert, fine-tune, generate (examples/convert_and_finetune.sh)"
  LINA_EXAMPLE_DIR=$(mktemp -d) examples/convert_and_finetune.sh "" 20
  # fla's own GLA layer run on lina's kernels (lina.patch_fla; the CPU tensors take the LLVM backend).
  echo "==================== fla's GatedLinearAttention through lina.patch_fla()"
  PYTHONPATH=build/python .venv-torch/bin/python examples/patch_fla_layer.py || echo "(fla not importable here: skipped)"
fi
if [ "$gpu" = 1 ]; then echo "demo: the standard library compiled, ran on the GPU and matched the reference; GLA and RWKV6 models generated on the CPU"
else echo "demo: no GPU here: the standard library compiled (RIR, CUDA, NVRTC cubins) and ran on the CPU reference; GLA and RWKV6 models generated on the CPU"; fi
