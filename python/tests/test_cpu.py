"""lina's Python package without a GPU: import, compile to IR and CUDA, errors as LinaError,
and the CPU reference (forward against a naive numpy loop written here, backward against
finite differences)."""
import os

import numpy as np
import pytest

import lina

SOURCE_DIR = os.environ.get("LINA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))

LINEAR_ATTENTION = """
recurrence la {
  dims K, V
  in q[K], k[K], v[V]
  in g[K] : gate
  state S[K, V]
  out o[V]
  S = exp(g) * S + outer(k, v)
  o = q @ S
}
"""


def naive_gla(q, k, v, g, scale, h0=None):
    B, T, H, K = q.shape
    V = v.shape[-1]
    S = np.zeros((B, H, K, V)) if h0 is None else h0.copy()
    o = np.zeros((B, T, H, V))
    for t in range(T):
        S = S * np.exp(g[:, t])[..., None] + k[:, t, :, :, None] * v[:, t, :, None, :]
        o[:, t] = np.einsum("bhk,bhkv->bhv", q[:, t] * scale, S)
    return o, S


def test_import_and_library():
    assert set(lina.library_programs()) >= {"gla", "simple_gla", "retention", "gsa"}
    ok, why = lina.cuda_available()
    assert bool(lina.cuda_available()) == ok, "false when no device is usable (a plain tuple is always true)"
    with pytest.raises(lina.LinaError, match="no file 'missing.lina'"):
        lina.compile("missing.lina")
    assert isinstance(ok, bool) and isinstance(why, str)


def test_compile_text_and_file_show_ir_and_cuda():
    op = lina.compile(LINEAR_ATTENTION)
    assert op.name == "la"
    assert op.inputs == ["q", "k", "v", "g"] and op.outputs == ["o"] and op.states == ["S"]
    assert "la" in op.ir
    cuda = op.cuda_source(dims={"K": 64, "V": 64})
    assert 'extern "C" __global__' in cuda and "fused_chunk_forward<Policy_la_kir_c64_bv64>" in cuda  # register tiles
    fp32 = op.cuda_source(dims={"K": 64, "V": 64}, dtype="fp32")  # fp32 stays on the CIR kernels
    assert 'extern "C" __global__' in fp32 and "lina::attend" in fp32
    assert "la_bwd_a" in op.backward_ir and "la_bwd_b" in op.backward_ir
    pass_b = op.cuda_source(dims={"K": 64, "V": 64}, pass_="backward_b")
    assert "lina::Rows{bos + len - 1 - c0, -1}" in pass_b  # pass B walks time backwards
    gla = lina.compile(os.path.join(SOURCE_DIR, "library", "ops", "gla.lina"))
    assert gla.name == "gla" and "scale" in gla.ir


def test_errors_are_lina_errors_with_locations():
    with pytest.raises(lina.LinaError) as e:
        lina.compile("recurrence bad {\n  dims K\n  in q[K]\n  out o[Q]\n}\n", name="bad.lina")
    assert "bad.lina:4:" in str(e.value)
    assert isinstance(e.value, ValueError)
    with pytest.raises(lina.LinaError, match="no library program 'nope'"):
        lina.library("nope")
    with pytest.raises(lina.LinaError, match="pass_"):
        lina.library("gla").cuda_source(dims={"K": 64, "V": 64}, pass_="sideways")


def test_reference_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    B, T, H, K, V = 2, 37, 3, 8, 5
    q, k = rng.standard_normal((B, T, H, K)), rng.standard_normal((B, T, H, K))
    v = rng.standard_normal((B, T, H, V))
    g = np.log(1 / (1 + np.exp(-rng.standard_normal((B, T, H, K)))))
    h0 = rng.standard_normal((B, H, K, V))
    op = lina.library("gla")
    outs, finals = op.reference({"q": q, "k": k, "v": v, "g": g}, dims={"K": K, "V": V}, initial_states={"S": h0},
                                scalar_params={"scale": 0.5})
    o, S = naive_gla(q, k, v, g, 0.5, h0)
    np.testing.assert_allclose(outs["o"], o, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(finals["S"], S, rtol=1e-10, atol=1e-10)


def test_reference_varlen_equals_separate_runs():
    rng = np.random.default_rng(1)
    K, V, H = 4, 4, 2
    cu = [0, 5, 5, 12]
    x = {n: rng.standard_normal((1, 12, H, K if n != "v" else V)) for n in "qkv"}
    x["g"] = -np.abs(rng.standard_normal((1, 12, H, K)))
    op = lina.library("gla")
    outs, finals = op.reference(x, dims={"K": K, "V": V}, cu_seqlens=cu)
    assert finals["S"].shape == (3, H, K, V)
    for n in range(3):
        part = {name: t[:, cu[n]:cu[n + 1]] for name, t in x.items()}
        if cu[n + 1] == cu[n]:
            np.testing.assert_allclose(finals["S"][n], 0)
            continue
        o, S = naive_gla(part["q"], part["k"], part["v"], part["g"], K ** -0.5)
        np.testing.assert_allclose(outs["o"][:, cu[n]:cu[n + 1]], o, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(finals["S"][n], S[0], rtol=1e-10, atol=1e-10)


def test_reference_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    B, T, H, K, V = 1, 6, 1, 3, 2
    x = {"q": rng.standard_normal((B, T, H, K)), "k": rng.standard_normal((B, T, H, K)),
         "v": rng.standard_normal((B, T, H, V)), "g": -np.abs(rng.standard_normal((B, T, H, K)))}
    do = rng.standard_normal((B, T, H, V))
    dht = rng.standard_normal((B, H, K, V))
    op = lina.library("gla")
    dims = {"K": K, "V": V}

    def loss(inputs):
        outs, finals = op.reference(inputs, dims=dims)
        return float((outs["o"] * do).sum() + (finals["S"] * dht).sum())

    grads, _, _, _ = op.reference_backward(x, dims=dims, output_grads={"o": do}, final_state_grads={"S": dht})
    eps = 1e-6
    for name in x:
        flat = x[name].reshape(-1)
        for i in range(0, flat.size, 3):
            plus = {n: t.copy() for n, t in x.items()}
            minus = {n: t.copy() for n, t in x.items()}
            plus[name].reshape(-1)[i] += eps
            minus[name].reshape(-1)[i] -= eps
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            assert abs(grads[name].reshape(-1)[i] - numeric) <= 1e-6 * max(1, abs(numeric)), (name, i)


def test_reference_validation_names_the_argument():
    op = lina.library("gla")
    x = {n: np.zeros((1, 4, 1, 8)) for n in "qkg"}
    with pytest.raises(lina.LinaError, match="'v' is missing"):
        op.reference(x, dims={"K": 8, "V": 8})
    x["v"] = np.zeros((1, 4, 1, 8))
    with pytest.raises(lina.LinaError, match="dims: 'V' needs a size"):
        op.reference(x, dims={"K": 8})
    with pytest.raises(lina.LinaError):
        op.reference(x, dims={"K": 8, "V": 8}, cu_seqlens=[0, 3, 2])


def test_dlpack_path_names_the_argument_for_arrays_it_cannot_take():
    op = lina.library("gla")
    x = np.zeros((1, 4, 2, 8), np.float32)
    with pytest.raises(lina.LinaError, match=r"input 'q': expected an array on a CUDA device .* got device type 1"):
        op.forward_dlpack({"q": x, "k": x, "v": x, "g": x})
    with pytest.raises(lina.LinaError, match=r"input 'g': missing; @gla reads q, k, v, g"):
        op.forward_dlpack({"q": x, "k": x, "v": x})
    with pytest.raises(lina.LinaError, match=r"input 'q': expected an array with __dlpack__ .* got list"):
        op.forward_dlpack({"q": [1.0], "k": x, "v": x, "g": x})


def test_tune_validates_and_names_what_it_needs():
    if not hasattr(lina._lina, "tune"):
        pytest.skip("built without the tuning database")
    with pytest.raises(lina.LinaError, match="shape"):
        lina.tune("gla", {"K": 64, "V": 64}, (2, 1024))
    with pytest.raises(lina.LinaError, match="op: expected an Op"):
        lina.tune(3, {"K": 64, "V": 64}, (2, 1024, 4))
    with pytest.raises(lina.LinaError, match="reps"):
        lina.tune("gla", {"K": 64, "V": 64}, (2, 1024, 4), reps=0)
    ok, _ = lina.cuda_available()
    if not ok:
        with pytest.raises(lina.LinaError, match="GPU"):
            lina.tune("gla", {"K": 64, "V": 64}, (2, 1024, 4))


def test_nvrtc_comes_from_installed_wheels_without_ld_library_path(tmp_path):
    """import lina puts the lib folder of an installed nvidia-cuda-nvrtc wheel on the runtime's
    NVRTC search path (found without importing it); a bad LINA_NVRTC_LIBRARY only fails what
    needs NVRTC, with the variable named."""
    import subprocess
    import sys
    lib = tmp_path / "site" / "nvidia" / "cuda_nvrtc" / "lib"
    lib.mkdir(parents=True)
    (tmp_path / "site" / "nvidia" / "cuda_nvrtc" / "__init__.py").write_text("")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site")] + sys.path), LINA_NVRTC_LIBRARY="/nonexistent/libnvrtc.so")
    # Where a real nvidia-cuda-nvrtc wheel is installed (the torch environment), it is the one found.
    code = ("import os, importlib.util, lina\n"
            "print(os.environ['LINA_NVRTC_SEARCH_PATH'])\n"
            "print(os.path.join(importlib.util.find_spec('nvidia.cuda_nvrtc').submodule_search_locations[0], 'lib'))\n"
            "op = lina.compile('''" + LINEAR_ATTENTION + "''')\n"
            "print('cuda' if '__global__' in op.cuda_source(dims={'K': 16, 'V': 16}) else 'no cuda')\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[1] in lines[0].split(":"), r.stdout
    assert lines[2] == "cuda", r.stdout


def test_lina_ops_rwkv6_is_the_tested_program():
    """lina.ops embeds RWKV6's program (the installed package has no tests/ folder); it is the
    text of tests/programs/rwkv6.lina, which the C++ tests check against the reference."""
    from lina import ops
    with open(os.path.join(SOURCE_DIR, "tests", "programs", "rwkv6.lina"), encoding="utf-8") as f:
        body = f.read()
    program = body[body.index("recurrence rwkv6"):]
    assert ops._RWKV6.strip() == program.strip()


def test_versions_and_the_lina_command():
    import subprocess
    import sys
    v = lina.versions()
    assert v["lina"] == lina.__version__ and set(v) == {"lina", "nvrtc", "cuda_driver"}
    out = subprocess.run([sys.executable, "-m", "lina", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith(f"lina {lina.__version__} (NVRTC "), out
