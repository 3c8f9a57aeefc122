#!/usr/bin/env bash
# The distributed toy-model figures: tokens/s per GPU at 1 rank and at 2 ranks (DDP and FSDP),
# and the --check of 2 ranks against one GPU on the concatenated batches (gradients after one
# step, the loss curve). With 2+ GPUs the ranks use NCCL, one GPU each; with one GPU the 2-rank
# runs use gloo with both ranks on that GPU (the same code path, no NCCL, no scaling figure).
# Usage: bench/distributed/run.sh OUT_DIR [STEPS]   (PYTHONPATH must reach the lina package)
set -euo pipefail
out=${1:?usage: run.sh OUT_DIR [STEPS]}
steps=${2:-300}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
backend2=gloo
[ "$gpus" -ge 2 ] && backend2=nccl
echo "gpus=$gpus two-rank backend=$backend2 steps=$steps" | tee "$out/runs.log"
export PYTHONFAULTHANDLER=1  # a crashing rank prints its Python stack
for parallel in ddp fsdp; do
  python3 -m torch.distributed.run --standalone --nproc_per_node=1 "$here/train_toy.py" --parallel $parallel --backend nccl \
    --steps "$steps" --check --out "$out/${parallel}_1rank.json" 2>&1 | tee -a "$out/runs.log"
  python3 -m torch.distributed.run --standalone --nproc_per_node=2 "$here/train_toy.py" --parallel $parallel --backend $backend2 \
    --steps "$steps" --check --out "$out/${parallel}_2rank_${backend2}.json" 2>&1 | tee -a "$out/runs.log"
done
