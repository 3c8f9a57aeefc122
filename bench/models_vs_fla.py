"""lina.models beside fla's own HF model classes, in one process on one GPU (#18):
1. parity: random GLA / RetNet / GSA / RWKV6 checkpoints written by lina.models load in fla's
   classes; logits (T above and below 64, fixed length and a padded batch with a mask) and the
   gradients of the loss agree within fla's bf16 ratio (RMS(a - b) / RMS(b));
2. conversion: a tiny Mistral (transformers' class) converted to GLA and GSA loads in fla's classes
   with logits equal to lina.models';
3. fine-tuning: a converted Mistral fine-tuned for --steps steps with lina.finetune's loop (loss
   first / last), then tokens/s of the same training step on lina.models and on fla's model.
Prints one JSON line per row. `--no-fla` runs only lina's side (a CPU check of this script).

    python bench/models_vs_fla.py OUT [--steps 300] [--no-fla]
"""
import argparse
import json
import os
import sys
import time
import traceback

import torch

import lina
from lina.models import AutoModelForCausalLM, ForCausalLM, ModelConfig

FAMILIES = {
    "gla": dict(model_type="gla", hidden_size=512, num_hidden_layers=2, num_heads=4, vocab_size=1000),
    "retnet": dict(model_type="retnet", hidden_size=512, num_hidden_layers=2, num_heads=4, vocab_size=1000),
    "gsa": dict(model_type="gsa", hidden_size=512, num_hidden_layers=2, num_heads=4, num_slots=64, vocab_size=1000),
    "rwkv6": dict(model_type="rwkv6", hidden_size=512, num_hidden_layers=2, num_heads=8, vocab_size=1000),
}


def ratio(a, b):
    a, b = a.float(), b.float()
    return ((a - b).pow(2).mean().sqrt() / (b.pow(2).mean().sqrt() + 1e-8)).item()


def emit(row):
    print(json.dumps(row), flush=True)


def fla_model(folder, device, dtype):
    import fla  # noqa: F401  (registers fla's configs and models with transformers' Auto classes)
    import transformers
    return transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)


def parity(out, device, use_fla):
    for family, cfg in FAMILIES.items():
        try:
            folder = os.path.join(out, "ckpt", family)
            torch.manual_seed(0)
            ForCausalLM(ModelConfig(cfg)).save_pretrained(folder)
            ours = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, device=device)
            theirs = fla_model(folder, device, torch.bfloat16) if use_fla else None
            for T in (40, 300):
                torch.manual_seed(T)
                ids = torch.randint(0, 1000, (2, T), device=device)
                mask = torch.ones_like(ids)
                mask[1, : T // 3] = 0  # left padding
                for masked in (False, True):
                    m = mask if masked else None
                    # One loss definition for both (fla's own shifts across a left pad): ours.
                    target = ForCausalLM.shifted_labels(ids, m)
                    ce = lambda logits: torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), target.flatten())
                    a = ours(ids, attention_mask=m).logits
                    loss_a = ce(a)
                    loss_a.backward()
                    row = dict(part="parity", family=family, T=T, masked=masked, lina_loss=loss_a.item())
                    if theirs is not None:
                        b = theirs(input_ids=ids, attention_mask=m).logits
                        loss_b = ce(b)
                        loss_b.backward()
                        real = mask.bool() if masked else torch.ones_like(ids, dtype=torch.bool)
                        row.update(fla_loss=loss_b.item(), logits_ratio=ratio(a[real], b[real]))
                        theirs_p = dict(theirs.named_parameters())
                        worst = max(((ratio(p.grad, theirs_p[n].grad), n) for n, p in ours.named_parameters()
                                     if p.grad is not None and theirs_p.get(n) is not None and theirs_p[n].grad is not None),
                                    default=(float("nan"), ""))
                        row.update(grad_ratio_max=worst[0], grad_worst=worst[1])
                        theirs.zero_grad()
                    ours.zero_grad()
                    emit(row)
        except Exception as e:
            emit(dict(part="parity", family=family, error=f"{type(e).__name__}: {e}"))
            traceback.print_exc()


