"""Where lina-run and fla's HF model part ways, in fp32 on one GPU (a diagnostic, not a benchmark).

1. Logits after a short prompt (fla's fused_recurrent path, <= 64 tokens) and a 512-token prompt
   (fla's chunk path): lina-run --dtype fp32 against fla's model loaded in fp32.
2. Layer 0's mixer on fla's own normed input: fla's layer against a plain torch recurrence of the
   semantics lina implements (library/model/cpu_model.cc), with fla's kernel call intercepted, so
   the op's inputs (q, k, v, gate), its output and the layer's output are compared stage by stage.
Usage: python3 bench/parity_layers.py MODEL_DIR LINA_RUN. Prints one JSON object per row."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

model_dir, lina_run = sys.argv[1], sys.argv[2]
import fla  # noqa: F401,E402
import fla.layers.gla as fla_gla  # noqa: E402
import fla.layers.multiscale_retention as fla_ret  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).cuda().eval()
cfg = model.config
mtype = cfg.model_type
rng = np.random.default_rng(0)
prompt = rng.integers(3, cfg.vocab_size, size=512).tolist()


def ratio(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return float(((a - b).pow(2).mean() / b.pow(2).mean().clamp_min(1e-30)).sqrt())


def emit(**kw):
    print(json.dumps({"model": mtype, **kw}), flush=True)


for n in (48, 512):
    ids = prompt[:n]
    with torch.no_grad():
        ref = model(torch.tensor([ids], device="cuda")).logits[0, -1].float().cpu()
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "l.bin")
        r = subprocess.run([lina_run, "--model", model_dir, "--token-ids", ",".join(map(str, ids)), "--max-new-tokens", "1",
                            "--dtype", "fp32", "--stop-at-eos", "0", "--dump-logits", dump], capture_output=True, text=True)
        if r.returncode != 0:
            emit(stage="lina-run", error=r.stderr[-400:])
            continue
        got = torch.from_numpy(np.fromfile(dump, dtype=np.float32))
    emit(stage=f"logits fp32 prompt {n}", rms_ratio=ratio(got, ref), argmax_same=bool(got.argmax() == ref.argmax()))

if mtype not in ("gla", "retnet"):
    sys.exit(0)

# Layer 0 with the kernel call intercepted.
seen = {}
mod = fla_gla if mtype == "gla" else fla_ret
for name in [n for n in dir(mod) if n.startswith(("chunk_", "fused_recurrent_", "fused_chunk_", "parallel_"))]:
    fn = getattr(mod, name)

    def wrapped(*args, __fn=fn, __name=name, **kw):
        out = __fn(*args, **kw)
        seen.update(name=__name, q=kw.get("q", args[0] if args else None), k=kw.get("k"), v=kw.get("v"),
                    g=kw.get("gk", kw.get("g")), o=out[0])
        return out
    setattr(mod, name, wrapped)

layer = model.model.layers[0]
attn = layer.attn
for n in (48, 512):
    ids = torch.tensor([prompt[:n]], device="cuda")
    with torch.no_grad():
        x = layer.attn_norm(model.model.embeddings(ids))[0]  # [T, D]
        fla_out = attn(x[None])[0][0]
        T, H = x.shape[0], attn.num_heads
        K, V = attn.head_k_dim, attn.head_v_dim
        q = (x @ attn.q_proj.weight.T).view(T, H, K)
        k = (x @ attn.k_proj.weight.T).view(T, H, K)
        v = (x @ attn.v_proj.weight.T).view(T, H, V)
        if mtype == "gla":
            w0, w1 = attn.gk_proj[0], attn.gk_proj[1]
            g = (F.logsigmoid((x @ w0.weight.T) @ w1.weight.T + w1.bias) / attn.gate_logit_normalizer).view(T, H, K)
            a = g.exp()
        else:
            pos = torch.arange(T, device="cuda", dtype=torch.float64)
            inv = 10000.0 ** (-torch.arange(0, K // 2, device="cuda", dtype=torch.float64) * 2 / K)
            ang = pos[:, None] * inv[None]
            cos, sin = ang.cos().float()[:, None], ang.sin().float()[:, None]

            def rope(t):
                t1, t2 = t[..., :K // 2], t[..., K // 2:]
                return torch.cat([t1 * cos - t2 * sin, t2 * cos + t1 * sin], -1)
            q, k = rope(q), rope(k)
            dec = 1 - 2.0 ** (-5.0 - torch.arange(H, device="cuda", dtype=torch.float32))
            g = dec.log()[None, :, None].expand(T, H, K)
            a = dec[None, :, None].expand(T, H, K)
        S = torch.zeros(H, K, V, device="cuda")
        o = torch.empty(T, H, V, device="cuda")
        for t in range(T):
            S = a[t][..., None] * S + k[t][..., None] * v[t][:, None, :]
            o[t] = K ** -0.5 * torch.einsum("hk,hkv->hv", q[t], S)
        gate = (x @ attn.g_proj.weight.T).view(T, H, V)
        norm = attn.g_norm_swish_gate
        on = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight * F.silu(gate)
        mine = on.reshape(T, H * V) @ attn.o_proj.weight.T
    for key, val in (("q", q), ("k", k), ("v", v), ("g", g if mtype == "gla" else None)):
        got = seen.get(key)
        if got is not None and val is not None:
            emit(stage=f"layer0 T{n} op input {key}", op=seen["name"], shape=list(got.shape), rms_ratio=ratio(val.reshape(got.shape), got))
    if "o" in seen:
        emit(stage=f"layer0 T{n} op output o", op=seen["name"], rms_ratio=ratio(o.reshape(seen["o"].shape), seen["o"]))
    emit(stage=f"layer0 T{n} mixer output", rms_ratio=ratio(mine, fla_out), eps=norm.eps)
