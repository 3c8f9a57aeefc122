"""lina as a drop-in for fla 0.6.0 (skipped without torch or without fla importable; on the CPU
fla imports with Triton's CPU fallback): every public op of fla's GLA, simple GLA, retention, GSA
and RWKV6 families exists in lina.ops with fla's exact signature, and fla's own layers run on lina
through lina.patch_fla() with the outputs and gradients of fla's naive torch references (fla's
Triton kernels need a GPU: tests/gpu compares against them on the device)."""
import inspect
import warnings

import pytest

torch = pytest.importorskip("torch")
warnings.filterwarnings("ignore")
fla_ops = pytest.importorskip("fla.ops")

import importlib  # noqa: E402

import lina  # noqa: E402
from lina import ops  # noqa: E402


def fla_op(family, name):
    return getattr(importlib.import_module(f"fla.ops.{family}"), name)


@pytest.mark.parametrize("family,name", [(f, n) for f, names in ops.FLA_FAMILIES.items() for n in names])
def test_every_fla_op_has_flas_exact_signature(family, name):
    ours, theirs = inspect.signature(getattr(ops, name)), inspect.signature(fla_op(family, name))
    ours_p, theirs_p = list(ours.parameters.values()), list(theirs.parameters.values())
    # lina's chunk ops add **kwargs (strategy=, chunk_size=) where fla takes none; nothing else differs.
    if ours_p and ours_p[-1].kind is inspect.Parameter.VAR_KEYWORD and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in theirs_p):
        assert name.startswith("chunk_"), f"{name}: only lina's chunk ops add **kwargs"
        ours_p = ours_p[:-1]
    assert [(p.name, p.kind, p.default) for p in ours_p] == [(p.name, p.kind, p.default) for p in theirs_p]


def test_fla_families_list_every_public_op_of_fla():
    for family, names in ops.FLA_FAMILIES.items():
        module = importlib.import_module(f"fla.ops.{family}")
        assert sorted(module.__all__) == sorted(names), family


def gates(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.logsigmoid(torch.randn(*shape, generator=gen))


def test_keywords_are_treated_as_fla_treats_them():
    q = torch.randn(1, 5, 2, 4)
    g = gates(1, 5, 2, 4)
    # fla's ops with **kwargs ignore unknown keywords; those without raise Python's TypeError.
    o, _ = ops.chunk_simple_gla(q, q, q, g[..., 0], some_future_option=1)
    with pytest.raises(TypeError, match=r"fused_recurrent_gsa\(\) got an unexpected keyword argument 'foo'"):
        ops.fused_recurrent_gsa(q, q, q, q, g, foo=1)
    with pytest.raises(TypeError, match=r"chunk_gla\(\) got an unexpected keyword argument 'foo'"):
        ops.chunk_gla(q, q, q, g, foo=1)
    with pytest.raises(lina.LinaError, match="chunk_size: expected a power of 2; got 48"):
        ops.chunk_retention(q, q, q, chunk_size=48)
    # transpose_state_layout is the deprecated name of state_v_first.
    h0 = torch.randn(1, 2, 4, 4)
    a = ops.fused_recurrent_gla(q, q, q, gk=g, initial_state=h0, output_final_state=True, state_v_first=True)
    b = ops.fused_recurrent_gla(q, q, q, gk=g, initial_state=h0, output_final_state=True, transpose_state_layout=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(lina.LinaError, match="cannot pass both state_v_first and the deprecated"):
        ops.fused_recurrent_gla(q, q, q, gk=g, state_v_first=True, transpose_state_layout=True)
    with pytest.raises(NotImplementedError, match="`fused_chunk_gla` is deprecated"):
        ops.fused_chunk_gla(q=q, k=q, v=q, g=g)
    with pytest.raises(lina.LinaError, match="chunk_gsa: checkpoint_level: expected 0, 1 or 2; got 3"):
        ops.chunk_gsa(q, q, q, q, g, checkpoint_level=3)
    with pytest.raises(lina.LinaError, match=r"with cu_seqlens the batch size must be 1 .* got 2"):
        ops.chunk_gla(q.expand(2, -1, -1, -1), q, q, g, cu_seqlens=torch.tensor([0, 5]))


def test_gate_sign_policy_rejects_growth_unless_opted_out_and_nan_propagates():
    q = torch.randn(1, 6, 2, 4)
    g = gates(1, 6, 2, 4)
    bad = g.clone()
    bad[0, 3, 1, 2] = 0.5
    for call in (lambda x: ops.chunk_gla(q, q, q, x), lambda x: ops.fused_recurrent_gla(q, q, q, gv=x),
                 lambda x: ops.chunk_simple_gla(q, q, q, x[..., 2]), lambda x: ops.chunk_rwkv6(q, q, q, x, q[0, 0]),
                 lambda x: ops.chunk_gsa(q, q, q, q, x)):
        with pytest.raises(lina.LinaError, match=r"holds log-decays and must be <= 0 .* largest entry is 0.5"):
            call(bad)
    previous = ops.check_gates(False)
    try:
        o, _ = ops.chunk_gla(q, q, q, bad)
        assert torch.isfinite(o).all()
    finally:
        ops.check_gates(previous)
    nan = g.clone()
    nan[0, 2, 0, 1] = float("nan")
    o, _ = ops.chunk_gla(q, q, q, nan)
    assert torch.isnan(o[0, 2:, 0]).any() and not torch.isnan(o[0, :, 1]).any()


def test_gsa_gqa_additive_gate_and_parallel_attentions_match_flas_naive_references():
    from fla.ops.gsa.naive import naive_recurrent_gsa
    from fla.ops.simple_gla.naive import naive_parallel_simple_gla
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 9, h, 4, generator=gen, dtype=torch.float64) for h in (4, 2, 2))
    s = torch.randn(2, 9, 2, 3, generator=gen, dtype=torch.float64)
    h0 = (torch.randn(2, 2, 4, 3, dtype=torch.float64), torch.randn(2, 2, 3, 4, dtype=torch.float64))
    for g in (None, gates(2, 9, 2, 3, seed=4).double()):
        o, (hk, hv) = ops.chunk_gsa(q, k, v, s, g, initial_state=h0, output_final_state=True)
        ro, (rhk, rhv) = naive_recurrent_gsa(q, k, v, s, g, initial_state=h0, output_final_state=True)
        # fla's naive reference computes in float32.
        assert torch.allclose(o, ro.double(), atol=1e-5) and torch.allclose(hk, rhk.double(), atol=1e-5) and torch.allclose(hv, rhv.double(), atol=1e-5)
    g = gates(2, 9, 4, seed=5).double()
    o, attn = ops.parallel_simple_gla(q, q, v.repeat_interleave(2, 2), g, output_attentions=True)
    ro, rattn = naive_parallel_simple_gla(q, q, v.repeat_interleave(2, 2), g)
    assert torch.allclose(o, ro.double(), atol=1e-5) and torch.allclose(attn, rattn.double(), atol=1e-5)


