"""lina-run against fla's own HF model class on the same checkpoint (fla's layout, random weights
from `lina-run --init`), on one GPU in one run:
  parity: on a checkpoint fla's save_pretrained writes (fp32), against fla's fp32 model: the logits
          after a 512-token prompt (max-abs and RMS error ratio) of lina fp32, lina bf16 and fla bf16;
          greedy generation token for token over 256 new tokens (fp32); a batch of 8 prompts of
          different lengths (64 new tokens each, lina together, fla one by one);
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
rng = np.random.default_rng(0)


def lina(dirname, prompts, new, dtype, dump=None):
    """lina-run's greedy tokens for each prompt (and the first prompt's logits after it with dump)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "prompts.txt")
        with open(path, "w") as f:
            f.write("\n".join(",".join(map(str, p)) for p in prompts) + "\n")
        args = [lina_run, "--model", dirname, "--prompts", path, "--max-new-tokens", str(new), "--stop-at-eos", "0",
                "--dtype", dtype]
        if dump:
            args += ["--dump-logits", os.path.join(tmp, "logits.bin")]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-500:])
        lines = r.stdout.strip().split("\n")
        if len(prompts) == 1:
            tokens = [[int(t) for t in lines[0].split()]]
        else:
            tokens = [[int(t) for t in line.split("] ", 1)[1].split()] for line in lines if line.startswith("[")]
        logits = np.fromfile(os.path.join(tmp, "logits.bin"), dtype=np.float32) if dump else None
    return tokens, logits


def agree(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def errs(x, ref):
    d = x - ref
    return {"max_abs_ratio": float(np.abs(d).max() / np.abs(ref).max()),
            "rms_ratio": float(np.sqrt((d ** 2).mean() / (ref ** 2).mean()))}


if not warm:
    # Parity on a checkpoint written by fla's own save_pretrained (fla's init, fp32 weights):
    # fla's fp32 model is the reference; lina fp32, lina bf16 and fla bf16 are each measured
    # against it (a random 24-layer model amplifies rounding, so bf16 against bf16 says little).
    ref_model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    fla_dir = tempfile.mkdtemp()
    fresh = AutoModelForCausalLM.from_config(ref_model.config, torch_dtype=torch.float32)
    fresh.save_pretrained(fla_dir, safe_serialization=True)
    del ref_model
    f32 = AutoModelForCausalLM.from_pretrained(fla_dir, torch_dtype=torch.float32).cuda().eval()
    vocab = f32.config.vocab_size
    prompt = rng.integers(3, vocab, size=512).tolist()
    with torch.no_grad():
        ref_logits = f32(torch.tensor([prompt], device="cuda")).logits[0, -1].double().cpu().numpy()
        ref_tokens = f32.generate(torch.tensor([prompt], device="cuda"), max_new_tokens=256, min_new_tokens=256,
                                  do_sample=False, use_cache=True)[0, 512:].tolist()
        bf = AutoModelForCausalLM.from_pretrained(fla_dir, torch_dtype=torch.bfloat16).cuda().eval()
        fla_bf_logits = bf(torch.tensor([prompt], device="cuda")).logits[0, -1].double().cpu().numpy()
        del bf
    row = {"model": f32.config.model_type, "parity": "fla save_pretrained fp32 checkpoint, 512-token prompt",
           "fla_bf16_vs_fla_fp32": errs(fla_bf_logits, ref_logits)}
    try:
        for dtype in ("fp32", "bf16"):
            tokens, logits = lina(fla_dir, [prompt], 256 if dtype == "fp32" else 1, dtype, dump=True)
            row[f"lina_{dtype}_vs_fla_fp32"] = errs(logits.astype(np.float64), ref_logits)
            if dtype == "fp32":
                row["greedy_fp32_tokens_agree"] = agree(tokens[0], ref_tokens)
                row["of"] = len(ref_tokens)
        # A batch of 8 prompts of different lengths, generated together by lina, one at a time by fla.
        lens = [512, 37, 300, 1, 129, 64, 200, 5]
        batch = [rng.integers(3, vocab, size=n).tolist() for n in lens]
        got, _ = lina(fla_dir, batch, 64, "fp32")
        per = []
        for p, t in zip(batch, got):
            with torch.no_grad():
                want = f32.generate(torch.tensor([p], device="cuda"), max_new_tokens=64, min_new_tokens=64,
                                    do_sample=False, use_cache=True)[0, len(p):].tolist()
            per.append(agree(t, want))
        row["batch8_fp32_tokens_agree"] = per
        row["batch8_of"] = 64
    except RuntimeError as e:
        row["lina_error"] = str(e)
    print(json.dumps(row), flush=True)
    del f32
    torch.cuda.empty_cache()

model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16).cuda().eval()
vocab = model.config.vocab_size
prompt = rng.integers(3, vocab, size=512).tolist()


def fla_generate(input_ids, new):
    return model.generate(input_ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True)


if warm:
    with torch.no_grad():
        fla_generate(torch.tensor([prompt], device="cuda"), 4)
        fla_generate(torch.tensor([prompt[:128]] * 32, device="cuda"), 4)
        model(torch.tensor([rng.integers(3, vocab, size=2048).tolist()], device="cuda"))
        model.float()
        fla_generate(torch.tensor([prompt], device="cuda"), 4)
    print(json.dumps({"warm": model_dir}))
    sys.exit(0)


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
