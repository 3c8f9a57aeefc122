#!/usr/bin/env bash
# Convert a Llama/Mistral checkpoint to GLA, fine-tune it on packed documents, generate from it.
#
#   examples/convert_and_finetune.sh [SRC_LLAMA_DIR] [STEPS]
#
# Without SRC a tiny random Mistral is made first (examples/make_tiny_llama.py), so the whole
# path runs on a CPU in about a minute. Needs the build (build/python) and the torch environment
# (scripts/setup_torch.sh). With a real checkpoint pass its tokenizer (drop --tokenizer bytes),
# a --seq-len of 2048 or more, and run on a GPU (--device cuda, the default when there is one).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv-torch/bin/python
[ -x "$py" ] || scripts/setup_torch.sh
export PYTHONPATH=$PWD/build/python
work=${LINA_EXAMPLE_DIR:-/tmp/lina-example}
mkdir -p "$work"
src=${1:-}
steps=${2:-30}
if [ -z "$src" ]; then
  src=$work/tiny-mistral
  $py examples/make_tiny_llama.py "$src" --mistral
fi
echo "== convert: $src -> $work/gla"
$py -m lina.convert llama-to-gla "$src" "$work/gla" | tail -n 4
echo "== fine-tune $steps steps (documents packed with cu_seqlens, AdamW, warm-up then cosine)"
$py -m lina.finetune --model "$work/gla" --output "$work/gla-ft" --data README.md --tokenizer bytes \
  --seq-len 128 --grad-accum 2 --steps "$steps" --lr 2e-3 --warmup 5 --dtype bf16 --log-every 5
echo "== generate from the fine-tuned checkpoint (lina.models, greedy)"
$py - "$work/gla-ft" <<'PY'
import sys, torch
from lina.models import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)
prompt = "lina is a "
ids = torch.tensor([[1] + [b + 3 for b in prompt.encode()]])
out = model.generate(ids, max_new_tokens=40)[0, ids.shape[1]:].tolist()
print(repr(prompt + bytes(max(0, min(255, t - 3)) for t in out).decode("utf-8", "replace")))
PY
