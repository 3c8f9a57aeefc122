"""lina-run against fla's own HF model class on the same checkpoint (fla's layout, random weights
from `lina-run --init`), on one GPU in one run:
  parity: the logits after a 512-token prompt (max-abs and RMS error ratio) and greedy generation
          token for token (64 new tokens), lina-run's bf16 path against fla's bf16 model;
  speed:  fla's generate (use_cache, greedy) decode tok/s at batch 1 and 32 and prefill tok/s of a
          2048-token prompt, next to lina-run's rows (run by the caller in the same call).
Usage: python3 bench/runner_vs_fla.py MODEL_DIR LINA_RUN [warm]   (warm: fla's Triton autotuning only)
Prints one JSON object per row."""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

model_dir, lina_run = sys.argv[1], sys.argv[2]
warm = len(sys.argv) > 3 and sys.argv[3] == "warm"
import fla  # noqa: F401,E402  (registers the model types with transformers)
from transformers import AutoModelForCausalLM  # noqa: E402

torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16).cuda().eval()
vocab = model.config.vocab_size
rng = np.random.default_rng(0)
prompt = rng.integers(3, vocab, size=512).tolist()
ids = torch.tensor([prompt], device="cuda")


def fla_generate(input_ids, new):
    return model.generate(input_ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True)


with torch.no_grad():
    fla_logits = model(ids).logits[0, -1].float().cpu().numpy()
    fla_tokens = fla_generate(ids, 64)[0, 512:].tolist()
if warm:
    with torch.no_grad():
        fla_generate(torch.tensor([prompt[:128]] * 32, device="cuda"), 4)
        model(torch.tensor([rng.integers(3, vocab, size=2048).tolist()], device="cuda"))
    print(json.dumps({"warm": model_dir}))
    sys.exit(0)

with tempfile.TemporaryDirectory() as tmp:
    dump = os.path.join(tmp, "logits.bin")
    r = subprocess.run([lina_run, "--model", model_dir, "--token-ids", ",".join(map(str, prompt)), "--max-new-tokens", "64",
                        "--stop-at-eos", "0", "--dump-logits", dump], check=True, capture_output=True, text=True)
    lina_tokens = [int(t) for t in r.stdout.split("\n")[0].split()]
    lina_logits = np.fromfile(dump, dtype=np.float32)
diff = lina_logits - fla_logits
agree = 0
for a, b in zip(lina_tokens, fla_tokens):
    if a != b:
        break
    agree += 1
print(json.dumps({"model": model.config.model_type, "parity": True, "prompt": 512,
                  "logits_max_abs_ratio": float(np.abs(diff).max() / np.abs(fla_logits).max()),
                  "logits_rms_ratio": float(np.sqrt((diff ** 2).mean() / (fla_logits ** 2).mean())),
                  "greedy_tokens_agree": agree, "of": len(fla_tokens)}), flush=True)


def timed(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


with torch.no_grad():
    torch.cuda.reset_peak_memory_stats()
    long_prompt = torch.tensor([rng.integers(3, vocab, size=2048).tolist()], device="cuda")
    model(long_prompt)
    prefill = min(timed(lambda: model(long_prompt, use_cache=True)) for _ in range(3))
    print(json.dumps({"model": model.config.model_type, "fla_prefill_tok_s": 2048 / prefill}), flush=True)
    for batch in (1, 32):
        p = torch.tensor([prompt[:128]] * batch, device="cuda")
        fla_generate(p, 8)
        # Decode rate: (256 - 8) extra steps, so the prefill cancels out.
        t_short = timed(lambda: fla_generate(p, 8))
        t_long = timed(lambda: fla_generate(p, 136))
        print(json.dumps({"model": model.config.model_type, "batch": batch,
                          "fla_decode_tok_s": batch * 128 / max(t_long - t_short, 1e-9),
                          "fla_peak_gb": torch.cuda.max_memory_allocated() / 1e9}), flush=True)
