"""lina.ops, fla 0.6.0 and PyTorch SDPA forwards in one process on one GPU: the same tensors,
the same timer (triton.testing.do_bench medians, ms), one JSON object per row.

Usage (on the GPU machine, lina's extension and fla on PYTHONPATH; bench/run_side_by_side.sh):
  python3 bench/forward_side_by_side.py [OPS] > rows.jsonl
OPS: comma-separated among gla, simple_gla, retention, gsa, linear_attn (a program outside lina's
library, tests/programs/linear_attention.lina, against fla's chunk_linear_attn with
normalize=False) and sdpa (causal flash attention on the same q, k, v). Each row has lina's and
fla's medians, fla/lina (the speed-up), lina's fraction of the HBM roofline (the bytes every
forward must move, inputs once and the output once, over the card's peak bandwidth), and the
largest difference of lina's output from fla's relative to fla's largest magnitude (a sanity
check that both ran the same math; lina's accuracy is checked by the GPU test suites).

LINA_FLA_WARM=I/N: a warm-up process, one of N run side by side before the timed one: it compiles
every N-th config of fla's autotuned kernels into Triton's on-disk cache and prints nothing.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import triton

from fla.ops.gla import chunk_gla
from fla.ops.gsa import chunk_gsa
from fla.ops.linear_attn import chunk_linear_attn
from fla.ops.retention import chunk_retention
from fla.ops.simple_gla import chunk_simple_gla

from fla_warm import slice_autotuners  # noqa: E402  (bench/, the script's folder)

WARM = slice_autotuners()
if not WARM:
    import lina
    from lina import ops as lina_ops
    # fla checks nothing about its gates; lina.ops checks their sign by default (one reduction and
    # host sync per call). The kernels are compared without it unless LINA_BENCH_GATE_CHECK=1;
    # each row records which (lina_gate_check).
    GATE_CHECK = os.environ.get("LINA_BENCH_GATE_CHECK", "0") == "1"
    lina_ops.check_gates(GATE_CHECK)
    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    linear_attention = lina.compile(os.path.join(ROOT, "tests", "programs", "linear_attention.lina"))

# (label, B, T, H, D, cu_seqlens): the fixed shapes of the fast-forward issue and a varlen batch of
# 14 sequences (31958 tokens) packed into B = 1.
VARLEN = [4096, 1024, 3517, 512, 2048, 4096, 777, 3000, 1500, 2600, 64, 5000, 1724, 2000]
SHAPES = [("B4_T4096_H64_D128", 4, 4096, 64, 128, None), ("B8_T2048_H16_D128", 8, 2048, 16, 128, None),
          ("B2_T16384_H16_D128", 2, 16384, 16, 128, None), ("B8_T1024_H8_D64", 8, 1024, 8, 64, None),
          ("varlen14_T31958_H16_D128", 1, sum(VARLEN), 16, 128, VARLEN)]
if os.environ.get("LINA_BENCH_SHAPES"):  # only these shapes (labels as above), e.g. to finish a table
    SHAPES = [s for s in SHAPES if s[0] in os.environ["LINA_BENCH_SHAPES"].split(",")]
OPS = sys.argv[1].split(",") if len(sys.argv) > 1 else ["gla", "simple_gla", "retention", "gsa", "linear_attn", "sdpa"]
M = 64  # GSA slots
dev = torch.device("cuda")
name = torch.cuda.get_device_name(0)
PEAK_BYTES_PER_S = 4.8e12 if "H200" in name else 3.35e12  # HBM3(e) peak of the SXM cards


def emit(**kw):
    print(json.dumps({"tool": "forward_side_by_side.py", "device": name, **kw}), flush=True)


def first_and_median(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    first = (time.perf_counter() - t0) * 1e3
    if WARM:
        return out, first, None
    return out, first, triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


def rel_diff(a, b):
    a, b = a.float(), b.float()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


for label, B, T, H, D, lens in SHAPES:
    torch.manual_seed(0)
    cu = None
    if lens is not None:
        cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0)), device=dev, dtype=torch.long)
    q = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    k = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    v = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    g = (F.logsigmoid(torch.randn(B, T, H, D, device=dev)) / 16).to(torch.bfloat16)
    gs = (F.logsigmoid(torch.randn(B, T, H, device=dev)) / 16).float()
    s = torch.randn(B, T, H, M, device=dev, dtype=torch.bfloat16)
    gm = (F.logsigmoid(torch.randn(B, T, H, M, device=dev)) / 16).to(torch.bfloat16)
    tok = B * T * H
    qkvo = 4 * tok * D * 2
    bytes_moved = {"gla": qkvo + tok * D * 2, "simple_gla": qkvo + tok * 4, "retention": qkvo,
                   "gsa": qkvo + 2 * tok * M * 2, "linear_attn": qkvo}
    fla_calls = {
        "gla": lambda: chunk_gla(q, k, v, g, cu_seqlens=cu)[0],
        "simple_gla": lambda: chunk_simple_gla(q, k, v, gs, cu_seqlens=cu)[0],
        "retention": lambda: chunk_retention(q, k, v, cu_seqlens=cu)[0],
        "gsa": lambda: chunk_gsa(q, k, v, s, gm, cu_seqlens=cu)[0],
        "linear_attn": lambda: chunk_linear_attn(q, k, v, normalize=False, cu_seqlens=cu)[0],
    }
    if not WARM:
        lina_calls = {
            "gla": lambda: lina_ops.chunk_gla(q, k, v, g, cu_seqlens=cu)[0],
            "simple_gla": lambda: lina_ops.chunk_simple_gla(q, k, v, gs, cu_seqlens=cu)[0],
            "retention": lambda: lina_ops.chunk_retention(q, k, v, cu_seqlens=cu)[0],
            "gsa": lambda: lina_ops.chunk_gsa(q, k, v, s, gm, cu_seqlens=cu)[0],
            "linear_attn": lambda: linear_attention(q=q, k=k, v=v, cu_seqlens=cu)[0],
        }
    for op in OPS:
        if op == "sdpa":
            if WARM or lens is not None:
                continue  # the varlen batch would need a block mask; SDPA rows are the fixed shapes
            qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
            _, _, ms = first_and_median(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=True))
            emit(op="sdpa", shape=label, sdpa_ms=round(ms, 4))
            continue
        try:
            fla_out, fla_first, fla_ms = first_and_median(fla_calls[op])
        except Exception as e:  # noqa: BLE001 - a refusal by fla is a result of the row
            fla_out, fla_first, fla_ms = None, None, None
            fla_error = f"{type(e).__name__}: {str(e)[:200]}"
        else:
            fla_error = None
        if WARM:
            continue
        lina_out, lina_first, lina_ms = first_and_median(lina_calls[op])
        row = dict(op=op, shape=label, lina_ms=round(lina_ms, 4), lina_first_call_ms=round(lina_first, 1),
                   lina_gate_check=GATE_CHECK,
                   roofline_ms=round(bytes_moved[op] / PEAK_BYTES_PER_S * 1e3, 4),
                   roofline_fraction=round(bytes_moved[op] / PEAK_BYTES_PER_S * 1e3 / lina_ms, 3))
        if fla_ms is not None:
            row.update(fla_ms=round(fla_ms, 4), speedup_vs_fla=round(fla_ms / lina_ms, 3),
                       fla_first_call_ms=round(fla_first, 1), rel_diff_vs_fla=float(f"{rel_diff(lina_out, fla_out):.3g}"))
        else:
            row.update(fla_error=fla_error)
        emit(**row)
    del q, k, v, g, gs, s, gm
    torch.cuda.empty_cache()
