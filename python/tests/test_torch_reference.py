"""The torch path on CPU tensors (skipped without torch >= 2.4): lina's custom ops run the
reference interpreter, so torch.autograd.gradcheck in float64 checks the compiler-derived
backward against finite differences of the forward, through torch.library's autograd; and
torch.compile(fullgraph=True) traces a two-layer model with no graph break."""
import pytest

torch = pytest.importorskip("torch")
if not hasattr(torch.library, "custom_op"):
    pytest.skip("torch.library.custom_op needs torch >= 2.4", allow_module_level=True)

import os  # noqa: E402

import lina  # noqa: E402
from lina import ops  # noqa: E402

SOURCE_DIR = os.environ.get("LINA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
gradcheck = torch.autograd.gradcheck


def leaf(*shape, gate=False, seed=[0]):
    seed[0] += 1
    gen = torch.Generator().manual_seed(seed[0])
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    if gate:
        x = torch.nn.functional.logsigmoid(x)
    return x.requires_grad_()


B, T, H, D, M = 1, 7, 2, 3, 2


@pytest.mark.parametrize("kind", ["gla", "simple_gla", "retention"])
def test_gradcheck_float64_with_initial_and_final_state(kind):
    q, k, v, h0 = leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, H, D, D)
    args = [q, k, v]
    if kind == "gla":
        args.append(leaf(B, T, H, D, gate=True))
        f = lambda q, k, v, g, h0: ops.chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    elif kind == "simple_gla":
        args.append(leaf(B, T, H, gate=True))
        f = lambda q, k, v, g, h0: ops.chunk_simple_gla(q, k, v, g, scale=0.3, initial_state=h0,
                                                         output_final_state=True)
    else:
        f = lambda q, k, v, h0: ops.chunk_retention(q, k, v, initial_state=h0, output_final_state=True)
    assert gradcheck(f, (*args, h0))


def test_gradcheck_float64_gsa_two_states():
    x = [leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, M), leaf(B, T, H, M, gate=True)]
    h0 = (leaf(B, H, D, M), leaf(B, H, M, D))

    def f(q, k, v, s, g, hk, hv):
        o, (fk, fv) = ops.chunk_gsa(q, k, v, s, g, initial_state=(hk, hv), output_final_state=True)
        return o, fk, fv

    assert gradcheck(f, (*x, *h0))


def test_gradcheck_float64_varlen_with_an_empty_sequence():
    cu = torch.tensor([0, 3, 3, T])
    q, k, v, g, h0 = leaf(1, T, H, D), leaf(1, T, H, D), leaf(1, T, H, D), leaf(1, T, H, D, gate=True), leaf(3, H, D, D)
    f = lambda q, k, v, g, h0: ops.chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True, cu_seqlens=cu)
    assert gradcheck(f, (q, k, v, g, h0))


def test_gradcheck_float64_user_program_with_a_vector_param():
    rwkv6 = lina.compile(os.path.join(SOURCE_DIR, "tests", "programs", "rwkv6.lina"))
    r, k, v, w, u = leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, D, gate=True), leaf(H, D)
    f = lambda r, k, v, w, u: rwkv6(r=r, k=k, v=v, w=w, vector_params={"u": u})[0]
    assert gradcheck(f, (r, k, v, w, u))


def test_only_the_gradients_somebody_needs_are_computed():
    q, k, v, g = leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, D, gate=True)
    frozen = k.detach()
    o, _ = ops.chunk_gla(q, frozen, v.detach(), g.detach())
    o.sum().backward()
    assert q.grad is not None and k.grad is None and v.grad is None and g.grad is None


def test_gradcheck_catches_a_wrong_gradient():
    # The check above can fail: scale one input's gradient and gradcheck must reject it.
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return 1.01 * g

    q, k, v, g = leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, D), leaf(B, T, H, D, gate=True)
    f = lambda q, k, v, g: ops.chunk_gla(Wrong.apply(q), k, v, g)[0]
    assert not gradcheck(f, (q, k, v, g), raise_exception=False)


