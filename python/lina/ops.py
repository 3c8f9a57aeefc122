"""fla-compatible ops on lina's kernels: the same names, arguments, defaults and return values
as fla.ops for GLA, simple GLA, retention and GSA (chunked and fused-recurrent), each with
autograd through the compiler-derived backward. Tensors are [B, T, H, d] ("head-last", fla's
default); states [N, H, K, V] fp32."""
from . import _lina
from .program import library

from .program import compile as _compile

# GLA with both fla gates (fused_recurrent_gla's gk on the rows and gv on the columns of S),
# written in the DSL: one more program, no new kernel code.
_GLA_GK_GV = """
recurrence gla_gk_gv {
  dims  K, V
  in    q[K], k[K], v[V]
  in    gk[K] : gate, gv[V] : gate
  state S[K, V]
  out   o[V]
  param scale = K ** -0.5
  S = exp(gk) * S * exp(gv) + outer(k, v)
  o = scale * (q @ S)
  chunk tune(16, 32, 64, 128)
}
"""

# Built at import (milliseconds; kernels compile on first use), so a torch.compile trace of an op
# call finds them ready and never calls into the extension.
# RWKV6 (fla's chunk_rwkv6 / fused_recurrent_rwkv6): the output reads the state before this
# step's update, plus the bonus u on the current token; the same text as tests/programs/rwkv6.lina
# (a test keeps the two equal).
_RWKV6 = """
recurrence rwkv6 {
  dims  K, V
  in    r[K], k[K], v[V]
  in    w[K] : gate
  param u[K]
  state S[K, V]
  out   o[V]
  param scale = 1
  o = scale * (r @ S + dot(r, u * k) * v)
  S = exp(w) * S + outer(k, v)
}
"""

_OPS = {name: library(name) for name in ("gla", "simple_gla", "retention", "gsa")}
_OPS["gla_gk_gv"] = _compile(_GLA_GK_GV, name="<lina.ops gla_gk_gv>")
_OPS["rwkv6"] = _compile(_RWKV6, name="<lina.ops rwkv6>")


def _transposed_state(state):
    """fla's state_v_first layout [N, H, V, K] <-> lina's [N, H, K, V]."""
    return None if state is None else state.transpose(-1, -2)


def _reversed_in_time(x, cu_seqlens):
    """x [B, T, ...] with every sequence reversed (each packed sequence on its own), computed on
    the device without a host sync; differentiable."""
    if cu_seqlens is None:
        return x.flip(1)
    import torch
    cu = cu_seqlens.to(x.device).long()
    t = torch.arange(x.shape[1], device=x.device)
    seq = torch.searchsorted(cu[1:], t, right=True)
    return x.index_select(1, cu[seq] + cu[seq + 1] - 1 - t)


def _run_reversed(call, tensors, cu_seqlens):
    """fla's reverse=True: the recurrence runs from the last token to the first of each sequence
    (the initial state enters at the end; the final state is the one after the first token)."""
    flipped = [None if x is None else _reversed_in_time(x, cu_seqlens) for x in tensors]
    o, final = call(*flipped)
    return _reversed_in_time(o, cu_seqlens), final


def _params(scale):
    return {} if scale is None else {"scale": float(scale)}


def _unsupported(what, fix):
    raise _lina.LinaError(f"{what} is not supported by lina yet; {fix}")


def _options(op_name, kwargs):
    """The keyword arguments fla's chunk ops take beyond their named ones: `chunk_size` (lina's
    chunk), `cu_seqlens_cpu` (not needed: lina builds its chunk tables on the device) and lina's
    `strategy`. Anything else, fla's removed `head_first` included, is an error rather than
    silently ignored."""
    for key in kwargs:
        if key == "head_first":
            raise _lina.LinaError(f"{op_name}: head_first: the [B, H, T, d] layout is gone from fla and not taken by "
                                  "lina; pass [B, T, H, d] tensors (e.g. x.transpose(1, 2))")
        if key not in ("strategy", "chunk_size", "cu_seqlens_cpu"):
            raise _lina.LinaError(f"{op_name}: unexpected keyword argument '{key}'; expected strategy, chunk_size "
                                  "or cu_seqlens_cpu")
    return dict(strategy=kwargs.get("strategy", "auto"), chunk=int(kwargs.get("chunk_size") or 0))


def chunk_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, state_v_first=False,
              cu_seqlens=None, **kwargs):
    """o, final_state = chunk_gla(q, k, v, g): S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = S_t^T (scale q_t).
    state_v_first=True: initial and final states are [N, H, V, K] (fla's GLA layer layout)."""
    if state_v_first:
        initial_state = _transposed_state(initial_state)
    o, final = _OPS["gla"](q=q, k=k, v=v, g=g, initial_state=initial_state, output_final_state=output_final_state,
                           cu_seqlens=cu_seqlens, scalar_params=_params(scale), **_options("chunk_gla", kwargs))
    return o, _transposed_state(final) if state_v_first else final


def fused_recurrent_gla(q, k, v, gk=None, gv=None, scale=None, initial_state=None, output_final_state=False,
                        reverse=False, state_v_first=False, cu_seqlens=None):
    """fla's fused_recurrent_gla: gk decays the rows (key side), gv the columns (value side); either
    may be absent. reverse=True runs each sequence from its last token to its first."""
    if state_v_first:
        initial_state = _transposed_state(initial_state)

    def call(q, k, v, gk, gv):
        if gv is None and gk is not None:
            return _OPS["gla"](q=q, k=k, v=v, g=gk, initial_state=initial_state, output_final_state=output_final_state,
                               cu_seqlens=cu_seqlens, scalar_params=_params(scale), strategy="recurrent")
        if gk is None:  # no key-side decay: log gate 0
            gk = q.new_zeros(q.shape)
        if gv is None:
            gv = v.new_zeros(v.shape)
        return _OPS["gla_gk_gv"](q=q, k=k, v=v, gk=gk, gv=gv, initial_state=initial_state,
                                 output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                 scalar_params=_params(scale), strategy="recurrent")

    tensors = (q, k, v, gk, gv)
    o, final = _run_reversed(call, tensors, cu_seqlens) if reverse else call(*tensors)
    return o, _transposed_state(final) if state_v_first else final


