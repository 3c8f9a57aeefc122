"""lina.models on the CPU (the reference interpreter under lina.ops, autograd through the
derived backward): every family trains the same on a padded batch with a mask as on the same
documents packed with cu_seqlens and as on each document alone; decoding from the recurrent
cache gives the tokens a full forward gives; checkpoints round-trip, shard, and load strictly;
lina.models and lina-run's CPU engine generate the same tokens from one checkpoint."""
import json
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

import lina  # noqa: E402
from lina.models import AutoModelForCausalLM, ForCausalLM, ModelConfig  # noqa: E402

TINY = {
    "gla": dict(model_type="gla", hidden_size=32, num_hidden_layers=2, num_heads=2, vocab_size=61),
    "gla_conv_gqa": dict(model_type="gla", hidden_size=32, num_hidden_layers=2, num_heads=2, num_kv_heads=1,
                         use_short_conv=True, vocab_size=61),
    "retnet": dict(model_type="retnet", hidden_size=32, num_hidden_layers=2, num_heads=2, vocab_size=61),
    "gsa": dict(model_type="gsa", hidden_size=32, num_hidden_layers=2, num_heads=2, num_slots=8, vocab_size=61),
    "rwkv6": dict(model_type="rwkv6", hidden_size=32, num_hidden_layers=2, num_heads=2, proj_low_rank_dim=4,
                  gate_low_rank_dim=8, vocab_size=61),
}


def make(name, seed=0):
    torch.manual_seed(seed)
    model = ForCausalLM(ModelConfig(TINY[name])).double()
    # Non-trivial mixes, bonus and biases, so that every parameter takes part.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(("mu", "x_bias", "bonus", ".bias")):
                p.normal_(0, 0.3)
    return model


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", sorted(TINY))
def test_padded_packed_and_alone_train_the_same(name):
    model = make(name)
    lengths = [11, 6, 9]
    torch.manual_seed(1)
    docs = [torch.randint(0, 61, (n,)) for n in lengths]
    T = max(lengths)
    # Right padding for the first two rows, left padding for the third.
    ids = torch.zeros(3, T, dtype=torch.long)
    mask = torch.zeros(3, T, dtype=torch.long)
    for i, d in enumerate(docs):
        sl = slice(T - len(d), T) if i == 2 else slice(0, len(d))
        ids[i, sl], mask[i, sl] = d, 1
    padded = model(ids, attention_mask=mask, labels=ids)
    padded.loss.backward()
    g_padded = grads(model)
    model.zero_grad()

    packed_ids = torch.cat(docs).unsqueeze(0)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    packed = model(packed_ids, cu_seqlens=cu, labels=packed_ids)
    packed.loss.backward()
    g_packed = grads(model)
    model.zero_grad()

    # Each document on its own (no mask, no cu_seqlens), weighted by its predicted tokens.
    total = sum(n - 1 for n in lengths)
    alone = sum(model(d.unsqueeze(0), labels=d.unsqueeze(0)).loss * (len(d) - 1) / total for d in docs)
    alone.backward()
    g_alone = grads(model)

    assert torch.allclose(padded.loss, packed.loss, rtol=1e-12, atol=1e-12)
    assert torch.allclose(padded.loss, alone, rtol=1e-10, atol=1e-12)
    params = [n for n, _ in model.named_parameters()]
    assert set(g_padded) == set(g_packed) == set(g_alone) == set(params), "every parameter gets a gradient"
    for n in params:
        assert torch.isfinite(g_padded[n]).all()
        assert torch.allclose(g_padded[n], g_packed[n], rtol=1e-9, atol=1e-12), n
        assert torch.allclose(g_padded[n], g_alone[n], rtol=1e-8, atol=1e-11), n
    # Logits at real tokens agree between the padded and the packed run.
    flat = padded.logits[mask.bool()]
    assert torch.allclose(flat, packed.logits[0][torch.cat([torch.arange(n) for n in lengths]) >= 0], atol=1e-10)


@pytest.mark.parametrize("name", sorted(TINY))
def test_decode_from_the_cache_matches_a_full_forward(name):
    model = make(name, seed=2)
    torch.manual_seed(3)
    prompt = torch.randint(0, 61, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, :2] = 0  # the second prompt is left-padded
    out = model.generate(prompt, max_new_tokens=6, attention_mask=mask)
    assert out.shape == (2, 13)
    for row in range(2):
        real = out[row][mask[row].bool().tolist() + [True] * 6]
        logits = model(real.unsqueeze(0)).logits[0]
        assert torch.equal(logits[6 - 2 * row:-1].argmax(-1), real[7 - 2 * row:]), f"row {row}"


