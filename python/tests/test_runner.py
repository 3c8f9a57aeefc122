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


def test_batch_and_device_choice(model_dir):
    r = lina.Runner(model_dir, device="cpu")
    assert r.device == "cpu"
    prompts = [[1, 20, 30, 40], [1, 5]]
    assert r.generate(prompts, max_new_tokens=4) == [r.generate(p, max_new_tokens=4) for p in prompts]
    with pytest.raises(lina.LinaError, match="stream=True takes one prompt"):
        r.generate(prompts, stream=True)
    with pytest.raises(lina.LinaError, match="device: expected 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'tpu'"):
        lina.Runner(model_dir, device="tpu")
    if not lina.cuda_available():
        assert lina.Runner(model_dir).device == "cpu"  # auto
        with pytest.raises(lina.LinaError, match="CUDA|GPU"):
            lina.Runner(model_dir, device="cuda")


def _write_llama(path, hidden=32, layers=2, heads=4, kv_heads=2, mlp=48, vocab=64):
    """A tiny Mistral-shaped checkpoint in Hugging Face layout (fp32 safetensors, written here)."""
    import json
    import struct

    import numpy as np

    path.mkdir()
    (path / "config.json").write_text(json.dumps(dict(
        model_type="mistral", hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, intermediate_size=mlp, vocab_size=vocab, rms_norm_eps=1e-5,
        tie_word_embeddings=False)))
    rng = np.random.default_rng(3)
    hd = hidden // heads
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,), "lm_head.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (hidden,), p + "post_attention_layernorm.weight": (hidden,),
                       p + "self_attn.q_proj.weight": (hidden, hidden), p + "self_attn.k_proj.weight": (kv_heads * hd, hidden),
                       p + "self_attn.v_proj.weight": (kv_heads * hd, hidden), p + "self_attn.o_proj.weight": (hidden, hidden),
                       p + "mlp.gate_proj.weight": (mlp, hidden), p + "mlp.up_proj.weight": (mlp, hidden),
                       p + "mlp.down_proj.weight": (hidden, mlp)})
    header, blobs, offset = {}, [], 0
    for name, shape in sorted(shapes.items()):
        data = (rng.standard_normal(shape) * 0.1).astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return shapes


@pytest.mark.parametrize("target", ["gla", "gsa"])
def test_convert_llama_then_run(tmp_path, target):
    pytest.importorskip("numpy")
    src, dst = tmp_path / "mistral", tmp_path / target
    _write_llama(src)
    convert = lina.convert.llama_to_gla if target == "gla" else lina.convert.llama_to_gsa
    r = convert(src, dst, config={"num_slots": 8} if target == "gsa" else None)
    assert r["copied"] == 2 * 9 + 3 and r["dropped"] == 0, r["report"]
    assert any(t["kind"] == "initialised" for t in r["tensors"])
    ids = lina.Runner(dst).generate([1, 5, 9], max_new_tokens=4)
    assert len(list(ids)) >= 1
    with pytest.raises(lina.LinaError, match="target"):
        lina._lina.convert_llama(str(src), str(tmp_path / "x"), "rwkv")
    with pytest.raises(lina.LinaError, match="config"):
        convert(src, tmp_path / "y", config={"num_heads": [1]})


def test_stop_strings(tmp_path):
    """stop=: generation ends after the first token whose decoded continuation holds a stop
    string (kept); stop needs the tokenizer and non-empty strings."""
    import json
    import shutil
    import subprocess
    import numpy as np
    if shutil.which("spm_train") is None:
        pytest.skip("sentencepiece's spm_train is not installed")
    words = "the quick brown fox jumps over lazy dog linear attention gated recurrent state chunk kernel".split()
    rng = np.random.default_rng(2)
    (tmp_path / "corpus.txt").write_text("\n".join(" ".join(rng.choice(words, 12)) for _ in range(300)))
    subprocess.run(["spm_train", f"--input={tmp_path / 'corpus.txt'}", f"--model_prefix={tmp_path / 'tok'}", "--vocab_size=100",
                    "--model_type=bpe", "--hard_vocab_limit=false", "--minloglevel=2"], check=True, capture_output=True)
    cfg = json.load(open(os.path.join(SOURCE, "library", "models", "gla-tiny.json")))
    cfg["vocab_size"] = len((tmp_path / "tok.vocab").read_text().strip().split("\n"))
    cfg["eos_token_id"] = cfg["vocab_size"] + 5  # never drawn: the stop string ends it
    json.dump(cfg, open(tmp_path / "cfg.json", "w"))
    lina.init_checkpoint(tmp_path / "cfg.json", tmp_path / "m", seed=4)
    r = lina.Runner(tmp_path / "m")
    with pytest.raises(lina.LinaError, match="tokenizer"):
        r.generate([1, 5, 9], max_new_tokens=4, stop="x")
    shutil.copy(tmp_path / "tok.model", tmp_path / "m" / "tokenizer.model")
    r = lina.Runner(tmp_path / "m")
    ids = r.generate([1, 5, 9], max_new_tokens=16)
    cut = next(j for j in range(4, 16) if r.decode(ids[:j]).strip())
    stop = r.decode(ids[:cut]).strip()[-2:]
    first = next(j for j in range(1, 17) if stop in r.decode(ids[:j]))
    assert r.generate([1, 5, 9], max_new_tokens=16, stop=stop) == ids[:first]
    assert list(r.generate([1, 5, 9], max_new_tokens=16, stop=[stop, "never here"], stream=True)) == ids[:first]
    with pytest.raises(lina.LinaError, match="stop: expected non-empty strings"):
        r.generate([1, 5, 9], stop="")
