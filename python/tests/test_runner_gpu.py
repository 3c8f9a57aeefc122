"""lina.Runner on the GPU engine (skipped without a GPU): in fp32 its greedy tokens equal the CPU
engine's on the tiny configs, one prompt and a batch; streaming equals the full call; a stop
string ends the sequence; its errors are LinaErrors."""
import os

import pytest

import lina

SOURCE = os.environ.get("LINA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
pytestmark = pytest.mark.skipif(not hasattr(lina._lina, "GpuRunner") or not lina.cuda_available(),
                                reason="no GPU (or built without the GPU model runner)")


@pytest.fixture(params=["gla", "retnet", "gsa"])
def model_dir(tmp_path, request):
    out = tmp_path / request.param
    lina.init_checkpoint(os.path.join(SOURCE, "library", "models", f"{request.param}-tiny.json"), out, dtype="fp32", seed=5)
    return out


def test_gpu_matches_cpu(model_dir):
    cpu = lina.Runner(model_dir, device="cpu")
    gpu = lina.Runner(model_dir, device="cuda", dtype="fp32")
    assert gpu.device == "cuda:0"
    prompts = [[1, 20, 30, 40, 50], [1, 7], [1, 3, 9]]
    want = [cpu.generate(p, max_new_tokens=12) for p in prompts]
    assert gpu.generate(prompts, max_new_tokens=12) == want
    assert gpu.generate(prompts[0], max_new_tokens=12) == want[0]
    assert list(gpu.generate(prompts[0], max_new_tokens=12, stream=True)) == want[0]
    assert gpu.last_stats["prompt_tokens"] == len(prompts[0])
    logits_cpu, logits_gpu = cpu.logits(prompts[0]), gpu.logits(prompts[0])
    assert max(abs(a - b) for a, b in zip(logits_cpu, logits_gpu)) <= 1e-3 * max(abs(a) for a in logits_cpu)
    a = gpu.generate(prompts[0], max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    assert a == gpu.generate(prompts[0], max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)


def test_gpu_errors(model_dir):
    gpu = lina.Runner(model_dir, device="cuda", dtype="fp32", max_batch=2)
    with pytest.raises(lina.LinaError, match="outside the vocabulary"):
        gpu.generate([1, 10**6])
    with pytest.raises(lina.LinaError, match="max-batch|at most 2"):
        gpu.generate([[1], [1], [1]])
    with pytest.raises(lina.LinaError, match="dtype"):
        lina.Runner(model_dir, device="cuda", dtype="int8")
    with pytest.raises(lina.LinaError, match="no tokenizer.model"):
        gpu.generate("hello")