# --- fla's layers through lina.patch_fla(), against fla's naive references -------------------------

def _per_sequence(fn, tensors, cu_seqlens):
    """Runs a naive reference (no varlen support) on every packed sequence."""
    if cu_seqlens is None:
        return fn(*tensors)
    bounds = cu_seqlens.tolist()
    return torch.cat([fn(*[x[:, a:b] for x in tensors]) for a, b in zip(bounds[:-1], bounds[1:])], dim=1)


def naive_ops():
    """fla's naive torch references under the names and call conventions of its ops."""
    from fla.ops.gla.naive import naive_recurrent_gla
    from fla.ops.gsa.naive import naive_recurrent_gsa
    from fla.ops.retention.naive import naive_retention
    from fla.ops.simple_gla.naive import naive_recurrent_simple_gla

    def gla(q, k, v, g=None, gk=None, cu_seqlens=None, **kw):
        gate = g if g is not None else gk
        return _per_sequence(lambda *x: naive_recurrent_gla(*x)[0], (q, k, v, gate), cu_seqlens), None

    def simple_gla(q, k, v, g=None, scale=None, cu_seqlens=None, **kw):
        return _per_sequence(lambda *x: naive_recurrent_simple_gla(*x, scale=scale)[0], (q, k, v, g), cu_seqlens), None

    def retention(q, k, v, cu_seqlens=None, **kw):
        head_first = lambda q, k, v: naive_retention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return _per_sequence(lambda *x: head_first(*x).transpose(1, 2), (q, k, v), cu_seqlens), None

    def gsa(q, k, v, s, g=None, scale=None, cu_seqlens=None, **kw):
        return _per_sequence(lambda *x: naive_recurrent_gsa(*x, scale=scale)[0], (q, k, v, s, g), cu_seqlens), None

    return {"chunk_gla": gla, "fused_recurrent_gla": gla, "chunk_simple_gla": simple_gla,
            "fused_recurrent_simple_gla": simple_gla, "chunk_retention": retention, "fused_chunk_retention": retention,
            "fused_recurrent_retention": retention, "parallel_retention": retention, "chunk_gsa": gsa,
            "fused_recurrent_gsa": gsa}


