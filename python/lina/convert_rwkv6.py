"""An RWKV6 checkpoint (Hugging Face's remote-code layout, `rwkv.blocks.{i}.attention.*`, or
BlinkDL's original `blocks.{i}.att.*`) into fla's RWKV6ForCausalLM layout (research/fla-spec.md
§7.2): the five token-shift mixes reordered from w,k,v,r,g to fla's r,w,k,v,g, the decay LoRA
transposed, the bonus and the mixes flattened; every other tensor copied byte for byte. The
config is derived from the tensors' shapes (and the source config's norm eps). Nothing is newly
initialised; a source tensor lina does not map is an error naming it."""
import json
import os
import re

from ._lina import LinaError

_ORIGINAL_TO_HF = [(r"^emb\.", "rwkv.embeddings."), (r"^blocks\.0\.ln0\.", "rwkv.blocks.0.pre_ln."),
                   (r"\.att\.", ".attention."), (r"\.ffn\.", ".feed_forward."), (r"^blocks\.", "rwkv.blocks."),
                   (r"^ln_out\.", "rwkv.ln_out.")]
_SOURCE_MIX_ORDER = "wkvrg"   # time_maa_w1/w2 chunks in the source
_FLA_MIX_ORDER = "rwkvg"      # fla's x_proj / x_bias rows


def _hf_names(tensors):
    """BlinkDL's names -> the HF layout's (emb -> embeddings, ln0 -> pre_ln, att -> attention, ...)."""
    if any(k.startswith("rwkv.") for k in tensors):
        return tensors
    out = {}
    for key, value in tensors.items():
        new = key
        for pattern, repl in _ORIGINAL_TO_HF:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out


