"""lina.ops on a GPU (skipped without torch or CUDA): forward and backward of every op against a
naive PyTorch recurrence written here (float64), bf16 and fp32, fla's RMS error ratio; varlen
with initial states; validation errors; a CUDA-graph capture and replay of a varlen call."""
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import lina  # noqa: E402
from lina import ops  # noqa: E402

DEV = torch.device("cuda")


def ratio(ref, x):
    ref, x = ref.double(), x.double()
    return ((ref - x).pow(2).mean().sqrt() / (ref.pow(2).mean().sqrt() + 1e-8)).item()


def naive(kind, q, k, v, scale, h0=None, g=None, s=None):
    """The recurrences of fla-spec §2, one step at a time (float64)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    if kind == "gsa":
        M = s.shape[-1]
        Sk = torch.zeros(B, H, K, M, dtype=q.dtype, device=q.device) if h0 is None else h0[0].clone()
        Sv = torch.zeros(B, H, M, V, dtype=q.dtype, device=q.device) if h0 is None else h0[1].clone()
        out = []
        for t in range(T):
            e = g[:, t].exp()
            Sk = Sk * e[:, :, None, :] + k[:, t, :, :, None] * s[:, t, :, None, :]
            Sv = e[:, :, :, None] * Sv + s[:, t, :, :, None] * v[:, t, :, None, :]
            p = torch.softmax(torch.einsum("bhk,bhkm->bhm", q[:, t] * scale, Sk), -1)
            out.append(torch.einsum("bhm,bhmv->bhv", p, Sv))
        return torch.stack(out, 1), (Sk, Sv)
    S = torch.zeros(B, H, K, V, dtype=q.dtype, device=q.device) if h0 is None else h0.clone()
    out = []
    for t in range(T):
        if kind == "gla":
            S = S * g[:, t].exp()[..., None]
        elif kind == "simple_gla":
            S = S * g[:, t].exp()[..., None, None]
        else:  # retention
            gamma = 1 - 2.0 ** (-5.0 - torch.arange(H, device=q.device, dtype=q.dtype))
            S = S * gamma[None, :, None, None]
        S = S + k[:, t, :, :, None] * v[:, t, :, None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    return torch.stack(out, 1), S


def make(kind, B, T, H, D, dtype, seed=0):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen)
    x = {"q": r(B, T, H, D), "k": r(B, T, H, D), "v": r(B, T, H, D)}
    if kind == "gla":
        x["g"] = torch.nn.functional.logsigmoid(r(B, T, H, D))
    if kind == "simple_gla":
        x["g"] = torch.nn.functional.logsigmoid(r(B, T, H))
    if kind == "gsa":
        x["s"] = r(B, T, H, 32)
        x["g"] = torch.nn.functional.logsigmoid(r(B, T, H, 32))
    return {n: t.to(dtype).to(DEV) for n, t in x.items()}


def call(kind, fused, x, **kw):
    if kind == "gla":
        return (ops.fused_recurrent_gla(x["q"], x["k"], x["v"], gk=x["g"], **kw) if fused
                else ops.chunk_gla(x["q"], x["k"], x["v"], x["g"], **kw))
    if kind == "simple_gla":
        f = ops.fused_recurrent_simple_gla if fused else ops.chunk_simple_gla
        return f(x["q"], x["k"], x["v"], x["g"], **kw)
    if kind == "retention":
        f = ops.fused_recurrent_retention if fused else ops.chunk_retention
        return f(x["q"], x["k"], x["v"], **kw)
    f = ops.fused_recurrent_gsa if fused else ops.chunk_gsa
    return f(x["q"], x["k"], x["v"], x["s"], x["g"], **kw)


@pytest.mark.parametrize("kind", ["gla", "simple_gla", "retention", "gsa"])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_op_forward_and_backward_match_a_naive_recurrence(kind, fused, dtype):
    B, T, H, D = 2, 100, 2, 64
    x = make(kind, B, T, H, D, dtype)
    for t in x.values():
        t.requires_grad_()
    state_shape = [(B, H, D, 32), (B, H, 32, D)] if kind == "gsa" else [(B, H, D, D)]
    h0 = [torch.randn(*s, device=DEV) for s in state_shape]
    h0_arg = tuple(h0) if kind == "gsa" else h0[0]
    o, ht = call(kind, fused, x, initial_state=h0_arg, output_final_state=True)
    do = torch.randn_like(o)
    dht = [torch.randn_like(h) for h in h0]
    finals = ht if kind == "gsa" else (ht,)
    loss = (o.float() * do.float()).sum() + sum((f * d).sum() for f, d in zip(finals, dht))
    loss.backward()

    ref_x = {n: t.detach().double().requires_grad_() for n, t in x.items()}
    ref_h0 = [h.double() for h in h0]
    scale = D ** -0.5
    ro, rht = naive(kind, ref_x["q"], ref_x["k"], ref_x["v"], scale,
                    tuple(ref_h0) if kind == "gsa" else ref_h0[0], ref_x.get("g"), ref_x.get("s"))
    rfinals = rht if kind == "gsa" else (rht,)
    rloss = (ro * do.double()).sum() + sum((f * d.double()).sum() for f, d in zip(rfinals, dht))
    rloss.backward()
    tol = 5e-3 if dtype == torch.bfloat16 else 1e-4
    assert ratio(ro, o) <= tol
    for f, rf in zip(finals, rfinals):
        assert ratio(rf, f) <= tol
    for n in x:
        assert ratio(ref_x[n].grad, x[n].grad) <= tol, n


def test_varlen_with_initial_state_equals_separate_calls():
    cu = torch.tensor([0, 30, 30, 95], dtype=torch.int32)
    x = make("gla", 1, 95, 2, 64, torch.float32, seed=3)
    h0 = torch.randn(3, 2, 64, 64, device=DEV)
    o, ht = ops.chunk_gla(x["q"], x["k"], x["v"], x["g"], initial_state=h0, output_final_state=True, cu_seqlens=cu)
    for n in range(3):
        a, b = int(cu[n]), int(cu[n + 1])
        part = {name: t[:, a:b] for name, t in x.items()}
        if a == b:
            assert torch.allclose(ht[n], h0[n])
            continue
        po, pht = ops.chunk_gla(part["q"], part["k"], part["v"], part["g"], initial_state=h0[n:n + 1],
                                output_final_state=True)
        assert ratio(po, o[:, a:b]) < 1e-5 and ratio(pht[0], ht[n]) < 1e-5


@pytest.mark.parametrize("kind", ["gla", "gsa"])
def test_split_strategy_equals_fused_and_trains(kind):
    # strategy="split" reaches the split kernels through the custom op; its forward is the fused
    # one's arithmetic (bit for bit) and its backward runs the derived passes as usual.
    x = make(kind, 1, 700, 2, 64, torch.bfloat16, seed=5)
    results = {}
    for strategy in ("fused", "split"):
        xs = {n: t.detach().clone().requires_grad_() for n, t in x.items()}
        o, ht = call(kind, False, xs, output_final_state=True, strategy=strategy, chunk_size=32)
        o.float().sum().backward()
        results[strategy] = (o, ht, {n: t.grad for n, t in xs.items()})
    (fo, fht, fg), (so, sht, sg) = results["fused"], results["split"]
    assert torch.equal(fo, so)
    for a, b in zip(fht if kind == "gsa" else (fht,), sht if kind == "gsa" else (sht,)):
        assert torch.equal(a, b)
    for n in fg:
        assert torch.equal(fg[n], sg[n]), n


def test_validation_errors_name_argument_expected_and_actual():
    x = make("gla", 2, 16, 2, 64, torch.bfloat16)
    with pytest.raises(lina.LinaError, match=r"input 'k': expected shape \[2, 16, 2, 64\]"):
        ops.chunk_gla(x["q"], x["k"][:, :8], x["v"], x["g"])
    with pytest.raises(lina.LinaError, match="input 'k': expected device cpu like 'q'; got cuda"):
        ops.chunk_gla(x["q"].cpu(), x["k"], x["v"], x["g"])
    with pytest.raises(lina.LinaError, match="expected one of .* on cuda; got torch.float64"):
        ops.chunk_gla(x["q"].double(), x["k"], x["v"], x["g"])
    with pytest.raises(lina.LinaError, match="packed sequences need batch size 1; got B = 2"):
        ops.chunk_gla(x["q"], x["k"], x["v"], x["g"], cu_seqlens=torch.tensor([0, 16], dtype=torch.int32))
    y = make("gla", 1, 16, 2, 64, torch.bfloat16)
    with pytest.raises(lina.LinaError, match="last entry to equal T = 16; got 12"):
        ops.chunk_gla(y["q"], y["k"], y["v"], y["g"], cu_seqlens=torch.tensor([0, 12], dtype=torch.int32))
    with pytest.raises(lina.LinaError, match="non-decreasing"):
        ops.chunk_gla(y["q"], y["k"], y["v"], y["g"], cu_seqlens=torch.tensor([0, 10, 4, 16], dtype=torch.int32))
    with pytest.raises(lina.LinaError, match=r"initial_state 'S': expected shape \[3, 2, 64, 64\]"):
        ops.chunk_gla(y["q"], y["k"], y["v"], y["g"], cu_seqlens=torch.tensor([0, 4, 10, 16], dtype=torch.int32),
                      initial_state=torch.zeros(2, 2, 64, 64, device=DEV))
    with pytest.raises(lina.LinaError, match="fits in"):
        z = make("gla", 1, 16, 1, 64, torch.bfloat16)
        big = {n: torch.randn(1, 16, 1, 100000, device=DEV, dtype=torch.bfloat16) for n in "qkg"}
        ops.chunk_gla(big["q"], big["k"], z["v"], big["g"])


def test_cuda_graph_capture_and_replay_of_a_varlen_call():
    cu = torch.tensor([0, 40, 64], dtype=torch.int32, device=DEV)
    x = make("gla", 1, 64, 2, 64, torch.bfloat16, seed=4)
    o = ops.chunk_gla(x["q"], x["k"], x["v"], x["g"], cu_seqlens=cu)[0]  # warm up: compile and load
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph, stream=stream):
            captured = ops.chunk_gla(x["q"], x["k"], x["v"], x["g"], cu_seqlens=cu)[0]
    torch.cuda.current_stream().wait_stream(stream)
    for n in x:
        x[n].copy_(make("gla", 1, 64, 2, 64, torch.bfloat16, seed=5)[n])
    graph.replay()
    torch.cuda.synchronize()
    fresh = ops.chunk_gla(x["q"], x["k"], x["v"], x["g"], cu_seqlens=cu)[0]
    assert torch.equal(captured, fresh) and not torch.equal(captured, o)


class ToyModel(torch.nn.Module):
    """Two GLA layers and one GSA layer, pre-norm residual, bf16."""

    def __init__(self, width=256, heads=2, slots=32):
        super().__init__()
        self.heads, self.slots = heads, slots
        self.norms = torch.nn.ModuleList(torch.nn.LayerNorm(width) for _ in range(3))
        self.gla = torch.nn.ModuleList(torch.nn.Linear(width, 4 * width, bias=False) for _ in range(2))
        self.gsa = torch.nn.Linear(width, 3 * width + 2 * heads * slots, bias=False)
        self.outs = torch.nn.ModuleList(torch.nn.Linear(width, width, bias=False) for _ in range(3))

    def forward(self, x, cu_seqlens=None):
        b, t, _ = x.shape
        for i in range(2):
            q, k, v, g = self.gla[i](self.norms[i](x)).view(b, t, self.heads, 4, -1).unbind(3)
            o, _ = ops.chunk_gla(q, k, v, torch.nn.functional.logsigmoid(g) / 16, cu_seqlens=cu_seqlens)
            x = x + self.outs[i](o.reshape(b, t, -1))
        qkv, sg = self.gsa(self.norms[2](x)).split([x.shape[-1] * 3, 2 * self.heads * self.slots], -1)
        q, k, v = qkv.view(b, t, self.heads, 3, -1).unbind(3)
        s, g = sg.view(b, t, self.heads, 2, self.slots).unbind(3)
        o, _ = ops.chunk_gsa(q, k, v, s, torch.nn.functional.logsigmoid(g), cu_seqlens=cu_seqlens)
        return x + self.outs[2](o.reshape(b, t, -1))


def test_torch_compile_fullgraph_model_on_gpu_matches_eager():
    torch.manual_seed(0)
    model = ToyModel().to(DEV, torch.bfloat16)
    x = torch.randn(1, 300, 256, device=DEV, dtype=torch.bfloat16)
    cu = torch.tensor([0, 100, 100, 300], dtype=torch.int32, device=DEV)
    eager = model(x, cu)
    eager.float().square().mean().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    explained = torch._dynamo.explain(model)(x, cu)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(model, fullgraph=True)
    y = compiled(x, cu)
    y.float().square().mean().backward()
    assert ratio(eager, y) < 1e-2
    for p, g in zip(model.parameters(), eager_grads):
        assert ratio(g, p.grad) < 2e-2


def test_dlpack_forward_and_backward_match_the_torch_path():
    op = lina.library("gla")
    x = make("gla", 1, 90, 2, 64, torch.bfloat16, seed=6)
    cu = torch.tensor([0, 20, 20, 90], dtype=torch.int32, device=DEV)
    h0 = torch.randn(3, 2, 64, 64, device=DEV)
    stream = torch.cuda.current_stream().cuda_stream
    outs, finals = op.forward_dlpack(x, initial_states={"S": h0}, cu_seqlens=cu, output_final_state=True,
                                     stream=stream)
    o, ht = torch.from_dlpack(outs["o"]), torch.from_dlpack(finals["S"])
    assert o.dtype == torch.bfloat16 and ht.dtype == torch.float32 and o.data_ptr() == outs["o"].pointer
    leaves = {n: t.clone().requires_grad_() for n, t in x.items()}
    h0_leaf = h0.clone().requires_grad_()
    ref_o, ref_ht = ops.chunk_gla(*leaves.values(), initial_state=h0_leaf, output_final_state=True, cu_seqlens=cu)
    assert torch.equal(o, ref_o) and torch.equal(ht, ref_ht)
    do, dht = torch.randn_like(o), torch.randn_like(ht)
    ((ref_o.float() * do.float()).sum() + (ref_ht * dht).sum()).backward()
    grads, state_grads, _ = op.backward_dlpack(x, {"o": do}, final_state_grads={"S": dht}, initial_states={"S": h0},
                                               final_states={"S": ht}, cu_seqlens=cu, stream=stream)
    for n in x:
        assert ratio(leaves[n].grad, torch.from_dlpack(grads[n])) < 1e-6, n
    assert ratio(h0_leaf.grad, torch.from_dlpack(state_grads["S"])) < 1e-6
    with pytest.raises(lina.LinaError, match=r"input 'q': expected a row-major contiguous array"):
        op.forward_dlpack({**x, "q": x["q"].transpose(1, 2)})
    with pytest.raises(lina.LinaError, match=r"input 'k': expected bf16 like 'q'; got fp32"):
        op.forward_dlpack({**x, "k": x["k"].float()})


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_both_gla_gates_reversed_with_state_v_first_match_a_naive_recurrence(dtype):
    B, T, H, D = 2, 80, 2, 64
    x = make("gla", B, T, H, D, dtype, seed=7)
    x["gv"] = torch.nn.functional.logsigmoid(torch.randn(B, T, H, D, device=DEV)).to(dtype)
    for t in x.values():
        t.requires_grad_()
    h0 = torch.randn(B, H, D, D, device=DEV)  # [N, H, V, K] with state_v_first
    o, ht = ops.fused_recurrent_gla(x["q"], x["k"], x["v"], gk=x["g"], gv=x["gv"], initial_state=h0,
                                    output_final_state=True, reverse=True, state_v_first=True)
    do, dht = torch.randn_like(o), torch.randn_like(ht)
    ((o.float() * do.float()).sum() + (ht * dht).sum()).backward()
    ref = {n: t.detach().double().flip(1).requires_grad_() for n, t in x.items()}
    S = h0.double().transpose(-1, -2).clone()
    outs = []
    for t in range(T):
        S = S * ref["g"][:, t].exp()[..., None] * ref["gv"][:, t].exp()[..., None, :]
        S = S + ref["k"][:, t, :, :, None] * ref["v"][:, t, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", ref["q"][:, t] * D ** -0.5, S))
    ro = torch.stack(outs, 1).flip(1)
    ((ro * do.double()).sum() + (S.transpose(-1, -2) * dht.double()).sum()).backward()
    tol = 5e-3 if dtype == torch.bfloat16 else 1e-4
    assert ratio(ro, o) <= tol and ratio(S.transpose(-1, -2), ht) <= tol
    for n in x:
        assert ratio(ref[n].grad.flip(1), x[n].grad) <= tol, n


def test_tune_records_and_a_later_launch_consults(tmp_path, monkeypatch):
    if not hasattr(lina._lina, "tune"):
        pytest.skip("built without the tuning database")
    monkeypatch.setenv("LINA_CACHE_DIR", str(tmp_path))
    r = lina.tune("gla", {"K": 64, "V": 64}, (2, 512, 4), reps=3)
    assert r["best"] is not None and r["best_ms"] > 0, r["report"]
    assert r["database"].startswith(str(tmp_path)), r["database"]
    statuses = [c["status"] for c in r["candidates"]]
    assert statuses.count("best") == 1, r["report"]
    timed = [c["ms"] for c in r["candidates"] if c["ms"] is not None]
    assert r["best_ms"] == min(timed)
    assert "| candidate |" in r["report"]
