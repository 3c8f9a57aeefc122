"""lina.Runner on the CPU engine: greedy generation equals the argmax of its own logits step by
step, streaming equals the full call, seeded sampling repeats, and bad inputs are LinaErrors."""
import os

import pytest

import lina

SOURCE = os.environ.get("LINA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
pytestmark = pytest.mark.skipif(not hasattr(lina._lina, "CpuRunner"), reason="built without the model runner")


@pytest.fixture(params=["gla", "retnet", "gsa"])
def model_dir(tmp_path, request):
    out = tmp_path / request.param
    lina.init_checkpoint(os.path.join(SOURCE, "library", "models", f"{request.param}-tiny.json"), out, seed=11)
    return out


def test_greedy_stream_and_sampling(model_dir):
    r = lina.Runner(model_dir)
    prompt = [1, 20, 30, 40]
    ids = r.generate(prompt, max_new_tokens=6)
    seq, manual = list(prompt), []
    for _ in range(6):
        logits = r.logits(seq)
        nxt = max(range(len(logits)), key=logits.__getitem__)
        manual.append(nxt)
        if nxt == 2:
            break
        seq.append(nxt)
    assert ids == manual
    assert list(r.generate(prompt, max_new_tokens=6, stream=True)) == ids
    a = r.generate(prompt, max_new_tokens=6, temperature=1.0, top_p=0.9, seed=3)
    assert a == r.generate(prompt, max_new_tokens=6, temperature=1.0, top_p=0.9, seed=3)
    assert r.generate(prompt, max_new_tokens=6, temperature=0.7, top_k=1) == ids


def test_bad_inputs(model_dir, tmp_path):
    r = lina.Runner(model_dir)
    with pytest.raises(lina.LinaError, match="outside the vocabulary"):
        r.generate([1, 10**6])
    with pytest.raises(lina.LinaError, match="at least one token"):
        r.generate([])
    with pytest.raises(lina.LinaError, match="--temperature"):
        r.generate([1], temperature=-1)
    with pytest.raises(lina.LinaError, match="no tokenizer.model"):
        r.generate("hello")
    with pytest.raises(lina.LinaError, match="no config.json"):
        lina.Runner(tmp_path / "nowhere")
