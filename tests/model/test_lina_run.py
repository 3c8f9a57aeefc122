"""lina-run on the CPU against a NumPy implementation of fla's GLA, RetNet and GSA blocks written
here (research/fla-spec.md §5), on tiny checkpoints made by `lina-run --init` from the configs in
library/models: the logits after a prompt agree to fp32 rounding and greedy decoding agrees token
for token. The NumPy side reads the safetensors file itself and runs each sequence in one pass
over time (the recurrences as fla's naive references write them), not lina's token step."""
import json
import os
import struct
import shutil
import subprocess
import sys

import numpy as np
import pytest

LINA_RUN = os.environ.get("LINA_RUN")
SOURCE = os.environ.get("LINA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
pytestmark = pytest.mark.skipif(not LINA_RUN, reason="LINA_RUN (the lina-run binary) not set")


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        raw = data[base + b:base + en]
        if e["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        else:
            a = np.frombuffer(raw, dtype=np.float32)
        out[name] = a.reshape(e["shape"]).astype(np.float64)
    return out


def rms(x, w=None, eps=1e-6):
    y = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return y if w is None else y * w


sigmoid = lambda x: 1 / (1 + np.exp(-x))
silu = lambda x: x * sigmoid(x)
logsigmoid = lambda x: np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def short_conv(x, w):
    """Causal depthwise conv + SiLU over time: x [T, C], w [C, 1, W]."""
    W = w.shape[-1]
    xp = np.concatenate([np.zeros((W - 1, x.shape[1])), x])
    return silu(np.stack([(xp[t:t + W] * w[:, 0, :].T).sum(0) for t in range(x.shape[0])]))


def mixer(cfg, W, p, x):
    """One layer's attention over a whole sequence x [T, D]."""
    T, D = x.shape
    H = cfg["num_heads"]
    Hkv = cfg.get("num_kv_heads") or H
    G = H // Hkv
    q, k, v = x @ W[p + "q_proj.weight"].T, x @ W[p + "k_proj.weight"].T, x @ W[p + "v_proj.weight"].T
    if cfg.get("use_short_conv") and cfg["model_type"] != "retnet":
        q, k, v = (short_conv(a, W[p + n + "_conv1d.weight"]) for a, n in ((q, "q"), (k, "k"), (v, "v")))
    K, V = q.shape[1] // H, v.shape[1] * G // H
    q, k, v = q.reshape(T, H, K), k.reshape(T, Hkv, K), v.reshape(T, Hkv, V)
    if cfg["model_type"] == "gsa":
        M = cfg["num_slots"]
        f = logsigmoid(x @ W[p + "f_proj.weight"].T).reshape(T, Hkv, M) / cfg["gate_logit_normalizer"]
        s = 1 - np.exp(f)
        q, k, v = silu(q), silu(k), silu(v)  # feature_map swish; v = silu(v)
        o = np.zeros((T, H, V))
        for h in range(H):
            g = h // G
            Hk, Hv = np.zeros((K, M)), np.zeros((M, V))
            for t in range(T):
                Hk = Hk * np.exp(f[t, g])[None, :] + np.outer(k[t, g], s[t, g])
                ok = q[t, h] @ Hk
                pr = np.exp(ok - ok.max())
                pr /= pr.sum()
                Hv = np.exp(f[t, g])[:, None] * Hv + np.outer(s[t, g], v[t, g])
                o[t, h] = pr @ Hv
        o = rms(silu(o.reshape(T, H * V)), W.get(p + "g_norm.weight"), 1e-5)
        return o @ W[p + "o_proj.weight"].T
    if cfg["model_type"] == "gla":
        gk = (x @ W[p + "gk_proj.0.weight"].T) @ W[p + "gk_proj.1.weight"].T + W[p + "gk_proj.1.bias"]
        gk = (logsigmoid(gk) / 16).reshape(T, Hkv, K)
    else:  # RetNet: rotate-half RoPE, positions 0..T-1
        inv = 10000.0 ** (-np.arange(0, K, 2) / K)
        ang = np.arange(T)[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        rot = lambda a: np.concatenate([a[..., :K // 2] * cos - a[..., K // 2:] * sin,
                                        a[..., K // 2:] * cos + a[..., :K // 2] * sin], -1)
        q, k = rot(q), rot(k)
    o = np.zeros((T, H, V))
    for h in range(H):
        g = h // G
        S = np.zeros((K, V))
        decay = 1 - 2.0 ** (-5 - h)
        for t in range(T):
            a = np.exp(gk[t, g])[:, None] if cfg["model_type"] == "gla" else decay
            S = a * S + np.outer(k[t, g], v[t, g])
            o[t, h] = (q[t, h] * K ** -0.5) @ S
    o = rms(o, W.get(p + "g_norm_swish_gate.weight"), cfg.get("norm_eps", 1e-6))
    o = o * silu(x @ W[p + "g_proj.weight"].T).reshape(T, H, V)
    return o.reshape(T, H * V) @ W[p + "o_proj.weight"].T


def forward(cfg, W, ids):
    eps = cfg.get("norm_eps", 1e-6)
    h = W["model.embeddings.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = h + mixer(cfg, W, p + "attn.", rms(h, W[p + "attn_norm.weight"], eps))
        x = rms(h, W[p + "mlp_norm.weight"], eps)
        h = h + (silu(x @ W[p + "mlp.gate_proj.weight"].T) * (x @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    h = rms(h, W["model.norm.weight"], eps)
    return h @ W.get("lm_head.weight", W["model.embeddings.weight"]).T


@pytest.mark.parametrize("model", ["gla", "retnet", "gsa"])
def test_lina_run_matches_numpy(tmp_path, model):
    out = tmp_path / model
    subprocess.run([LINA_RUN, "--init", os.path.join(SOURCE, "library", "models", f"{model}-tiny.json"), "--out", str(out),
                    "--seed", "5", "--dtype", "bf16"], check=True, capture_output=True)
    cfg = json.load(open(out / "config.json"))
    W = read_safetensors(out / "model.safetensors")
    prompt = [1, 17, 42, 99, 7, 250, 3, 64, 128, 5]
    r = subprocess.run([LINA_RUN, "--model", str(out), "--token-ids", ",".join(map(str, prompt)), "--max-new-tokens", "8",
                        "--device", "cpu", "--dump-logits", str(tmp_path / "logits.bin")], check=True, capture_output=True, text=True)
    lina_logits = np.fromfile(tmp_path / "logits.bin", dtype=np.float32)
    ref = forward(cfg, W, prompt)[-1]
    err = np.abs(lina_logits - ref).max() / np.abs(ref).max()
    assert err < 1e-4, f"{model}: logits differ by {err:.2e} of the largest"
    # Greedy decoding token for token (the reference reruns the whole sequence each step).
    ids, generated = list(prompt), []
    for _ in range(8):
        nxt = int(np.argmax(forward(cfg, W, ids)[-1]))
        generated.append(nxt)
        if nxt == cfg["eos_token_id"]:
            break
        ids.append(nxt)
    assert r.stdout.split("\n")[0].split() == [str(t) for t in generated], (r.stdout, generated)


def test_bad_inputs_are_clear_errors(tmp_path):
    out = tmp_path / "gla"
    subprocess.run([LINA_RUN, "--init", os.path.join(SOURCE, "library", "models", "gla-tiny.json"), "--out", str(out)], check=True,
                   capture_output=True)
    def err(*args):
        r = subprocess.run([LINA_RUN, *args], capture_output=True, text=True)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        return r.stderr
    assert "outside the vocabulary (vocab_size 256" in err("--model", str(out), "--token-ids", "1,300")
    assert "an empty prompt" in err("--model", str(out), "--token-ids", "")
    assert "--max-new-tokens: expected an integer >= 1; got 'x'" in err("--model", str(out), "--token-ids", "1", "--max-new-tokens", "x")
    assert "no tokenizer.model for a text prompt" in err("--model", str(out), "--prompt", "hello")
    assert "unknown argument '--beam-width'" in err("--model", str(out), "--beam-width", "4")
    assert "--temperature: expected a number >= 0" in err("--model", str(out), "--token-ids", "1", "--temperature", "-1")
    assert "--top-p: expected a number in (0, 1]" in err("--model", str(out), "--token-ids", "1", "--top-p", "2")
    run = lambda *a: subprocess.run([LINA_RUN, "--model", str(out), "--token-ids", "1,5,9", "--max-new-tokens", "6", *a],
                                    check=True, capture_output=True, text=True).stdout.split("\n")[0]
    assert run() == run("--temperature", "0.8", "--top-k", "1"), "top-k 1 is greedy"
    assert run("--temperature", "1.0", "--seed", "4") == run("--temperature", "1.0", "--seed", "4"), "seeded sampling repeats"
    assert "--device: expected auto, cuda or cpu; got 'tpu'" in err("--model", str(out), "--token-ids", "1", "--device", "tpu")
    assert "--graphs: expected 1 or 0; got '2'" in err("--model", str(out), "--token-ids", "1", "--graphs", "2")
    assert "--batch: expected an integer >= 1; got '0'" in err("--model", str(out), "--token-ids", "1", "--batch", "0")
    assert "--batch: 1 prompt(s) x batch 99999999999 is more than 65536 sequences" in err("--model", str(out), "--token-ids", "1",
                                                                                          "--batch", "99999999999")
    assert "--gemv: expected 1" in err("--model", str(out), "--token-ids", "1", "--gemv", "2")
    assert "--prompts: cannot read" in err("--model", str(out), "--prompts", str(tmp_path / "missing.txt"))
    assert "expected exactly one of" in err("--model", str(out), "--token-ids", "1", "--prompt", "hi")
    (tmp_path / "empty.txt").write_text("\n\n")
    assert "holds no prompt" in err("--model", str(out), "--prompts", str(tmp_path / "empty.txt"))
    assert "no config.json" in err("--model", str(tmp_path), "--token-ids", "1")
    cfg = json.load(open(out / "config.json"))
    cfg["attn"] = {"layers": [0], "num_heads": 2}
    json.dump(cfg, open(out / "config.json", "w"))
    assert "key 'attn'" in err("--model", str(out), "--token-ids", "1")


def tiny_model_and_tokenizer(tmp_path, corpus_seed, init_seed):
    """A sentencepiece model trained here (tmp_path/tok.model, not yet in the model directory)
    and a random gla-tiny checkpoint with its vocabulary size: (model directory, config)."""
    words = "the quick brown fox jumps over lazy dog linear attention gated recurrent state chunk kernel".split()
    rng = np.random.default_rng(corpus_seed)
    (tmp_path / "corpus.txt").write_text("\n".join(" ".join(rng.choice(words, 12)) for _ in range(300)))
    subprocess.run(["spm_train", f"--input={tmp_path / 'corpus.txt'}", f"--model_prefix={tmp_path / 'tok'}", "--vocab_size=100",
                    "--model_type=bpe", "--hard_vocab_limit=false", "--minloglevel=2"], check=True, capture_output=True)
    cfg = json.load(open(os.path.join(SOURCE, "library", "models", "gla-tiny.json")))
    cfg["vocab_size"] = len((tmp_path / "tok.vocab").read_text().strip().split("\n"))
    json.dump(cfg, open(tmp_path / "cfg.json", "w"))
    model = tmp_path / "model"
    subprocess.run([LINA_RUN, "--init", str(tmp_path / "cfg.json"), "--out", str(model), "--seed", str(init_seed)], check=True,
                   capture_output=True)
    return model, cfg


@pytest.mark.skipif(not shutil.which("spm_train"), reason="sentencepiece's spm_train not installed")
def test_text_prompt_through_sentencepiece(tmp_path):
    """--prompt encodes with the directory's tokenizer.model (BOS first) and prints the decoded
    continuation: the same as --token-ids with spm_encode's ids, decoded by spm_decode."""
    model, cfg = tiny_model_and_tokenizer(tmp_path, corpus_seed=0, init_seed=2)
    shutil.copy(tmp_path / "tok.model", model / "tokenizer.model")
    text = "the quick brown fox"
    ids = subprocess.run(["spm_encode", f"--model={model / 'tokenizer.model'}", "--output_format=id"], input=text, text=True,
                         check=True, capture_output=True).stdout.split()
    by_ids = subprocess.run([LINA_RUN, "--model", str(model), "--token-ids", ",".join([str(cfg["bos_token_id"])] + ids),
                             "--max-new-tokens", "6"], check=True, capture_output=True, text=True).stdout.split("\n")
    by_text = subprocess.run([LINA_RUN, "--model", str(model), "--prompt", text, "--max-new-tokens", "6"], check=True,
                             capture_output=True, text=True).stdout.split("\n")
    decoded = subprocess.run(["spm_decode", f"--model={model / 'tokenizer.model'}", "--input_format=id"], input=by_ids[0], text=True,
                             check=True, capture_output=True).stdout.rstrip("\n")
    assert by_text[0] == decoded
    assert by_text[1].startswith(f"prompt {len(ids) + 1} tokens")


@pytest.mark.skipif(not shutil.which("spm_train"), reason="sentencepiece's spm_train not installed")
def test_stop_string_ends_the_sequence_after_the_token_that_completes_it(tmp_path):
    """--stop TEXT: generation ends after the first token whose decoded continuation contains
    TEXT (that token kept); without a tokenizer --stop is a clear error."""
    model, _ = tiny_model_and_tokenizer(tmp_path, corpus_seed=1, init_seed=3)
    prompt = ["--token-ids", "1,5,9,14", "--max-new-tokens", "16", "--stop-at-eos", "0", "--device", "cpu"]
    r = subprocess.run([LINA_RUN, "--model", str(model)] + prompt + ["--stop", "x"], capture_output=True, text=True)
    assert r.returncode == 1 and "--stop: needs the model directory's tokenizer" in r.stderr, r.stderr
    shutil.copy(tmp_path / "tok.model", model / "tokenizer.model")
    full = subprocess.run([LINA_RUN, "--model", str(model)] + prompt, check=True, capture_output=True, text=True).stdout
    ids = full.split("\n")[0].split()
    assert len(ids) == 16, full

    def decode(part):
        return subprocess.run(["spm_decode", f"--model={model / 'tokenizer.model'}", "--input_format=id"], input=" ".join(part),
                              text=True, check=True, capture_output=True).stdout.rstrip("\n")
    cut = next(j for j in range(4, 16) if decode(ids[:j]).strip())  # a prefix that decodes to some text
    stop = decode(ids[:cut]).strip()[-2:]
    first = next(j for j in range(1, 17) if stop in decode(ids[:j]))
    stopped = subprocess.run([LINA_RUN, "--model", str(model)] + prompt + ["--stop", stop], check=True, capture_output=True,
                             text=True).stdout
    assert stopped.split("\n")[0].split() == ids[:first], (stop, stopped, ids)
    r = subprocess.run([LINA_RUN, "--model", str(model)] + prompt + ["--stop", ""], capture_output=True, text=True)
    assert r.returncode == 1 and "--stop: expected some text" in r.stderr, r.stderr


def test_several_prompts_and_batch(tmp_path):
    """--prompts FILE (token-id lines) and --batch N: one output line per sequence, each the
    tokens the same prompt gives alone (greedy)."""
    out = tmp_path / "gla"
    subprocess.run([LINA_RUN, "--init", os.path.join(SOURCE, "library", "models", "gla-tiny.json"), "--out", str(out),
                    "--seed", "2"], check=True, capture_output=True)
    prompts = ["1,17,42,99", "1,5"]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    alone = []
    for p in prompts:
        r = subprocess.run([LINA_RUN, "--model", str(out), "--token-ids", p, "--max-new-tokens", "5", "--device", "cpu"],
                           check=True, capture_output=True, text=True)
        alone.append(r.stdout.split("\n")[0].strip())
    r = subprocess.run([LINA_RUN, "--model", str(out), "--prompts", str(tmp_path / "prompts.txt"), "--batch", "2",
                        "--max-new-tokens", "5", "--device", "cpu"], check=True, capture_output=True, text=True)
    lines = [l for l in r.stdout.split("\n") if l.startswith("[")]
    assert [l.split("] ", 1)[1].strip() for l in lines] == [alone[0], alone[0], alone[1], alone[1]], r.stdout
    assert "prompt 12 tokens" in r.stdout, r.stdout
