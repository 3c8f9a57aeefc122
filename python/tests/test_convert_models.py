"""Conversions on the CPU with tiny random checkpoints: Llama and Mistral (GQA) made with
transformers' own classes into GLA and GSA, and an RWKV6 checkpoint in Hugging Face's
remote-code layout (transformers has no RWKV6 class; the test writes its tensors) into fla's
RWKV6. Every copied tensor is bit-identical to its source (after the documented reordering),
every new one has fla's shape and init statistics, and the converted model loads in lina.models
and runs forward and backward; the RWKV6 one also computes what RWKV6's own equations give."""
import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import lina  # noqa: E402
from lina.models import AutoModelForCausalLM  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def _llama(tmp_path, kind, dtype):
    torch.manual_seed(0)
    common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  vocab_size=97, rms_norm_eps=1e-5, tie_word_embeddings=False)
    if kind == "mistral":
        model = transformers.MistralForCausalLM(transformers.MistralConfig(num_key_value_heads=2, **common))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(num_key_value_heads=4, **common))
    model = model.to(dtype)
    path = tmp_path / kind
    model.save_pretrained(path, safe_serialization=True)
    return path, {k: v for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind,target,dtype", [("llama", "gla", torch.float32), ("mistral", "gla", torch.bfloat16),
                                               ("mistral", "gsa", torch.float32)])
