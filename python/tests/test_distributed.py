"""bench/distributed/train_toy.py under torchrun (skipped without torch or CUDA): two
ranks, DDP and FSDP, must match one GPU on the concatenated batches: every gradient after one
step within bf16 tolerance and the loss curve. NCCL with 2+ GPUs; on one GPU both ranks share it
through gloo (the same code path)."""
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

SOURCE_DIR = os.environ.get("LINA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_ranks_match_one_gpu_on_the_concatenated_batch(parallel, tmp_path):
    backend = "nccl" if torch.cuda.device_count() >= 2 else "gloo"
    out = tmp_path / "check.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(SOURCE_DIR, "bench", "distributed", "train_toy.py"), "--parallel", parallel, "--backend",
           backend, "--steps", "40", "--tokens-per-rank", "4096", "--check", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world"] == 2
    assert result["grad_relative_error_max"] <= 2e-2, result["grad_relative_error"]
    assert result["loss_abs_diff_mean"] <= 0.05
    assert result["loss_curve"][-1] < result["loss_curve"][0] - 0.5  # it learns