def _load_source(source):
    import torch
    from .models import checkpoint
    if os.path.isfile(source) and source.endswith((".pth", ".pt", ".bin")):
        try:
            return torch.load(source, map_location="cpu", weights_only=True), {}
        except Exception as e:
            raise LinaError(f"{source}: not a readable torch checkpoint ({e})") from None
    tensors, _ = checkpoint.load_tensors(source)
    config = {}
    path = os.path.join(source, "config.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    return tensors, config


def _need(tensors, key, source):
    if key not in tensors:
        raise LinaError(f"{source}: tensor '{key}' is missing; expected an RWKV6 checkpoint (HF or BlinkDL layout)")
    return tensors[key]


def rwkv6_to_fla(source, destination, config=None, max_shard_bytes=5 << 30):
    """Converts; returns a dict: config, tensors (name, source, shape, kind), copied, initialised,
    dropped, files and report (the coverage table)."""
    import torch
    from .models import ForCausalLM, ModelConfig
    from .models.checkpoint import save_tensors
    source = os.fspath(source)
    tensors, src_config = _load_source(source)
    tensors = _hf_names(tensors)
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) != 1:
        raise LinaError(f"{source}: tensors in several dtypes ({', '.join(sorted(str(d) for d in dtypes))}); "
                        "convert a checkpoint saved in one dtype")
    blocks = sorted({int(m.group(1)) for k in tensors for m in [re.match(r"rwkv\.blocks\.(\d+)\.", k)] if m})
    if not blocks or blocks != list(range(len(blocks))):
        raise LinaError(f"{source}: expected rwkv.blocks.0 .. rwkv.blocks.N-1; found blocks {blocks[:8]}")
    a = "rwkv.blocks.0.attention."
    emb = _need(tensors, "rwkv.embeddings.weight", source)
    bonus = _need(tensors, a + "time_faaaa", source)
    rank5 = _need(tensors, a + "time_maa_w1", source).shape[1]
    values = dict(
        model_type="rwkv6", hidden_size=emb.shape[1], vocab_size=emb.shape[0], num_hidden_layers=len(blocks),
        num_heads=bonus.shape[0], expand_k=_need(tensors, a + "receptance.weight", source).shape[0] / emb.shape[1],
        expand_v=_need(tensors, a + "value.weight", source).shape[0] / emb.shape[1], proj_low_rank_dim=rank5 // 5,
        gate_low_rank_dim=_need(tensors, a + "time_decay_w1", source).shape[1],
        intermediate_size=_need(tensors, "rwkv.blocks.0.feed_forward.key.weight", source).shape[0],
        norm_eps=float(src_config.get("layer_norm_epsilon", 1e-5)), tie_word_embeddings="head.weight" not in tensors,
        bos_token_id=src_config.get("bos_token_id", 0), eos_token_id=src_config.get("eos_token_id", 0))
    for key in ("expand_k", "expand_v"):
        if float(values[key]).is_integer():
            values[key] = int(values[key])
    values.update(config or {})
    cfg = ModelConfig(values, source=f"the converted config (from {source})")

    used, out, records = set(), {}, []

    def take(key):
        used.add(key)
        return _need(tensors, key, source)

    def put(name, value, src):
        out[name] = value.contiguous()
        records.append(dict(name=name, source=src, shape=list(value.shape), kind="copied"))

    def reorder(chunks):  # a list in the source's w,k,v,r,g order -> fla's r,w,k,v,g
        return [chunks[_SOURCE_MIX_ORDER.index(c)] for c in _FLA_MIX_ORDER]

    put("model.embeddings.weight", take("rwkv.embeddings.weight"), "rwkv.embeddings.weight")
    for i in blocks:
        s, d = f"rwkv.blocks.{i}.", f"model.layers.{i}."
        if i == 0 and cfg.norm_first:
            for p in ("weight", "bias"):
                put(d + f"pre_norm.{p}", take(s + f"pre_ln.{p}"), s + f"pre_ln.{p}")
        for p in ("weight", "bias"):
            put(d + f"attn_norm.{p}", take(s + f"ln1.{p}"), s + f"ln1.{p}")
            put(d + f"ffn_norm.{p}", take(s + f"ln2.{p}"), s + f"ln2.{p}")
        sa, da = s + "attention.", d + "attn."
        put(da + "x_proj.0.mu", take(sa + "time_maa_x").flatten(), sa + "time_maa_x")
        w1 = take(sa + "time_maa_w1")  # [C, 5r]
        C = w1.shape[0]
        w1 = torch.cat(reorder(list(w1.view(C, 5, -1).unbind(1))), -1)
        put(da + "x_proj.0.linear.weight", w1.t(), sa + "time_maa_w1")
        w2 = take(sa + "time_maa_w2")  # [5, r, C]
        put(da + "x_proj.2.weight", torch.cat(reorder(list(w2.unbind(0))), 0).t(), sa + "time_maa_w2")
        mixes = {c: take(sa + f"time_maa_{c}").flatten() for c in "wkvrg"}
        put(da + "x_bias", torch.stack([mixes[c] for c in _FLA_MIX_ORDER]), sa + "time_maa_{r,w,k,v,g}")
        for fla_name, src_name in (("r_proj", "receptance"), ("k_proj", "key"), ("v_proj", "value"), ("g_proj", "gate")):
            put(da + f"{fla_name}.linear.weight", take(sa + f"{src_name}.weight"), sa + f"{src_name}.weight")
        put(da + "w_proj.linear.lora.0.weight", take(sa + "time_decay_w1").t(), sa + "time_decay_w1")
        put(da + "w_proj.linear.lora.2.weight", take(sa + "time_decay_w2").t(), sa + "time_decay_w2")
        put(da + "w_proj.linear.lora.2.bias", take(sa + "time_decay").flatten(), sa + "time_decay")
        put(da + "bonus", take(sa + "time_faaaa").reshape(cfg.num_heads, -1), sa + "time_faaaa")
        for p in ("weight", "bias"):
            put(da + f"g_norm.{p}", take(sa + f"ln_x.{p}"), sa + f"ln_x.{p}")
        put(da + "o_proj.weight", take(sa + "output.weight"), sa + "output.weight")
        sf, df = s + "feed_forward.", d + "ffn."
        put(df + "key.linear.weight", take(sf + "key.weight"), sf + "key.weight")
        put(df + "key.mu", take(sf + "time_maa_k").flatten(), sf + "time_maa_k")
        put(df + "value.weight", take(sf + "value.weight"), sf + "value.weight")
        put(df + "receptance.linear.weight", take(sf + "receptance.weight"), sf + "receptance.weight")
        put(df + "receptance.mu", take(sf + "time_maa_r").flatten(), sf + "time_maa_r")
    for p in ("weight", "bias"):
        put(f"model.norm.{p}", take(f"rwkv.ln_out.{p}"), f"rwkv.ln_out.{p}")
    if not cfg.tie_word_embeddings:
        put("lm_head.weight", take("head.weight"), "head.weight")
    unknown = sorted(k for k in tensors if k not in used)
    if unknown:
        raise LinaError(f"{source}: tensor '{unknown[0]}' has no counterpart in fla's RWKV6"
                        + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                        + "; is this an RWKV6 (not v5 or v7) checkpoint?")
    # The shapes fla's RWKV6 of this config expects, from lina.models' own module tree.
    with torch.device("meta"):
        expected = ForCausalLM(cfg).state_dict()
    if cfg.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
    for name, value in out.items():
        if tuple(expected[name].shape) != tuple(value.shape):
            raise LinaError(f"{source}: '{name}': expected shape {list(expected[name].shape)} under the converted "
                            f"config; got {list(value.shape)}")
    missing = sorted(set(expected) - set(out))
    if missing:
        raise LinaError(f"{source}: nothing maps to fla's '{missing[0]}'; check the source and --config")
    files = save_tensors(out, destination, int(max_shard_bytes))
    cfg.save(destination)
    files.append("config.json")
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "rwkv_vocab_v20230424.txt"):
        src = os.path.join(source, f) if os.path.isdir(source) else ""
        if src and os.path.exists(src):
            with open(src, "rb") as fi, open(os.path.join(destination, f), "wb") as fo:
                fo.write(fi.read())
            files.append(f)
    report = "".join(f"copied  {r['name']} {r['shape']}  <- {r['source']}\n" for r in records)
    report += f"copied {len(records)}, initialised 0, dropped 0; {len(files)} file(s)\n"
    return dict(config=cfg.to_dict(), tensors=records, copied=len(records), initialised=0, dropped=0, files=files,
                report=report)