def _simple_gla_gate(q, g, g_gamma):
    """fla's simple GLA gate: g [B, T, H] and/or a constant per-head log decay g_gamma [H]
    (both given: both decays apply, consistently in forward and backward)."""
    if g is None and g_gamma is None:
        _unsupported("chunk_simple_gla without g or g_gamma", "pass g [B, T, H] or g_gamma [H]")
    if g_gamma is None:
        return g
    decay = g_gamma.to(q.dtype if g is None else g.dtype).reshape(1, 1, -1).expand(q.shape[0], q.shape[1], -1)
    return decay if g is None else g + decay


def chunk_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None, output_final_state=False,
                     cu_seqlens=None, **kwargs):
    """o, final_state = chunk_simple_gla(q, k, v, g) with a scalar log decay per head and step:
    g [B, T, H], or a constant g_gamma [H]."""
    return _OPS["simple_gla"](q=q, k=k, v=v, g=_simple_gla_gate(q, g, g_gamma), initial_state=initial_state,
                              output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                              scalar_params=_params(scale), **_options("chunk_simple_gla", kwargs))


def fused_recurrent_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None,
                               output_final_state=False, reverse=False, cu_seqlens=None):
    call = lambda q, k, v, g: chunk_simple_gla(q, k, v, g, None, scale, initial_state, output_final_state,
                                               cu_seqlens, strategy="recurrent")
    tensors = (q, k, v, _simple_gla_gate(q, g, g_gamma))
    return _run_reversed(call, tensors, cu_seqlens) if reverse else call(*tensors)


def chunk_retention(q, k, v, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None, **kwargs):
    """o, final_state = chunk_retention(q, k, v): decay gamma_h = 1 - 2^(-5 - h) per head."""
    return _OPS["retention"](q=q, k=k, v=v, initial_state=initial_state, output_final_state=output_final_state,
                            cu_seqlens=cu_seqlens, scalar_params=_params(scale),
                            **_options("chunk_retention", kwargs))


def fused_recurrent_retention(q, k, v, scale=None, initial_state=None, output_final_state=False, reverse=False,
                              cu_seqlens=None):
    call = lambda q, k, v: chunk_retention(q, k, v, scale, initial_state, output_final_state, cu_seqlens,
                                           strategy="recurrent")
    return _run_reversed(call, (q, k, v), cu_seqlens) if reverse else call(q, k, v)


def chunk_gsa(q, k, v, s, g=None, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
              **kwargs):
    """o, (Hk, Hv) = chunk_gsa(q, k, v, s, g): gated slot attention with M = s.shape[-1] slots."""
    if g is None:
        _unsupported("g=None", "pass the slot forget gate g [B, T, H, M]")
    return _OPS["gsa"](q=q, k=k, v=v, s=s, g=g, initial_state=initial_state, output_final_state=output_final_state,
                      cu_seqlens=cu_seqlens, scalar_params=_params(scale), **_options("chunk_gsa", kwargs))


def fused_recurrent_gsa(q, k, v, s, g=None, scale=None, initial_state=None, output_final_state=False,
                        reverse=False, cu_seqlens=None):
    call = lambda q, k, v, s, g: chunk_gsa(q, k, v, s, g, scale, initial_state, output_final_state, cu_seqlens,
                                           strategy="recurrent")
    return _run_reversed(call, (q, k, v, s, g), cu_seqlens) if reverse else call(q, k, v, s, g)


def chunk_rwkv6(r, k, v, w, u, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
                **kwargs):
    """o, final_state = chunk_rwkv6(r, k, v, w, u): o_t = scale * (r_t^T S_{t-1} + (r_t . (u * k_t)) v_t),
    S_t = diag(exp(w_t)) S_{t-1} + k_t v_t^T; w [B, T, H, K] log decays, u [H, K] the bonus;
    scale defaults to K^-0.5 as in fla (RWKV6's layer passes 1)."""
    if scale is None:
        scale = r.shape[-1] ** -0.5
    return _OPS["rwkv6"](r=r, k=k, v=v, w=w, vector_params={"u": u}, initial_state=initial_state,
                        output_final_state=output_final_state, cu_seqlens=cu_seqlens, scalar_params=_params(scale),
                        **_options("chunk_rwkv6", kwargs))


def fused_recurrent_rwkv6(r, k, v, w, u, scale=None, initial_state=None, output_final_state=False, reverse=False,
                          cu_seqlens=None):
    call = lambda r, k, v, w: chunk_rwkv6(r, k, v, w, u, scale, initial_state, output_final_state, cu_seqlens,
                                          strategy="recurrent")
    return _run_reversed(call, (r, k, v, w), cu_seqlens) if reverse else call(r, k, v, w)


__all__ = ["chunk_gla", "fused_recurrent_gla", "chunk_simple_gla", "fused_recurrent_simple_gla", "chunk_retention",
           "fused_recurrent_retention", "chunk_gsa", "fused_recurrent_gsa", "chunk_rwkv6", "fused_recurrent_rwkv6"]