def test_llama_and_mistral_convert_to_gla_and_gsa(tmp_path, kind, target, dtype):
    source, src = _llama(tmp_path, kind, dtype)
    dst = tmp_path / "out"
    convert = lina.convert.llama_to_gla if target == "gla" else lina.convert.llama_to_gsa
    config = {"num_slots": 16, "elementwise_affine": True} if target == "gsa" else {}
    report = convert(source, dst, config=config, max_shard_bytes=100_000, seed=3)
    assert report["dropped"] == 0 and report["copied"] > 0
    assert len([f for f in report["files"] if f.endswith(".safetensors")]) > 1, "sharded at 100 kB"
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["model_type"] == target and cfg["norm_eps"] == 1e-5
    assert cfg.get("num_kv_heads") == (2 if kind == "mistral" else None)

    out = {}
    for f in report["files"]:
        if f.endswith(".safetensors"):
            out.update(load_file(dst / f))
    for t in report["tensors"]:
        tensor = out.get(t["name"])
        if t["kind"] == "copied":
            source_key = t["source"]
            assert tensor.dtype == dtype and torch.equal(tensor.view(torch.uint8) if dtype == torch.bfloat16 else tensor,
                                                         src[source_key].view(torch.uint8) if dtype == torch.bfloat16
                                                         else src[source_key]), t["name"]
        elif t["kind"] == "initialised":
            assert list(tensor.shape) == t["shape"] and tensor.dtype == dtype
            x = tensor.float()
            if t["name"].endswith(".bias"):
                assert torch.count_nonzero(x) == 0, t["name"]
            elif "norm" in t["name"]:
                assert torch.all(x == 1), t["name"]
            else:  # N(0, initializer_range = 0.02)
                assert abs(x.mean().item()) < 0.01 and 0.015 < x.std().item() < 0.025, (t["name"], x.std().item())
    initialised = {t["name"].split(".", 3)[-1] for t in report["tensors"] if t["kind"] == "initialised"}
    if target == "gla":
        assert initialised == {"attn.gk_proj.0.weight", "attn.gk_proj.1.weight", "attn.gk_proj.1.bias", "attn.g_norm.weight"}
    else:
        assert initialised == {"attn.f_proj.weight", "attn.g_norm.weight"}

    model = AutoModelForCausalLM.from_pretrained(dst, dtype=torch.float32)
    ids = torch.randint(0, 97, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    loss = model(ids, attention_mask=mask, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.model.layers[1].attn.q_proj.weight.grad.abs().sum() > 0


def test_llama_conversion_refuses_what_it_does_not_understand(tmp_path):
    source, _ = _llama(tmp_path, "llama", torch.float32)
    cfg = json.loads((source / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (source / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(lina.LinaError, match=r"model_type: expected \"llama\" or \"mistral\"; got \"gpt2\""):
        lina.convert.llama_to_gla(source, tmp_path / "x")


def _rwkv6_source(tmp_path, C=32, H=2, r=4, d=8, I=64, vocab=53, layers=2):
    """A random RWKV6 checkpoint in HF's remote-code names and BlinkDL's shapes."""
    torch.manual_seed(0)
    t = {"rwkv.embeddings.weight": torch.randn(vocab, C), "head.weight": torch.randn(vocab, C) * 0.1,
         "rwkv.ln_out.weight": 1 + 0.1 * torch.randn(C), "rwkv.ln_out.bias": 0.1 * torch.randn(C),
         "rwkv.blocks.0.pre_ln.weight": 1 + 0.1 * torch.randn(C), "rwkv.blocks.0.pre_ln.bias": 0.1 * torch.randn(C)}
    for i in range(layers):
        b = f"rwkv.blocks.{i}."
        for ln in ("ln1", "ln2", "attention.ln_x"):
            t[b + ln + ".weight"] = 1 + 0.1 * torch.randn(C)
            t[b + ln + ".bias"] = 0.1 * torch.randn(C)
        a = b + "attention."
        for m in "xwkvrg":
            t[a + f"time_maa_{m}"] = torch.rand(1, 1, C)
        t[a + "time_maa_w1"] = 0.1 * torch.randn(C, 5 * r)
        t[a + "time_maa_w2"] = 0.1 * torch.randn(5, r, C)
        t[a + "time_decay"] = -1 + 0.5 * torch.randn(1, 1, C)
        t[a + "time_decay_w1"] = 0.1 * torch.randn(C, d)
        t[a + "time_decay_w2"] = 0.1 * torch.randn(d, C)
        t[a + "time_faaaa"] = 0.3 * torch.randn(H, C // H)
        for p in ("receptance", "key", "value", "gate", "output"):
            t[a + p + ".weight"] = torch.randn(C, C) / C ** 0.5
        f = b + "feed_forward."
        t[f + "time_maa_k"] = torch.rand(1, 1, C)
        t[f + "time_maa_r"] = torch.rand(1, 1, C)
        t[f + "key.weight"] = torch.randn(I, C) / C ** 0.5
        t[f + "value.weight"] = torch.randn(C, I) / I ** 0.5
        t[f + "receptance.weight"] = torch.randn(C, C) / C ** 0.5
    from safetensors.torch import save_file
    path = tmp_path / "rwkv6-hf"
    path.mkdir()
    save_file(t, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps({"model_type": "rwkv6", "layer_norm_epsilon": 1e-5}))
    return path, t


def _rwkv6_reference_logits(t, ids, H, eps):
    """RWKV6's own equations on the source names (BlinkDL's RWKV-LM v6 time and channel mix),
    in float64, one token at a time; ln_x uses `eps` like the converted config's g_norm."""
    t = {k: v.double() for k, v in t.items()}
    C = t["rwkv.embeddings.weight"].shape[1]
    ln = lambda x, p, e=eps: torch.nn.functional.layer_norm(x, (C,), t[p + ".weight"], t[p + ".bias"], e)
    x = t["rwkv.embeddings.weight"][ids]
    x = ln(x, "rwkv.blocks.0.pre_ln")
    layers = len({k.split(".")[2] for k in t if k.startswith("rwkv.blocks.")})
    T = x.shape[0]
    for i in range(layers):
        a, f = f"rwkv.blocks.{i}.attention.", f"rwkv.blocks.{i}.feed_forward."
        h = ln(x, f"rwkv.blocks.{i}.ln1")
        xx = torch.cat([torch.zeros(1, C, dtype=h.dtype), h[:-1]]) - h
        xxx = torch.tanh((h + xx * t[a + "time_maa_x"][0, 0]) @ t[a + "time_maa_w1"]).view(T, 5, -1)
        mw, mk, mv, mr, mg = torch.einsum("tnr,nrc->ntc", xxx, t[a + "time_maa_w2"]).unbind(0)
        xw = h + xx * (t[a + "time_maa_w"][0, 0] + mw)
        xk = h + xx * (t[a + "time_maa_k"][0, 0] + mk)
        xv = h + xx * (t[a + "time_maa_v"][0, 0] + mv)
        xr = h + xx * (t[a + "time_maa_r"][0, 0] + mr)
        xg = h + xx * (t[a + "time_maa_g"][0, 0] + mg)
        r, k, v = (xr @ t[a + "receptance.weight"].T, xk @ t[a + "key.weight"].T, xv @ t[a + "value.weight"].T)
        g = torch.nn.functional.silu(xg @ t[a + "gate.weight"].T)
        w = torch.exp(-torch.exp(t[a + "time_decay"][0, 0] + torch.tanh(xw @ t[a + "time_decay_w1"]) @ t[a + "time_decay_w2"]))
        u = t[a + "time_faaaa"]
        D = C // H
        S = torch.zeros(H, D, D, dtype=h.dtype)
        out = torch.zeros(T, C, dtype=h.dtype)
        for s in range(T):
            rs, ks, vs, ws = (z[s].view(H, D) for z in (r, k, v, w))
            kv = ks.unsqueeze(-1) * vs.unsqueeze(-2)
            out[s] = torch.einsum("hk,hkv->hv", rs, S + u.unsqueeze(-1) * kv).reshape(C)
            S = ws.unsqueeze(-1) * S + kv
        o = torch.nn.functional.group_norm(out, H, t[a + "ln_x.weight"], t[a + "ln_x.bias"], eps) * g
        x = x + o @ t[a + "output.weight"].T
        h = ln(x, f"rwkv.blocks.{i}.ln2")
        xx = torch.cat([torch.zeros(1, C, dtype=h.dtype), h[:-1]]) - h
        kk = torch.relu((h + xx * t[f + "time_maa_k"][0, 0]) @ t[f + "key.weight"].T) ** 2
        rr = torch.sigmoid((h + xx * t[f + "time_maa_r"][0, 0]) @ t[f + "receptance.weight"].T)
        x = x + rr * (kk @ t[f + "value.weight"].T)
    return ln(x, "rwkv.ln_out") @ t["head.weight"].T


def test_rwkv6_converts_and_computes_what_rwkv6_computes(tmp_path):
    source, tensors = _rwkv6_source(tmp_path)
    dst = tmp_path / "fla-rwkv6"
    report = lina.convert.rwkv6_to_fla(source, dst)
    assert report["initialised"] == 0 and report["dropped"] == 0
    out = load_file(dst / "model.safetensors")
    # Bit-identical copies, the reorderings undone by hand.
    a, da = "rwkv.blocks.1.attention.", "model.layers.1.attn."
    assert torch.equal(out[da + "r_proj.linear.weight"], tensors[a + "receptance.weight"])
    assert torch.equal(out[da + "bonus"], tensors[a + "time_faaaa"])
    assert torch.equal(out[da + "w_proj.linear.lora.0.weight"], tensors[a + "time_decay_w1"].T)
    w1 = out[da + "x_proj.0.linear.weight"].T.view(32, 5, 4)  # fla's r,w,k,v,g chunks
    src_w1 = tensors[a + "time_maa_w1"].view(32, 5, 4)        # the source's w,k,v,r,g
    for fla_i, src_i in enumerate([3, 0, 1, 2, 4]):
        assert torch.equal(w1[:, fla_i], src_w1[:, src_i])
    assert torch.equal(out[da + "x_bias"][0], tensors[a + "time_maa_r"].flatten())
    cfg = json.loads((dst / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_heads"], cfg["proj_low_rank_dim"], cfg["gate_low_rank_dim"],
            cfg["intermediate_size"], cfg["vocab_size"]) == (32, 2, 4, 8, 64, 53)

    model = AutoModelForCausalLM.from_pretrained(dst, dtype=torch.float64)
    ids = torch.randint(0, 53, (10,))
    ours = model(ids.unsqueeze(0)).logits[0]
    ref = _rwkv6_reference_logits(tensors, ids, H=2, eps=cfg["norm_eps"])
    assert torch.allclose(ours, ref, rtol=1e-9, atol=1e-9), (ours - ref).abs().max()
    model(ids.unsqueeze(0), labels=ids.unsqueeze(0)).loss.backward()
    assert model.model.layers[0].attn.bonus.grad.abs().sum() > 0

    # BlinkDL's original names convert to the same checkpoint.
    import re
    original = {}
    for k, v in tensors.items():
        k = k.replace("rwkv.embeddings.", "emb.").replace("rwkv.blocks.0.pre_ln.", "rwkv.blocks.0.ln0.")
        k = k.replace(".attention.", ".att.").replace(".feed_forward.", ".ffn.")
        original[re.sub(r"^rwkv\.", "", k)] = v
    from safetensors.torch import save_file
    (tmp_path / "orig").mkdir()
    save_file(original, tmp_path / "orig" / "model.safetensors")
    lina.convert.rwkv6_to_fla(tmp_path / "orig", tmp_path / "from-orig")
    again = load_file(tmp_path / "from-orig" / "model.safetensors")
    assert again.keys() == out.keys() and all(torch.equal(again[k], out[k]) for k in out)

    bad = dict(tensors, **{"rwkv.blocks.0.attention.time_state": torch.zeros(1)})
    save_file(bad, source / "model.safetensors")
    with pytest.raises(lina.LinaError, match=r"tensor 'rwkv.blocks.0.attention.time_state' has no counterpart"):
        lina.convert.rwkv6_to_fla(source, tmp_path / "y")


def test_the_command_line_converts_and_reports(tmp_path, capsys):
    from lina import convert
    source, _ = _rwkv6_source(tmp_path)
    assert convert.main(["rwkv6", str(source), str(tmp_path / "cli"), "--max-shard-size", "20K"]) == 0
    out = capsys.readouterr().out
    assert "copied  model.layers.0.attn.x_bias [5, 32]  <- rwkv.blocks.0.attention.time_maa_{r,w,k,v,g}" in out
    assert (tmp_path / "cli" / "model.safetensors.index.json").exists()
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "cli").config.model_type == "rwkv6"
    assert convert.main(["rwkv6", str(source), str(tmp_path / "x"), "--max-shard-size", "0"]) == 2
    assert "--max-shard-size: expected a positive size" in capsys.readouterr().err
    assert convert.main(["llama-to-gla", str(tmp_path / "nothing"), str(tmp_path / "y")]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_the_cpp_rwkv6_conversion_writes_what_the_python_one_writes(tmp_path):
    """lina-convert rwkv6 (C++, no torch) and lina.convert.rwkv6_to_fla agree byte for byte, on
    both source layouts, and lina-run's CPU engine runs the result as lina.models does."""
    import os
    import subprocess
    build = os.path.join(os.path.dirname(lina.__file__), "..", "..")
    tool = os.path.join(build, "tools", "lina-convert", "lina-convert")
    if not os.path.exists(tool):
        pytest.skip("lina-convert is not built here")
    source, tensors = _rwkv6_source(tmp_path)
    lina.convert.rwkv6_to_fla(source, tmp_path / "py")
    for dtype in (torch.float32, torch.bfloat16):
        from safetensors.torch import save_file
        src = tmp_path / f"src-{dtype}"
        src.mkdir()
        save_file({k: v.to(dtype) for k, v in tensors.items()}, src / "model.safetensors")
        (src / "config.json").write_text((source / "config.json").read_text())
        done = subprocess.run([tool, "rwkv6", str(src), str(tmp_path / f"cpp-{dtype}"), "--max-shard-size", "20K"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "copied  model.layers.0.attn.x_bias [5, 32]  <- rwkv.blocks.0.attention.time_maa_{r,w,k,v,g}" in done.stdout
        ours = {}
        index = json.loads((tmp_path / f"cpp-{dtype}" / "model.safetensors.index.json").read_text())
        for shard in set(index["weight_map"].values()):
            ours.update(load_file(tmp_path / f"cpp-{dtype}" / shard))
        theirs = load_file(tmp_path / "py" / "model.safetensors")
        assert ours.keys() == theirs.keys()
        for k in theirs:
            assert ours[k].dtype == dtype and torch.equal(ours[k], theirs[k].to(dtype)), k
        py_cfg = json.loads((tmp_path / "py" / "config.json").read_text())
        cpp_cfg = json.loads((tmp_path / f"cpp-{dtype}" / "config.json").read_text())
        for key in ("hidden_size", "num_heads", "num_hidden_layers", "proj_low_rank_dim", "gate_low_rank_dim",
                    "intermediate_size", "vocab_size", "norm_eps", "expand_k", "expand_v", "tie_word_embeddings"):
            assert cpp_cfg[key] == py_cfg[key], key
    # The converted model on lina-run's CPU engine and in lina.models: the same logits.
    if hasattr(lina._lina, "CpuRunner"):
        ids = [1, 5, 9, 40, 2]
        model = AutoModelForCausalLM.from_pretrained(tmp_path / "cpp-torch.float32", dtype=torch.float64)
        mine = model(torch.tensor([ids])).logits[0, -1]
        cpp = torch.tensor(lina.Runner(tmp_path / "cpp-torch.float32", device="cpu").logits(ids), dtype=torch.float64)
        assert (mine - cpp).abs().max() <= 1e-4 * cpp.abs().max()
    # BlinkDL's original names give the same checkpoint.
    import re
    original = {}
    for k, v in tensors.items():
        k = k.replace("rwkv.embeddings.", "emb.").replace("rwkv.blocks.0.pre_ln.", "rwkv.blocks.0.ln0.")
        original[re.sub(r"^rwkv\.", "", k.replace(".attention.", ".att.").replace(".feed_forward.", ".ffn."))] = v
    (tmp_path / "orig").mkdir()
    save_file(original, tmp_path / "orig" / "model.safetensors")
    done = subprocess.run([tool, "rwkv6", str(tmp_path / "orig"), str(tmp_path / "cpp-orig")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    again = load_file(tmp_path / "cpp-orig" / "model.safetensors")
    assert again.keys() == theirs.keys() and all(torch.equal(again[k], theirs[k].float()) for k in theirs)
    # A tensor with no counterpart is an error naming it.
    save_file(dict(tensors, **{"rwkv.blocks.0.attention.time_state": torch.zeros(1)}), source / "model.safetensors")
    done = subprocess.run([tool, "rwkv6", str(source), str(tmp_path / "bad")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "tensor 'rwkv.blocks.0.attention.time_state' has no counterpart" in done.stderr
