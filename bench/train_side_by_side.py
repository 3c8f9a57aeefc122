"""lina.ops, fla 0.6.0 and PyTorch SDPA forward + backward in one process on one GPU: the same
tensors and cotangent, the same timer (triton.testing.do_bench medians of fwd + bwd, ms), and
the peak memory of one fwd + bwd above what was allocated before it (the inputs, the cotangent
and the gradients' leaves): torch.cuda.max_memory_allocated, which sees lina's backward scratch
too (lina.ops allocates it through torch). One JSON object per row.

Usage (on the GPU machine, lina's extension and fla on PYTHONPATH; bench/run_train_side_by_side.sh):
  python3 bench/train_side_by_side.py [OPS] [SHAPES] > rows.jsonl
OPS: comma-separated among gla, simple_gla, retention, gsa, sdpa. SHAPES: comma-separated labels
(default: all). LINA_FLA_WARM=I/N: a warm-up process (see forward_side_by_side.py).
"""
import gc
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import triton

from fla.ops.gla import chunk_gla
from fla.ops.gsa import chunk_gsa
from fla.ops.retention import chunk_retention
from fla.ops.simple_gla import chunk_simple_gla

from fla_warm import slice_autotuners  # noqa: E402  (bench/, the script's folder)

WARM = slice_autotuners()
if not WARM:
    from lina import ops as lina_ops

VARLEN = [4096, 1024, 3517, 512, 2048, 4096, 777, 3000, 1500, 2600, 64, 5000, 1724, 2000]
SHAPES = [("B4_T4096_H64_D128", 4, 4096, 64, 128, None), ("B8_T2048_H16_D128", 8, 2048, 16, 128, None),
          ("B2_T16384_H16_D128", 2, 16384, 16, 128, None), ("varlen14_T31958_H16_D128", 1, sum(VARLEN), 16, 128, VARLEN)]
OPS = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] else ["gla", "simple_gla", "retention", "gsa", "sdpa"]
if len(sys.argv) > 2:
    SHAPES = [s for s in SHAPES if s[0] in sys.argv[2].split(",")]
M = 64
dev = torch.device("cuda")
name = torch.cuda.get_device_name(0)


def emit(**kw):
    print(json.dumps({"tool": "train_side_by_side.py", "device": name, **kw}), flush=True)


def measure(step, leaves):
    """First call (ms), median fwd+bwd (ms), peak memory above the baseline (MiB)."""
    def run():
        for t in leaves:
            t.grad = None
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    run()
    torch.cuda.synchronize()
    first = (time.perf_counter() - t0) * 1e3
    if WARM:
        return first, None, None
    for t in leaves:
        t.grad = None
    gc.collect()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    ms = triton.testing.do_bench(run, warmup=10, rep=100, return_mode="median")
    return first, ms, peak


for label, B, T, H, D, lens in SHAPES:
    torch.manual_seed(0)
    cu = None
    if lens is not None:
        cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0)), device=dev, dtype=torch.long)
    mk = lambda *shape, dt=torch.bfloat16: torch.randn(*shape, device=dev, dtype=dt)
    q, k, v = (mk(B, T, H, D).requires_grad_() for _ in range(3))
    g = (F.logsigmoid(mk(B, T, H, D, dt=torch.float32)) / 16).to(torch.bfloat16).requires_grad_()
    gs = (F.logsigmoid(mk(B, T, H, dt=torch.float32)) / 16).requires_grad_()
    s = mk(B, T, H, M).requires_grad_()
    gm = (F.logsigmoid(mk(B, T, H, M, dt=torch.float32)) / 16).to(torch.bfloat16).requires_grad_()
    do = mk(B, T, H, D)
    calls = {
        "gla": (lambda f: f.chunk_gla(q, k, v, g, cu_seqlens=cu)[0], [q, k, v, g]),
        "simple_gla": (lambda f: f.chunk_simple_gla(q, k, v, gs, cu_seqlens=cu)[0], [q, k, v, gs]),
        "retention": (lambda f: f.chunk_retention(q, k, v, cu_seqlens=cu)[0], [q, k, v]),
        "gsa": (lambda f: f.chunk_gsa(q, k, v, s, gm, cu_seqlens=cu)[0], [q, k, v, s, gm]),
    }

    class Fla:
        chunk_gla, chunk_simple_gla, chunk_retention, chunk_gsa = chunk_gla, chunk_simple_gla, chunk_retention, chunk_gsa

    for op in OPS:
        if op == "sdpa":
            if WARM or lens is not None:
                continue
            qt, kt, vt = (x.detach().transpose(1, 2).requires_grad_() for x in (q, k, v))
            dot = do.transpose(1, 2)
            first, ms, peak = measure(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=True).backward(dot), [qt, kt, vt])
            emit(op="sdpa", shape=label, sdpa_fwd_bwd_ms=round(ms, 4), sdpa_peak_mib=round(peak, 1))
            continue
        fn, leaves = calls[op]
        row = dict(op=op, shape=label)
        if not WARM:  # a sanity check that both sides ran the same math (accuracy is the GPU suites' job)
            try:
                with torch.no_grad():
                    a, b = fn(lina_ops).float(), fn(Fla).float()
                row["fwd_rel_diff_vs_fla"] = float(f"{((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item():.3g}")
                del a, b
            except Exception as e:  # noqa: BLE001
                row["fwd_rel_diff_error"] = f"{type(e).__name__}: {str(e)[:120]}"

        for side, module in (("fla", Fla), ("lina", None if WARM else lina_ops)):
            if module is None:
                continue
            try:
                first, ms, peak = measure(lambda: fn(module).backward(do), leaves)
            except Exception as e:  # noqa: BLE001 - a refusal is a result of the row
                row[f"{side}_error"] = f"{type(e).__name__}: {str(e)[:200]}"
                continue
            if WARM:
                continue
            row.update({f"{side}_fwd_bwd_ms": round(ms, 4), f"{side}_peak_mib": round(peak, 1), f"{side}_first_call_ms": round(first, 1)})
        if WARM:
            continue
        if "fla_fwd_bwd_ms" in row and "lina_fwd_bwd_ms" in row:
            row["speedup_vs_fla"] = round(row["fla_fwd_bwd_ms"] / row["lina_fwd_bwd_ms"], 3)
            row["memory_vs_fla"] = round(row["lina_peak_mib"] / max(row["fla_peak_mib"], 1e-6), 3)
        emit(**row)
    del q, k, v, g, gs, s, gm, do
    torch.cuda.empty_cache()
