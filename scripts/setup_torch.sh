#!/usr/bin/env bash
# The Python environment for lina's torch-facing tests and examples (lina.ops on CPU tensors,
# lina.models, lina.convert, lina.finetune, the fla drop-in): a venv at .venv-torch (or
# $LINA_TORCH_VENV) on Debian's Python 3 (the one the _lina extension is built for) with torch
# (PyPI's build; download.pytorch.org's CPU wheels are not reachable from every CI machine),
# Triton (fla imports it), transformers, safetensors and fla 0.6.0, pinned. Idempotent: an
# environment that already imports them is kept. LINA_SKIP_TORCH=1 skips it (the tests that need
# torch then skip themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LINA_TORCH_VENV:-.venv-torch}
if [ "${LINA_SKIP_TORCH:-0}" = "1" ]; then
  echo "setup_torch: skipped (LINA_SKIP_TORCH=1)"
  exit 0
fi
# fla 0.6.0 is pure Python and imports on the CPU with Triton's fallback: the drop-in tests
# compare lina.ops and lina.patch_fla() with fla's signatures, layers and naive references.
packages=(transformers==5.25.0 safetensors==0.8.0 numpy pytest triton==3.5.1 flash-linear-attention==0.6.0 einops)
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch, transformers, safetensors, pytest, fla, einops" 2>/dev/null; then
  exit 0
fi
echo "setup_torch: creating $venv (torch, transformers, safetensors, fla from PyPI; a few minutes the first time)"
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check torch==2.9.1 "${packages[@]}"
