#!/usr/bin/env bash
# Wheels the device needs for the model runs beside fla (bench/run_models_vs_fla.sh) and cannot
# fetch there (no network; its image has torch, triton and numpy for Python 3.12): transformers
# and what it imports, safetensors, einops (fla). Into .device/whl next to fla's wheels
# (shared/device/prep.sh fla): the set pip installs with transformers, pinned. Idempotent; about 30 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device/whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .device/whl \
  transformers==5.25.0 safetensors==0.8.0 tokenizers==0.23.3 huggingface_hub==2.5.0 einops==0.8.2 \
  regex==2026.12.2 tqdm==4.70.1 hf-xet==1.8.0 click==8.5.1 h11==0.16.0 httpcore2==2.17.0 httpx2==2.17.0 \
  idna==3.21 kernels==0.19.1 markdown-it-py==4.3.0 mdurl==0.1.2 packaging==26.4 pydantic==2.14.4 \
  pydantic_core==2.50.5 Pygments==2.21.0 PyYAML==6.0.4 rich==15.0.0 shellingham==1.5.4 tomlkit==0.15.3 \
  truststore==0.10.5 typer==0.29.3 typing-inspection==0.4.5
ls .device/whl