def tiny_mistral(folder, hidden=512, layers=4):
    import transformers
    torch.manual_seed(0)
    cfg = transformers.MistralConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                     num_attention_heads=8, num_key_value_heads=2, vocab_size=320,
                                     rms_norm_eps=1e-5, tie_word_embeddings=False)
    transformers.MistralForCausalLM(cfg).to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)


def conversion(out, device, use_fla):
    src = os.path.join(out, "ckpt", "mistral")
    tiny_mistral(src)
    for target in ("gla", "gsa"):
        try:
            dst = os.path.join(out, "ckpt", f"mistral-{target}")
            convert = lina.convert.llama_to_gla if target == "gla" else lina.convert.llama_to_gsa
            report = convert(src, dst, config={"num_slots": 64} if target == "gsa" else {})
            ours = AutoModelForCausalLM.from_pretrained(dst, device=device)
            ids = torch.randint(0, 320, (2, 200), device=device)
            row = dict(part="conversion", target=target, copied=report["copied"], initialised=report["initialised"])
            with torch.no_grad():
                a = ours(ids).logits
                if use_fla:
                    row["logits_ratio"] = ratio(a, fla_model(dst, device, torch.bfloat16)(input_ids=ids).logits)
            emit(row)
        except Exception as e:
            emit(dict(part="conversion", target=target, error=f"{type(e).__name__}: {e}"))
            traceback.print_exc()


def training_step_rate(model, device, seq_len, steps, cu_seqlens=True):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 320, (1, seq_len), device=device)
    cu = torch.tensor([0, seq_len // 3, seq_len], dtype=torch.int32, device=device)
    kw = dict(cu_seqlens=cu) if cu_seqlens else {}
    for i in range(steps + 3):
        if i == 3:
            torch.cuda.synchronize() if device == "cuda" else None
            t0 = time.time()
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids, **kw).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    torch.cuda.synchronize() if device == "cuda" else None
    return steps * seq_len / (time.time() - t0)


def finetune(out, device, use_fla, steps):
    from lina import finetune as ft
    src = os.path.join(out, "ckpt", "mistral-gla")
    if not os.path.exists(src):
        emit(dict(part="finetune", error="no converted checkpoint (conversion failed)"))
        return
    text = os.path.join(out, "corpus.txt")
    readme = os.path.join(os.path.dirname(__file__), "..", "README.md")
    with open(readme, encoding="utf-8") as f, open(text, "w", encoding="utf-8") as g:
        g.write(f.read() * 20)
    try:
        losses = ft.train(ft.parse_args(["--model", src, "--output", os.path.join(out, "ft"), "--data", text,
                                         "--tokenizer", "bytes", "--seq-len", "1024", "--steps", str(steps),
                                         "--lr", "1e-3", "--warmup", "20", "--device", device, "--log-every", "50"]))
        emit(dict(part="finetune", steps=len(losses), loss_first10=sum(losses[:10]) / 10,
                  loss_last10=sum(losses[-10:]) / 10))
    except Exception as e:
        emit(dict(part="finetune", error=f"{type(e).__name__}: {e}"))
        traceback.print_exc()
    for seq_len in (2048, 8192):
        row = dict(part="train_tokens_per_s", model="mistral-gla 4x512", seq_len=seq_len)
        try:
            ours = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, device=device)
            row["lina"] = training_step_rate(ours, device, seq_len, 10)
            del ours
            if use_fla:
                row["fla"] = training_step_rate(fla_model(src, device, torch.float32), device, seq_len, 10)
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        emit(row)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--no-fla", action="store_true")
    p.add_argument("--parts", default="parity,conversion,finetune")
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(args.out, exist_ok=True)
    emit(dict(device=torch.cuda.get_device_name() if device == "cuda" else "cpu", torch=torch.__version__))
    parts = args.parts.split(",")
    if "parity" in parts:
        parity(args.out, device, not args.no_fla)
    if "conversion" in parts:
        conversion(args.out, device, not args.no_fla)
    if "finetune" in parts:
        finetune(args.out, device, not args.no_fla, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
