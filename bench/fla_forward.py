"""fla and PyTorch SDPA forward timings on the shapes lina-bench uses, for side-by-side ratios.

Run on the GPU machine with fla's wheels on PYTHONPATH (see bench/run_forward.sh). One JSON
object per line. Times are triton.testing.do_bench medians (ms); `first_call_ms` is the wall time
of fla's first call at that shape (Triton compile + autotune), measured once.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F
import triton

from fla.ops.gla import chunk_gla
from fla.ops.gsa import chunk_gsa
from fla.ops.retention import chunk_retention
from fla.ops.simple_gla import chunk_simple_gla

SHAPES = [(4, 4096, 64, 128), (8, 2048, 16, 128)]
OPS = sys.argv[1].split(",") if len(sys.argv) > 1 else ["gla", "simple_gla", "retention", "gsa", "sdpa"]
dev = torch.device("cuda")
name = torch.cuda.get_device_name(0)


def emit(**kw):
    print(json.dumps({"tool": "fla_forward.py", "device": name, **kw}), flush=True)


for B, T, H, D in SHAPES:
    torch.manual_seed(0)
    q = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    k = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    v = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    g = (F.logsigmoid(torch.randn(B, T, H, D, device=dev)) / 16).to(torch.bfloat16)
    gs = (F.logsigmoid(torch.randn(B, T, H, device=dev)) / 16).float()
    s = torch.randn(B, T, H, 64, device=dev, dtype=torch.bfloat16)
    gm = (F.logsigmoid(torch.randn(B, T, H, 64, device=dev)) / 16).to(torch.bfloat16)
    calls = {
        "gla": lambda: chunk_gla(q, k, v, g),
        "simple_gla": lambda: chunk_simple_gla(q, k, v, gs),
        "retention": lambda: chunk_retention(q, k, v),
        "gsa": lambda: chunk_gsa(q, k, v, s, gm),
        "sdpa": lambda: F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True),
    }
    for op in OPS:
        fn = calls[op]
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        first = (time.perf_counter() - t0) * 1e3
        ms = triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")
        emit(op=op, B=B, T=T, H=H, D=D, dims=f"K={D},V={D}" + (",M=64" if op == "gsa" else ""),
             median_ms=round(ms, 4), first_call_ms=round(first, 1))