class ToyGLALayer(torch.nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm = torch.nn.LayerNorm(width)
        self.qkvg = torch.nn.Linear(width, 4 * width)
        self.out = torch.nn.Linear(width, width)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v, g = self.qkvg(self.norm(x)).view(b, t, self.heads, 4, -1).unbind(3)
        o, _ = ops.chunk_gla(q, k, v, torch.nn.functional.logsigmoid(g) / 16)
        return x + self.out(o.reshape(b, t, -1))


def test_torch_compile_fullgraph_two_layer_model_matches_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(ToyGLALayer(16, 2), ToyGLALayer(16, 2)).double()
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    eager = model(x)
    eager.square().sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(model, fullgraph=True)
    y = compiled(x)
    y.square().sum().backward()
    assert torch.allclose(y, eager, rtol=1e-10, atol=1e-12)
    for p, g in zip(model.parameters(), eager_grads):
        assert torch.allclose(p.grad, g, rtol=1e-9, atol=1e-12)


def test_cpu_validation_errors():
    q = torch.randn(1, 4, 2, 3, dtype=torch.float64)
    g = -q.abs()
    with pytest.raises(lina.LinaError, match=r"input 'k': expected shape \[1, 4, 2, 3\]"):
        ops.chunk_gla(q, q[:, :2], q, g)
    rwkv6 = lina.compile(os.path.join(SOURCE_DIR, "tests", "programs", "rwkv6.lina"))
    with pytest.raises(lina.LinaError, match=r"vector_params 'u': expected shape \[2, 3\] \(\[H, K\]\); got \(3,\)"):
        rwkv6(r=q, k=q, v=q, w=q, vector_params={"u": torch.zeros(3)})
    with pytest.raises(lina.LinaError, match=r"vector_params 'u': missing; @rwkv6 needs an \[H, K\] array"):
        rwkv6(r=q, k=q, v=q, w=q)
    with pytest.raises(lina.LinaError, match=r"initial_state 'S': expected shape \[1, 2, 3, 3\]"):
        ops.chunk_gla(q, q, q, g, initial_state=torch.zeros(2, 2, 3, 3, dtype=torch.float64))
    with pytest.raises(lina.LinaError, match=r"chunk_gla: head_first: the \[B, H, T, d\] layout is gone"):
        ops.chunk_gla(q, q, q, g, head_first=True)
    with pytest.raises(TypeError, match=r"chunk_gla\(\) got an unexpected keyword argument 'foo'"):
        ops.chunk_gla(q, q, q, g, foo=1)
    with pytest.raises(lina.LinaError, match="scalar_params 'gamma': @gla has no such scalar param"):
        lina.library("gla")(q=q, k=q, v=q, g=q, scalar_params={"gamma": 1.0})


def naive_gla(q, k, v, gk=None, gv=None, scale=None, h0=None):
    """fla-spec §2: S_t = diag(exp(gk_t)) S_{t-1} diag(exp(gv_t)) + k_t v_t^T, o_t = S_t^T (scale q_t)."""
    B, T, H, K = q.shape
    scale = K ** -0.5 if scale is None else scale
    S = torch.zeros(B, H, K, v.shape[-1], dtype=q.dtype) if h0 is None else h0.clone()
    out = []
    for t in range(T):
        if gk is not None:
            S = S * gk[:, t].exp()[..., None]
        if gv is not None:
            S = S * gv[:, t].exp()[..., None, :]
        S = S + k[:, t, :, :, None] * v[:, t, :, None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    return torch.stack(out, 1), S


def test_fla_options_state_v_first_reverse_gv_and_g_gamma_match_a_naive_recurrence():
    q, k, v = leaf(2, 6, 2, 3), leaf(2, 6, 2, 3), leaf(2, 6, 2, 3)
    gk, gv, h0 = leaf(2, 6, 2, 3, gate=True), leaf(2, 6, 2, 3, gate=True), leaf(2, 2, 3, 3)
    close = lambda a, b: torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    # state_v_first: states are [N, H, V, K].
    o, ht = ops.chunk_gla(q, k, v, gk, initial_state=h0.transpose(-1, -2), output_final_state=True,
                          state_v_first=True)
    ro, rht = naive_gla(q, k, v, gk, h0=h0)
    assert close(o, ro) and close(ht, rht.transpose(-1, -2))
    # Both gates, and gv alone.
    o, ht = ops.fused_recurrent_gla(q, k, v, gk=gk, gv=gv, initial_state=h0, output_final_state=True)
    ro, rht = naive_gla(q, k, v, gk, gv, h0=h0)
    assert close(o, ro) and close(ht, rht)
    o, _ = ops.fused_recurrent_gla(q, k, v, gv=gv)
    assert close(o, naive_gla(q, k, v, gv=gv)[0])
    # reverse=True: each sequence runs from its last token to its first.
    o, ht = ops.fused_recurrent_gla(q, k, v, gk=gk, initial_state=h0, output_final_state=True, reverse=True)
    ro, rht = naive_gla(*(x.flip(1) for x in (q, k, v, gk)), h0=h0)
    assert close(o, ro.flip(1)) and close(ht, rht)
    # reverse with packed sequences (one empty): each reversed on its own.
    cu = torch.tensor([0, 4, 4, 12])
    flat = [x.reshape(1, 12, 2, 3) for x in (q, k, v, gk)]
    o, _ = ops.fused_recurrent_gla(*flat[:3], gk=flat[3], reverse=True, cu_seqlens=cu)
    for a, b in ((0, 4), (4, 12)):
        part = [x[:, a:b].flip(1) for x in flat]
        assert close(o[:, a:b], naive_gla(*part)[0].flip(1))
    # g_gamma: a constant per-head log decay, alone or with g.
    gamma = torch.tensor([-0.1, -0.7], dtype=torch.float64)
    g = leaf(2, 6, 2, gate=True)
    o, _ = ops.chunk_simple_gla(q, k, v, g_gamma=gamma)
    assert close(o, naive_gla(q, k, v, gamma.expand(2, 6, 2)[..., None].expand(2, 6, 2, 3))[0])
    o, _ = ops.fused_recurrent_simple_gla(q, k, v, g=g, g_gamma=gamma)
    assert close(o, naive_gla(q, k, v, (g + gamma)[..., None].expand(2, 6, 2, 3))[0])


def test_gradcheck_float64_reverse_and_both_gates():
    q, k, v = leaf(1, 5, 2, 3), leaf(1, 5, 2, 3), leaf(1, 5, 2, 3)
    gk, gv = leaf(1, 5, 2, 3, gate=True), leaf(1, 5, 2, 3, gate=True)
    f = lambda q, k, v, gk, gv: ops.fused_recurrent_gla(q, k, v, gk=gk, gv=gv, reverse=True)[0]
    assert gradcheck(f, (q, k, v, gk, gv))


@pytest.mark.skipif(not lina._lina.llvm_available(), reason="this build has no LLVM CPU backend")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp32_and_bf16_cpu_tensors_run_the_llvm_backend_forward_and_derived_backward(dtype):
    """fp32/bf16 CPU tensors take the LLVM backend's compiled kernels (forward, and the derived
    backward's two passes); float64 the reference. They agree within the dtype's precision, and
    strategy='reference' forces the interpreter."""
    base = [leaf(1, 37, 2, 8).detach() for _ in range(3)] + [leaf(1, 37, 2, 8, gate=True).detach()]
    h0 = leaf(1, 2, 8, 8).detach()

    def run(dt, **kw):
        xs = [x.detach().to(dt).clone().requires_grad_() for x in base]
        s0 = h0.detach().to(torch.float32 if dt != torch.float64 else dt).clone().requires_grad_()
        o, ht = ops.chunk_gla(*xs, initial_state=s0, output_final_state=True, **kw)
        (o.double().square().sum() + ht.double().sum()).backward()
        return [o.detach().double(), ht.detach().double()] + [x.grad.double() for x in xs + [s0]]

    ours, ref = run(dtype), run(torch.float64)
    bound = 1e-5 if dtype == torch.float32 else 3e-2
    for a, b in zip(ours, ref):
        assert (a - b).abs().max() <= bound * b.abs().max(), (a - b).abs().max()
    forced = run(torch.float32, strategy="reference")
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(forced, ref))


@pytest.mark.skipif(not lina._lina.llvm_available(), reason="this build has no LLVM CPU backend")
def test_the_cpu_backends_disk_cache_survives_corrupt_and_truncated_entries(tmp_path):
    """The LLVM backend's object files live in $LINA_CACHE_DIR as cpu-<hash>.o: a second process
    loads them instead of compiling; garbage or a truncated entry is rebuilt, never loaded."""
    import subprocess
    import sys
    script = ("import torch, torch.nn.functional as F\nfrom lina import ops\ntorch.manual_seed(0)\n"
              "q = torch.randn(1, 33, 2, 8); g = F.logsigmoid(torch.randn(1, 33, 2, 8))\n"
              "print(float(ops.chunk_gla(q, q, q, g)[0].double().square().sum()))\n")
    path = os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    env = dict(os.environ, LINA_CACHE_DIR=str(tmp_path), PYTHONPATH=path)
    run = lambda: subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    first = run()
    assert first.returncode == 0, first.stderr
    entries = sorted(tmp_path.glob("cpu-*.o"))
    assert entries, "the object file was cached"
    good = {e: e.read_bytes() for e in entries}
    for damage in (lambda b: b"not an object file", lambda b: b[: len(b) // 2]):
        for e in entries:
            e.write_bytes(damage(e.read_bytes()))
        again = run()
        assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
        assert all(e.read_bytes() == good[e] for e in entries)  # rebuilt and rewritten whole