@pytest.fixture
def torch_norms(monkeypatch):
    """fla's RMSNorm, fused norm-linear, swish and rotary embedding are Triton kernels; on the CPU
    they become torch (the same math), on both sides of the comparison."""
    import fla.layers.gsa
    import fla.modules
    import fla.modules.feature_map

    def rms(x, weight, bias, eps):
        y = x.float() * torch.rsqrt(x.float().square().mean(-1, keepdim=True) + eps)
        y = y if weight is None else y * weight
        return (y if bias is None else y + bias).to(x.dtype)

    monkeypatch.setattr(fla.modules.RMSNorm, "forward",
                        lambda self, x, residual=None, prenorm=False, residual_in_fp32=False:
                        rms(x, self.weight, self.bias, self.eps))
    from fla.modules.rotary import ops as rotary

    def rope(x, cos, sin, interleaved=False, inplace=False, seqlen_offsets=0, cu_seqlens=None, chunk_indices=None):
        t = torch.arange(x.shape[1])
        if cu_seqlens is not None:
            t = t - cu_seqlens[torch.searchsorted(cu_seqlens[1:], t, right=True)]
        return rotary.rotary_embedding_ref(x, cos[t + seqlen_offsets], sin[t + seqlen_offsets], interleaved)

    monkeypatch.setattr(rotary, "rotary_embedding", rope)
    monkeypatch.setattr(fla.modules.feature_map.SwishFeatureMap, "forward",
                        lambda self, x: torch.nn.functional.silu(x))
    monkeypatch.setattr(fla.layers.gsa, "rms_norm_linear",
                        lambda x, w, b, lw, lb, **kw: torch.nn.functional.linear(rms(x, w, b, 1e-5), lw, lb))


def make_layer(kind):
    layer = _new_layer(kind)
    if hasattr(layer, "gate_fn") and not isinstance(layer.gate_fn, torch.nn.Module):  # fla's swish is Triton
        layer.gate_fn = torch.nn.functional.silu
    return layer


def _new_layer(kind):
    import fla.layers as L
    torch.manual_seed(0)
    common = dict(hidden_size=64, num_heads=2, use_short_conv=False)
    if kind == "gla":
        return L.GatedLinearAttention(**common, fuse_norm=False)
    if kind == "gla_gqa":
        return L.GatedLinearAttention(**common, num_kv_heads=1, fuse_norm=False)
    if kind == "simple_gla":
        from fla.layers.simple_gla import SimpleGatedLinearAttention
        return SimpleGatedLinearAttention(**common, fuse_norm=False)
    if kind == "retention":
        return L.MultiScaleRetention(**common, fuse_norm=False)
    if kind == "gsa":
        return L.GatedSlotAttention(hidden_size=64, num_heads=2, num_slots=8, use_short_conv=False, fuse_norm=False)
    raise ValueError(kind)


def run_layer(layer, x, cu_seqlens):
    layer.zero_grad()
    x = x.clone().requires_grad_()
    out = layer(x, cu_seqlens=cu_seqlens)[0] if cu_seqlens is not None else layer(x)[0]
    out.square().sum().backward()
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["gla", "gla_gqa", "simple_gla", "retention", "gsa"])
@pytest.mark.parametrize("T,varlen", [(40, False), (100, False), (100, True)])
def test_fla_layers_through_patch_fla_match_flas_naive_references(kind, T, varlen, torch_norms):
    import fla.layers  # noqa: F401
    layer = make_layer(kind)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1 if varlen else 2, T, 64, generator=gen)
    cu = torch.tensor([0, 30, T]) if varlen else None
    with lina.patch_fla() as patch:
        assert "chunk_gla" in patch.ops and "fused_recurrent_gsa" in patch.ops
        ours = run_layer(layer, x, cu)
    reference = naive_ops()
    originals = lina.patch_fla()  # the same identity-based replacement, with the naive functions
    try:
        for module, name, _ in originals.replaced:
            setattr(module, name, reference.get(name, getattr(module, name)))
        theirs = run_layer(layer, x, cu)
    finally:
        originals.undo()
    import fla.ops.gla
    assert fla.ops.gla.chunk_gla is not ops.chunk_gla, "undo restores fla's functions"
    scale = theirs[0].abs().max()
    assert (ours[0] - theirs[0]).abs().max() <= 1e-4 * scale
    assert (ours[1] - theirs[1]).abs().max() <= 1e-4 * theirs[1].abs().max()
    assert ours[2].keys() == theirs[2].keys() and ours[2]
    for name in ours[2]:
        assert (ours[2][name] - theirs[2][name]).abs().max() <= 1e-4 * theirs[2][name].abs().max() + 1e-7, name
