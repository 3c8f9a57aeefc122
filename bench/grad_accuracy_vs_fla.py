"""Gradient accuracy of lina.ops (auto and register-tile kernels) and fla 0.6.0 on the same bf16
inputs, against one fp64 reference (a plain recurrence with autograd), in one process on one GPU.
The checked loss is fla's: sum(o * do) + sum(ht * dht). The metric is fla's assert_close ratio,
RMS(ref - x) / RMS(ref) (research/fla-spec.md 8.1).

Inputs: "randn" is lina's check (q, k, v, h0 ~ N(0, 1), g = logsigmoid(N(0, 1))); "fla_test" is
fla's tests/ops/test_gla.py (q, k, v, h0 ~ U[0, 1), g = logsigmoid(U[0, 1))).
Usage: python3 bench/grad_accuracy_vs_fla.py [OPS]  (OPS: gla,simple_gla). LINA_FLA_WARM=I/N warms
fla's autotuner with a slice of its configs (see train_side_by_side.py). One JSON object per row."""
import json
import os
import sys

import torch
import torch.nn.functional as F

from fla.ops.gla import chunk_gla
from fla.ops.simple_gla import chunk_simple_gla

from fla_warm import slice_autotuners  # noqa: E402  (bench/, the script's folder)

WARM = slice_autotuners()
if not WARM:
    from lina import ops as lina_ops

OPS = sys.argv[1].split(",") if len(sys.argv) > 1 else ["gla", "simple_gla"]
SHAPES = [(2, 300, 2, 64), (1, 4096, 2, 128)]
dev = torch.device("cuda")


def reference(q, k, v, g, h0, do, dht, vector_gate):
    """fp64 recurrence: S_t = exp(g_t) S_{t-1} + k_t v_t^T, o_t = S_t^T q_t / sqrt(K)."""
    q, k, v, g, h0 = (t.double().detach().requires_grad_() for t in (q, k, v, g, h0))
    B, T, H, K = q.shape
    S = h0
    outs = []
    for t in range(T):
        a = g[:, t].exp()[..., None] if vector_gate else g[:, t].exp()[..., None, None]
        S = a * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * K ** -0.5, S))
    o = torch.stack(outs, 1)
    loss = (o * do.double()).sum() + (S * dht.double()).sum()
    loss.backward()
    return {"o": o.detach(), "dq": q.grad, "dk": k.grad, "dv": v.grad, "dg": g.grad, "dh0": h0.grad}


def run(fn, q, k, v, g, h0, do, dht):
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v, g, h0)]
    o, ht = fn(*leaves)
    ((o.float() * do.float()).sum() + (ht.float() * dht).sum()).backward()
    qq, kk, vv, gg, hh = leaves
    return {"o": o.detach(), "dq": qq.grad, "dk": kk.grad, "dv": vv.grad, "dg": gg.grad, "dh0": hh.grad}


def ratio(ref, x):
    ref, x = ref.double(), x.double()
    return float((ref - x).pow(2).mean().sqrt() / (ref.pow(2).mean().sqrt() + 1e-8))


for op in OPS:
    vector_gate = op == "gla"
    for B, T, H, D in SHAPES:
        for inputs in ("randn", "fla_test"):
            torch.manual_seed(0)
            draw = torch.randn if inputs == "randn" else torch.rand
            q, k, v = (draw(B, T, H, D, device=dev) for _ in range(3))
            g = F.logsigmoid(draw(B, T, H, D, device=dev) if vector_gate else draw(B, T, H, device=dev))
            h0 = draw(B, H, D, D, device=dev)
            do, dht = torch.randn(B, T, H, D, device=dev), torch.randn(B, H, D, D, device=dev)
            bf = [t.bfloat16() for t in (q, k, v, g)]  # g in the inputs' dtype, as fla's tests pass it
            if vector_gate:
                fla_fn = lambda q, k, v, g, h0: chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True)
            else:
                fla_fn = lambda q, k, v, g, h0: chunk_simple_gla(q, k, v, g, initial_state=h0, output_final_state=True)
            if WARM:
                run(fla_fn, *bf, h0, do, dht)
                continue
            ref = reference(*(t.float() for t in bf), h0, do, dht, vector_gate)
            rows = {"fla": run(fla_fn, *bf, h0, do, dht)}
            lina_fn = (lambda q, k, v, g, h0: lina_ops.chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True)) \
                if vector_gate else \
                (lambda q, k, v, g, h0: lina_ops.chunk_simple_gla(q, k, v, g, initial_state=h0, output_final_state=True))
            for level in ("auto", "register"):
                os.environ["LINA_KERNELS"] = level
                try:
                    rows["lina_" + level] = run(lina_fn, *bf, h0, do, dht)
                except Exception as e:  # noqa: BLE001 (reported as a row)
                    rows["lina_" + level] = str(e)[:200]
            os.environ.pop("LINA_KERNELS", None)
            for who, got in rows.items():
                row = {"op": op, "shape": f"B{B}_T{T}_H{H}_D{D}", "inputs": inputs, "who": who}
                if isinstance(got, str):
                    row["error"] = got
                else:
                    row.update({name: ratio(ref[name], got[name]) for name in ref})
                print(json.dumps(row), flush=True)
