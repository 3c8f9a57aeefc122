"""fla's own layers and models, unpatched and through lina.patch_fla(), in one process on one GPU
(#20): fla 0.6.0's GatedLinearAttention, SimpleGatedLinearAttention, MultiScaleRetention and
GatedSlotAttention layers (fla's defaults, bf16), and its GLA / RetNet / GSA causal LMs at the
340M configurations (random weights, fla-spec §6), fixed length and packed with cu_seqlens, T below
and above 64 (fla switches from fused_recurrent to chunk there). Each row gives fla's ratio error
RMS(lina - fla) / RMS(fla) of the output and of every gradient (the worst parameter named), and
passes below fla's bf16 test ratios (0.005 output, 0.02 gradients, as fla's op tests use at bf16).
Prints one JSON line per row.

    python bench/fla_patch_vs_fla.py [--models] [--layers]
"""
import argparse
import json
import os
import sys
import traceback

import torch

import lina

OUT_RATIO, GRAD_RATIO = 0.005, 0.02

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# The 340M configurations lina ships (fla-spec §6), in fla's config.json format.
CONFIGS_340M = {family: os.path.join(ROOT, "library", "models", f"{family}-340M.json") for family in ("gla", "retnet", "gsa")}


def ratio(a, b):
    a, b = a.float(), b.float()
    return ((a - b).pow(2).mean().sqrt() / (b.pow(2).mean().sqrt() + 1e-8)).item()


def emit(row):
    print(json.dumps(row), flush=True)


def run(module, make_input, backward_of):
    module.zero_grad(set_to_none=True)
    x, kwargs = make_input()
    out = module(x, **kwargs)
    out = out[0] if isinstance(out, tuple) else out.logits
    backward_of(out).backward()
    grads = {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}
    if x.dtype.is_floating_point:
        grads["input"] = x.grad.detach().clone()
    return out.detach().clone(), grads


def compare(row, module, make_input):
    torch.manual_seed(1)
    probe = None

    def backward_of(out):
        nonlocal probe
        if probe is None:
            probe = torch.randn_like(out)
        return (out.float() * probe.float()).sum()

    ref_out, ref_grads = run(module, make_input, backward_of)
    with lina.patch_fla() as patch:
        out, grads = run(module, make_input, backward_of)
        row["patched_ops"] = len(patch.replaced)
    row["out_ratio"] = ratio(out, ref_out)
    worst = max(ref_grads, key=lambda n: ratio(grads[n], ref_grads[n]))
    row["grad_ratio_max"], row["grad_ratio_worst"] = ratio(grads[worst], ref_grads[worst]), worst
    row["nan"] = bool(torch.isnan(out).any())
    row["pass"] = row["out_ratio"] < OUT_RATIO and row["grad_ratio_max"] < GRAD_RATIO and not row["nan"]
    emit(row)


def layers(device):
    import fla.layers as L
    from fla.layers.simple_gla import SimpleGatedLinearAttention
    makers = {
        "GatedLinearAttention": lambda: L.GatedLinearAttention(hidden_size=1024, num_heads=4, expand_k=0.5),
        "SimpleGatedLinearAttention": lambda: SimpleGatedLinearAttention(hidden_size=1024, num_heads=4),
        "MultiScaleRetention": lambda: L.MultiScaleRetention(hidden_size=1024, num_heads=4),
        "GatedSlotAttention": lambda: L.GatedSlotAttention(hidden_size=1024, num_heads=4, num_slots=64),
    }
    for name, make in makers.items():
        for T in (40, 100, 1000):
            for varlen in (False, True):
                row = dict(kind="layer", layer=name, T=T, varlen=varlen)
                try:
                    torch.manual_seed(0)
                    layer = make().to(device, torch.bfloat16)

                    def make_input():
                        torch.manual_seed(2)
                        if varlen:
                            x = torch.randn(1, 2 * T, 1024, device=device, dtype=torch.bfloat16).requires_grad_()
                            cu = torch.tensor([0, T // 3, 2 * T], device=device)
                            return x, dict(cu_seqlens=cu)
                        return torch.randn(2, T, 1024, device=device, dtype=torch.bfloat16).requires_grad_(), {}
                    compare(row, layer, make_input)
                except Exception as e:
                    row.update(error=f"{type(e).__name__}: {e}"[:400])
                    emit(row)
                    traceback.print_exc(file=sys.stderr)


def models(device):
    import fla  # noqa: F401  (registers fla's configs with transformers)
    import transformers
    for family, cfg in CONFIGS_340M.items():
        try:
            torch.manual_seed(0)
            with open(cfg) as f:
                values = json.load(f)
            config = transformers.AutoConfig.for_model(values.pop("model_type"), **values)
            model = transformers.AutoModelForCausalLM.from_config(config).to(device, torch.bfloat16)
        except Exception as e:
            emit(dict(kind="model", family=family, error=f"{type(e).__name__}: {e}"[:400]))
            traceback.print_exc(file=sys.stderr)
            continue
        for T in (40, 300):
            for varlen in (False, True):
                row = dict(kind="model", family=family, config="340M", T=T, varlen=varlen)
                try:
                    def make_input():
                        torch.manual_seed(3)
                        ids = torch.randint(0, 32000, (2, T), device=device)
                        if varlen:
                            return ids.view(1, -1), dict(cu_seqlens=torch.tensor([0, T // 3, 2 * T], device=device))
                        return ids, {}
                    compare(row, model, make_input)
                except Exception as e:
                    row.update(error=f"{type(e).__name__}: {e}"[:400])
                    emit(row)
                    traceback.print_exc(file=sys.stderr)
        del model
        torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", action="store_true", help="only the 340M models")
    parser.add_argument("--layers", action="store_true", help="only the layers")
    args = parser.parse_args()
    device = "cuda"
    emit(dict(device=torch.cuda.get_device_name(0), torch=torch.__version__, lina=getattr(lina, "__version__", "?")))
    if not args.models:
        layers(device)
    if not args.layers:
        models(device)


if __name__ == "__main__":
    main()
