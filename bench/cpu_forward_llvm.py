"""GLA forward on the CPU (#21): lina.ops.chunk_gla on fp32 CPU tensors through the LLVM backend
(compiled chunked kernels, fused at chunk 16 / 32 / 64 and recurrent) against a plain PyTorch
implementation of the chunked form (fp32, the same threads) and against lina's reference
interpreter (float64, strategy="reference"), in one process on this machine. Prints one JSON
line per row: median ms over the timed runs, the first call (LLVM compile included), and the
largest difference from the float64 reference relative to its largest entry.

    PYTHONPATH=build/python python bench/cpu_forward_llvm.py [--shape B,T,H,D] [--reps N]
"""
import argparse
import json
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import lina
from lina import ops


def torch_chunked_gla(q, k, v, g, chunk=16):
    """The chunked form in plain PyTorch (fla-spec §3.2): within a chunk, q and k rescaled by the
    cumulative gate; across chunks, the state S [B, H, K, V]."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    scale = K ** -0.5
    S = q.new_zeros(B, H, K, V)
    out = []
    mask = torch.ones(chunk, chunk, dtype=torch.bool).tril()
    for c0 in range(0, T, chunk):
        qc, kc, vc, gc = (x[:, c0:c0 + chunk].transpose(1, 2) for x in (q, k, v, g))  # [B, H, C, d]
        b = gc.cumsum(2)
        qt, kt = qc * scale * b.exp(), kc * (-b).exp()
        L = qc.shape[2]
        attn = (qt @ kt.transpose(-1, -2)).masked_fill(~mask[:L, :L], 0)
        out.append((attn @ vc + qt @ S).transpose(1, 2))
        last = b[:, :, -1:]
        S = S * last.transpose(-1, -2).exp() + (kc * (last - b).exp()).transpose(-1, -2) @ vc
    return torch.cat(out, 1), S


def timed(fn, reps):
    start = time.perf_counter()
    result = fn()
    first = (time.perf_counter() - start) * 1e3
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return result, first, statistics.median(times) if times else first


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1,4096,4,64", help="B,T,H,D (default 1,4096,4,64)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--reference", type=int, default=1, help="1: also time the reference interpreter")
    args = parser.parse_args()
    B, T, H, D = (int(x) for x in args.shape.split(","))
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, T, H, D) for _ in range(3))
    g = F.logsigmoid(torch.randn(B, T, H, D)) / 16  # fla's GLA layer: logsigmoid / gate_logit_normalizer
    label = f"B{B}_T{T}_H{H}_D{D}"
    base = dict(shape=label, cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads(),
                lina=lina.__version__, torch=torch.__version__, llvm=bool(lina._lina.llvm_available()))
    ref, ref_first, ref_ms = timed(lambda: ops.chunk_gla(q.double(), k.double(), v.double(), g.double(),
                                                         strategy="reference")[0], 0)
    scale = ref.abs().max().item()
    rows = [dict(impl="lina reference interpreter (float64)", ms=round(ref_ms, 2), first_ms=round(ref_first, 2))]
    for strategy, chunk in (("auto", 0), ("fused", 16), ("fused", 32), ("fused", 64), ("recurrent", 0)):
        out, first, ms = timed(lambda: ops.chunk_gla(q, k, v, g, strategy=strategy, chunk_size=chunk or None)[0], args.reps)
        rows.append(dict(impl=f"lina LLVM {strategy}" + (f" chunk {chunk}" if chunk else ""), ms=round(ms, 2),
                         first_ms=round(first, 2), max_diff_vs_reference=float(f"{(out.double() - ref).abs().max() / scale:.3g}")))
    for chunk in (16, 64):
        out, first, ms = timed(lambda: torch_chunked_gla(q, k, v, g, chunk)[0], args.reps)
        rows.append(dict(impl=f"PyTorch chunked chunk {chunk}", ms=round(ms, 2), first_ms=round(first, 2),
                         max_diff_vs_reference=float(f"{(out.double() - ref).abs().max() / scale:.3g}")))
    torch_best = min(r["ms"] for r in rows if r["impl"].startswith("PyTorch"))
    for r in rows:
        r["speedup_vs_best_pytorch"] = round(torch_best / r["ms"], 3)
        print(json.dumps(dict(base, **r)), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
