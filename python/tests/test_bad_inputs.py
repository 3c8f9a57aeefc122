"""The bad-input table (#20): inputs a user gets wrong across the DSL, the command-line tools, the
Python ops and checkpoints/configs, each with the message lina must give (naming the argument,
file or key, what was expected and what was found, and a fix) and never a crash or a hang.
`python python/tests/test_bad_inputs.py` prints the table in Markdown (case, input, message)."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import lina

SOURCE = os.environ.get("LINA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(os.path.dirname(lina.__file__), "..", "..")  # build/python/lina -> build
RWKV6 = os.path.join(SOURCE, "tests", "programs", "rwkv6.lina")

HEAD = "recurrence x {\n dims K, V\n in q[K], k[K], v[V]\n state S[K, V]\n out o[V]\n"
DSL = {  # name: (source, message)
    "syntax error": (HEAD + " S = S + outer(k, v)\n o = q @ S\n", r":7:\d+: error: syntax error, unexpected end of file"),
    "unknown name": (HEAD + " S = S + outer(k, w)\n o = q @ S\n}\n",
                     r"unknown name 'w'; declare it with `in`, `state`, `param` or `const`"),
    "outer() transposed": (HEAD + " S = S + outer(v, k)\n o = q @ S\n}\n",
                           r"outer\(u, w\) writes \[V, K\] but 'S' is \[K, V\]; swap the arguments"),
    "output never assigned": (HEAD + " S = S + outer(k, v)\n}\n", r"output 'o' is never assigned; add `o = ...`"),
    "state never updated": (HEAD + " o = q @ S\n}\n", r"state 'S' is never updated; add `S = ... \+ outer\(u, w\)`"),
    "name declared twice": ("recurrence x {\n dims K, V\n in q[K], q[K], v[V]\n state S[K, V]\n out o[V]\n"
                            " S = S + outer(q, v)\n o = q @ S\n}\n", r"'q' is already declared as an input"),
    "undeclared dim": ("recurrence x {\n dims K\n in q[K], k[K], v[V]\n state S[K, V]\n out o[V]\n"
                       " S = S + outer(k, v)\n o = q @ S\n}\n", r"unknown dim 'V' in the shape of 'v'; declare it with `dims V`"),
    "chunk not a power of two": (HEAD + " S = S + outer(k, v)\n o = q @ S\n chunk 48\n}\n",
                                 r"chunk size 48 is not supported; expected a power of two from 16 to 256"),
    "gate on a state": (HEAD.replace("state S[K, V]", "state S[K, V] : gate") + " S = S + outer(k, v)\n o = q @ S\n}\n",
                        r"`: gate` marks a per-step input as a log-space decay; 'S' is not an input"),
    "state update of the wrong form": (HEAD + " S = S + frob(k, v)\n o = q @ S\n}\n",
                                       r"state update of 'S' must have the form a \* S \* b \+ outer\(u, w\)"),
    "missing file": ("missing.lina", r"lina.compile: no file 'missing.lina' \(a path to a .lina file, or the DSL text"),
    "nesting too deep": (HEAD + " S = S + outer(k, " + "0.5 * (" * 20000 + "v" + ")" * 20000 + ")\n o = q @ S\n}\n",
                         r"expression nested more than 256 levels deep; split it with intermediate assignments"),
}


def tool(name):
    return os.path.join(BUILD, "tools", name, name)


CLI = {  # name: (argv, message)
    "linac without a file": (["linac"], r"linac: error: no input file"),
    "linac missing file": (["linac", "/nonexistent.lina"],
                           r"cannot open '/nonexistent.lina': No such file or directory; expected a readable .lina"),
    "linac --emit": (["linac", RWKV6, "--emit=foo"], r"--emit expects ast, rir, cir, kir, cuda or llvm; got 'foo'"),
    "linac --dims": (["linac", RWKV6, "--dims", "K=abc"], r"--dims expects NAME=SIZE pairs with 1 <= SIZE <= 4096.*got 'K=abc'"),
    "linac --shape": (["linac", RWKV6, "--shape", "1,2"], r"--shape expects B,T,H with B >= 1, T >= 0, H >= 1; got '1,2'"),
    "linac unknown option": (["linac", RWKV6, "--bogus"], r"unknown option '--bogus'"),
    "linac --varlen decreasing": (["linac", "run-reference", RWKV6, "--varlen", "0,5,3"],
                                  r"cu_seqlens must be non-decreasing; cu_seqlens\[2\] = 3 < 5"),
    "lina-run without a model": (["lina-run"], r"expected --model DIR or --init CONFIG"),
    "lina-run missing model": (["lina-run", "--model", "/nonexistent", "--token-ids", "1"],
                               r"model directory '/nonexistent': no config.json; expected fla's save_pretrained layout"),
    "lina-run --init missing config": (["lina-run", "--init", "/nonexistent.json", "--out", "/tmp/unused"],
                                       r"config '/nonexistent.json': cannot open"),
    "lina-run --temperature": (["lina-run", "--model", ".", "--token-ids", "1", "--temperature", "-1"],
                               r"--temperature: expected a number >= 0 \(0: greedy\); got -1"),
    "lina-run --top-p": (["lina-run", "--model", ".", "--token-ids", "1", "--top-p", "2"],
                         r"--top-p: expected a number in \(0, 1\] \(1: off\); got 2"),
    "lina-run --device": (["lina-run", "--model", ".", "--token-ids", "1", "--device", "tpu"],
                          r"--device: expected auto, cuda or cpu; got 'tpu'"),
    "lina-convert command": (["lina-convert", "frob"], r"command: expected llama-to-gla, llama-to-gsa or rwkv6; got 'frob'"),
    "lina-convert option": (["lina-convert", "llama-to-gla", "--in", "/x"], r"unknown option '--in'"),
}


def python_cases():
    torch = pytest.importorskip("torch")
    from lina import ops
    q = torch.randn(1, 8, 2, 4, dtype=torch.float64)
    g = -q.abs()
    cu = torch.tensor([0, 3, 8])
    return {  # name: (call, message)
        "tensor of the wrong shape": (lambda: ops.chunk_gla(q, q[:, :4], q, g), r"input 'k': expected shape \[1, 8, 2, 4\]"),
        "initial state of the wrong shape": (lambda: ops.chunk_gla(q, q, q, g, initial_state=torch.zeros(2, 2, 4, 4,
                                                                                                          dtype=q.dtype)),
                                             r"initial_state 'S': expected shape \[1, 2, 4, 4\]"),
        "head_first": (lambda: ops.chunk_gla(q, q, q, g, head_first=True), r"head_first: the \[B, H, T, d\] layout is gone"),
        "unknown keyword": (lambda: ops.chunk_gla(q, q, q, g, foo=1), r"chunk_gla\(\) got an unexpected keyword argument 'foo'"),
        "chunk_size": (lambda: ops.chunk_retention(q, q, q, chunk_size=48), r"chunk_size: expected a power of 2; got 48"),
        "positive log-gate": (lambda: ops.chunk_gla(q, q, q, q.abs()), r"g holds log-decays and must be <= 0"),
        "batch > 1 with cu_seqlens": (lambda: ops.chunk_gla(q.expand(2, -1, -1, -1), q, q, g, cu_seqlens=cu),
                                      r"with cu_seqlens the batch size must be 1"),
        "cu_seqlens not ending at T": (lambda: ops.chunk_gla(q, q, q, g, cu_seqlens=torch.tensor([0, 3, 7])),
                                       r"cu_seqlens"),
        "initial states per sequence": (lambda: ops.chunk_gla(q, q, q, g, initial_state=torch.zeros(1, 2, 4, 4),
                                                              cu_seqlens=cu),
                                        r"initial_state: expected one state per sequence, 2 \(len\(cu_seqlens\) - 1\); got 1"),
        "GQA heads": (lambda: ops.chunk_gsa(q[:, :, :1].expand(-1, -1, 3, -1), q, q, q, g),
                      r"q has 3 heads and k 2; the query heads must be a multiple of the key heads"),
        "checkpoint_level": (lambda: ops.chunk_gsa(q, q, q, q, g, checkpoint_level=5),
                             r"checkpoint_level: expected 0, 1 or 2; got 5"),
        "strategy": (lambda: ops.chunk_gla(q, q, q, g, strategy="fastest"),
                     r"strategy: expected one of auto, fused, split, recurrent, reference; got 'fastest'"),
        "missing vector param": (lambda: lina.compile(RWKV6)(r=q, k=q, v=q, w=g), r"vector_params 'u': missing"),
        "unknown scalar param": (lambda: lina.library("gla")(q=q, k=q, v=q, g=g, scalar_params={"gamma": 1.0}),
                                 r"scalar_params 'gamma': @gla has no such scalar param"),
    }


def checkpoint_cases(tmp):
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from lina.models import AutoModelForCausalLM, ForCausalLM, ModelConfig
    import torch
    from safetensors.torch import load_file, save_file
    good = os.path.join(tmp, "good")
    torch.manual_seed(0)
    ForCausalLM(ModelConfig(dict(model_type="gla", hidden_size=32, num_hidden_layers=1, num_heads=2,
                                 vocab_size=50))).save_pretrained(good)

    def variant(name, edit):
        folder = os.path.join(tmp, name)
        shutil.copytree(good, folder)
        edit(folder)
        return folder

    def edit_config(**changes):
        def edit(folder):
            path = os.path.join(folder, "config.json")
            cfg = json.load(open(path))
            cfg.update(changes)
            json.dump(cfg, open(path, "w"))
        return edit

    def edit_tensors(change):
        def edit(folder):
            path = os.path.join(folder, "model.safetensors")
            tensors = load_file(path)
            change(tensors)
            save_file(tensors, path)
        return edit

    def truncate(folder):
        path = os.path.join(folder, "model.safetensors")
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])

    load = lambda name, edit: (lambda: AutoModelForCausalLM.from_pretrained(variant(name, edit)))
    return {
        "config.json not JSON": (load("badjson", lambda f: open(os.path.join(f, "config.json"), "w").write("{oops")),
                                 r"config.json"),
        "unknown model_type": (load("type", edit_config(model_type="mamba9")), r"model_type.*mamba9"),
        "num_kv_heads not a divisor": (load("kv", edit_config(num_kv_heads=3)),
                                       r"num_kv_heads: expected null or a positive divisor of num_heads = 2; got 3"),
        "truncated safetensors": (load("trunc", truncate), r"not a readable safetensors file .*re-download or re-convert"),
        "missing tensor": (load("missing", edit_tensors(lambda t: t.pop("model.norm.weight"))),
                           r"tensor 'model.norm.weight' \(shape \[32\]\) is missing"),
        "tensor of the wrong shape": (load("shape", edit_tensors(lambda t: t.update({"model.norm.weight": torch.zeros(3)}))),
                                      r"tensor 'model.norm.weight': expected shape \[32\] from config.json"),
        "unexpected tensor": (load("extra", edit_tensors(lambda t: t.update({"model.extra": torch.zeros(1)}))),
                              r"unexpected tensor 'model.extra' for this config"),
        "no weights": (load("noweights", lambda f: os.remove(os.path.join(f, "model.safetensors"))),
                       r"no model.safetensors or model.safetensors.index.json"),
    }


def _messages_of(case_map, run):
    return {name: run(value) for name, value in case_map.items()}


def _error_of(call):
    try:
        call()
    except Exception as e:  # the message is what is checked; any exception type a user can catch
        return str(e)
    return "(no error)"


def _cli_error(argv):
    exe = tool(argv[0])
    if not os.path.exists(exe):
        pytest.skip(f"{exe} not built")
    done = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=60)
    assert done.returncode not in (0,) and done.returncode > 0, f"{argv}: exit {done.returncode} (crash or success)"
    return done.stderr + done.stdout


@pytest.mark.parametrize("name", list(DSL))
def test_dsl(name):
    source, message = DSL[name]
    assert re.search(message, _error_of(lambda: lina.compile(source))), _error_of(lambda: lina.compile(source))


@pytest.mark.parametrize("name", list(CLI))
def test_cli(name):
    argv, message = CLI[name]
    text = _cli_error(argv)
    assert re.search(message, text), text


PYTHON_CASES = ["tensor of the wrong shape", "initial state of the wrong shape", "head_first", "unknown keyword",
                "chunk_size", "positive log-gate", "batch > 1 with cu_seqlens", "cu_seqlens not ending at T",
                "initial states per sequence", "GQA heads", "checkpoint_level", "strategy", "missing vector param",
                "unknown scalar param"]


@pytest.mark.parametrize("name", PYTHON_CASES)
def test_python(name):
    call, message = python_cases()[name]
    text = _error_of(call)
    assert re.search(message, text), text


def test_checkpoints(tmp_path):
    for name, (call, message) in checkpoint_cases(str(tmp_path)).items():
        text = _error_of(call)
        assert re.search(message, text), f"{name}: {text}"


def test_the_table_has_at_least_40_cases(tmp_path):
    assert sorted(python_cases()) == sorted(PYTHON_CASES), "every Python case is parametrised"
    assert len(DSL) + len(CLI) + len(python_cases()) + len(checkpoint_cases(str(tmp_path))) >= 40


if __name__ == "__main__":
    import tempfile
    rows = [("DSL", n, _error_of(lambda s=s: lina.compile(s))) for n, (s, _) in DSL.items()]
    rows += [("CLI", n, _cli_error(a).strip().splitlines()[0]) for n, (a, _) in CLI.items()]
    rows += [("Python", n, _error_of(c)) for n, (c, _) in python_cases().items()]
    with tempfile.TemporaryDirectory() as tmp:
        rows += [("checkpoint", n, _error_of(c)) for n, (c, _) in checkpoint_cases(tmp).items()]
    print("| area | case | message |\n|---|---|---|")
    for area, name, text in rows:
        text = text.strip().splitlines()[0] if text.strip() else text
        print(f"| {area} | {name} | {text[:220].replace('|', '/')} |")
    print(f"\n{len(rows)} cases", file=sys.stderr)
