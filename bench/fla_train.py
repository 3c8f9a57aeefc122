"""fla and PyTorch SDPA forward + backward timings on the shapes lina-bench --backward uses.

Run on the GPU machine with fla's wheels on PYTHONPATH (see bench/run_train.sh). One JSON object
per line. Times are triton.testing.do_bench medians (ms) of the forward alone and of forward +
backward (o.backward(do), gradients of q, k, v and the gates); `first_call_ms` is the wall time
of the first forward + backward at that shape (Triton compile + autotune of both).

LINA_FLA_WARM=I/N: a warm-up process, one of N run side by side before the timed one. Each
compiles only every N-th config of each of fla's autotuned kernels (starting at the I-th) into
Triton's on-disk cache, so the N processes compile fla's kernels in parallel; the timed process
then autotunes over every config without compiling (its first_call_ms is then not a cold start).
It prints no timings.
"""
import os
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
if len(sys.argv) > 2:
    SHAPES = SHAPES[:int(sys.argv[2])]
OPS = sys.argv[1].split(",") if len(sys.argv) > 1 else ["gla", "simple_gla", "retention", "gsa", "sdpa"]
from fla_warm import slice_autotuners  # noqa: E402  (bench/, the script's folder)

WARM = slice_autotuners()
dev = torch.device("cuda")
name = torch.cuda.get_device_name(0)


def emit(**kw):
    print(json.dumps({"tool": "fla_train.py", "device": name, **kw}), flush=True)


for B, T, H, D in SHAPES:
    torch.manual_seed(0)
    leaf = lambda *s, dtype=torch.bfloat16: torch.randn(*s, device=dev, dtype=dtype).requires_grad_()
    q, k, v = leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, D)
    g = (F.logsigmoid(torch.randn(B, T, H, D, device=dev)) / 16).to(torch.bfloat16).requires_grad_()
    gs = (F.logsigmoid(torch.randn(B, T, H, device=dev)) / 16).float().requires_grad_()
    s = leaf(B, T, H, 64)
    gm = (F.logsigmoid(torch.randn(B, T, H, 64, device=dev)) / 16).to(torch.bfloat16).requires_grad_()
    calls = {
        "gla": lambda: chunk_gla(q, k, v, g)[0],
        "simple_gla": lambda: chunk_simple_gla(q, k, v, gs)[0],
        "retention": lambda: chunk_retention(q, k, v)[0],
        "gsa": lambda: chunk_gsa(q, k, v, s, gm)[0],
        "sdpa": lambda: F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True),
    }
    do = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    for op in OPS:
        fn = calls[op]
        grad = do.transpose(1, 2) if op == "sdpa" else do

        def step():
            fn().backward(grad)

        torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            step()
        except Exception as e:  # fla refuses some backward kernels on some GPU/Triton pairs
            emit(op=op, B=B, T=T, H=H, D=D, error=f"{type(e).__name__}: {e}")
            continue
        torch.cuda.synchronize()
        first = (time.perf_counter() - t0) * 1e3
        if WARM:
            emit(op=op, B=B, T=T, H=H, D=D, warm=WARM, first_call_ms=round(first, 1))
            continue
        with torch.no_grad():
            fwd = triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")
        both = triton.testing.do_bench(step, warmup=25, rep=200, return_mode="median", grad_to_none=[q, k, v, g, gs, s, gm])
        emit(op=op, B=B, T=T, H=H, D=D, dims=f"K={D},V={D}" + (",M=64" if op == "gsa" else ""),
             forward_median_ms=round(fwd, 4), fwd_bwd_median_ms=round(both, 4),
             backward_ms_by_difference=round(both - fwd, 4), first_call_ms=round(first, 1))