def test_checkpoint_round_trip_shards_and_strict_loading(tmp_path):
    model = make("gla")
    ids = torch.randint(0, 61, (1, 9))
    files = model.save_pretrained(tmp_path / "one")
    assert files == ["model.safetensors"]
    files = model.save_pretrained(tmp_path / "sharded", max_shard_bytes=20_000)
    assert len(files) > 1 and (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    for folder in ("one", "sharded"):
        again = AutoModelForCausalLM.from_pretrained(tmp_path / folder)
        assert again.lm_head.weight.dtype == torch.float64
        assert torch.equal(model(ids).logits, again(ids).logits)

    from safetensors.torch import load_file, save_file
    tensors = load_file(tmp_path / "one" / "model.safetensors")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((tmp_path / "one" / "config.json").read_text())
    save_file({k: v for k, v in tensors.items() if k != "model.norm.weight"}, bad / "model.safetensors")
    with pytest.raises(lina.LinaError, match=r"tensor 'model.norm.weight' \(shape \[32\]\) is missing"):
        AutoModelForCausalLM.from_pretrained(bad)
    save_file(dict(tensors, **{"model.norm.weight": torch.ones(31, dtype=torch.float64)}), bad / "model.safetensors")
    with pytest.raises(lina.LinaError, match=r"'model.norm.weight': expected shape \[32\] from config.json; got \[31\]"):
        AutoModelForCausalLM.from_pretrained(bad)
    save_file(dict(tensors, extra=torch.ones(1)), bad / "model.safetensors")
    with pytest.raises(lina.LinaError, match=r"unexpected tensor 'extra'"):
        AutoModelForCausalLM.from_pretrained(bad)
    (bad / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(lina.LinaError, match=r"not a readable safetensors file"):
        AutoModelForCausalLM.from_pretrained(bad)


def test_config_errors_name_the_key():
    with pytest.raises(lina.LinaError, match=r"model_type: expected one of gla, retnet, gsa, rwkv6; got 'llama'"):
        ModelConfig({"model_type": "llama"})
    with pytest.raises(lina.LinaError, match=r"num_kv_heads: expected null or a positive divisor of num_heads = 4; got 3"):
        ModelConfig({"model_type": "gla", "num_kv_heads": 3})
    with pytest.raises(lina.LinaError, match=r"attn: expected null \(hybrid softmax-attention"):
        ModelConfig({"model_type": "gla", "attn": {"layers": [1]}})
    with pytest.raises(lina.LinaError, match=r"feature_map: expected one of 'swish', 'relu', 't2r'; got 'gelu'"):
        ModelConfig({"model_type": "gsa", "feature_map": "gelu"})
    # GSA's misspelled constructor keys (fla's exapnd_k / exapnd_v) are read.
    assert ModelConfig({"model_type": "gsa", "exapnd_k": 0.5, "elementwise_affine": False}).key_dim == 1024
    model = make("gla")
    with pytest.raises(lina.LinaError, match=r"attention_mask: expected shape \[1, 4\] like input_ids; got \[1, 5\]"):
        model(torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 5))
    with pytest.raises(lina.LinaError, match=r"cu_seqlens: packed documents go in one row"):
        model(torch.zeros(2, 4, dtype=torch.long), cu_seqlens=torch.tensor([0, 4], dtype=torch.int32))


@pytest.mark.parametrize("family", ["gla", "retnet", "gsa", "rwkv6"])
def test_lina_run_checkpoints_generate_the_same_tokens(tmp_path, family):
    """A checkpoint lina-run --init writes (fla's names, bf16) loads here, and greedy decoding
    matches the C++ runner's CPU engine token for token."""
    if not hasattr(lina._lina, "CpuRunner"):
        pytest.skip("this build has no model runner")
    source = os.path.join(os.environ.get("LINA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                          "library", "models", f"{family}-tiny.json")
    lina.init_checkpoint(source, tmp_path, dtype="fp32", seed=5)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    runner = lina.Runner(tmp_path, device="cpu")
    prompt = [1, 17, 42, 99, 7]
    ours = model.generate(torch.tensor([prompt]), max_new_tokens=8)[0, len(prompt):].tolist()
    theirs = runner.generate(prompt, max_new_tokens=8)
    assert ours == theirs
    # And the logits themselves (the runner computes in fp32, lina.models here in float64: 1e-4 of the
    # largest logit; a gate normaliser of 15 instead of 16 or a norm eps off by 10x fails it).
    ids = prompt + ours
    for n in (1, 5, len(ids)):
        mine = model.double()(torch.tensor([ids[:n]])).logits[0, -1]
        cpp = torch.tensor(runner.logits(ids[:n]), dtype=torch.float64)
        assert (mine - cpp).abs().max() <= 1e-4 * cpp.abs().max(), f"after {n} tokens"


def test_torch_compile_traces_a_whole_model_without_graph_breaks():
    model = make("gla").float()
    ids = torch.randint(0, 61, (1, 9))
    compiled = torch.compile(lambda x: model(x).logits, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(ids), model(ids).logits, atol=1e-5)
