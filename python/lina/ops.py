"""fla-compatible ops on lina's kernels: every public op of fla 0.6.0's GLA, simple GLA, retention,
GSA and RWKV6 families (chunk_*, fused_recurrent_*, fused_chunk_*, parallel_*) with fla's names,
signatures, defaults, return values and keyword handling, each with autograd through the
compiler-derived backward. Tensors are [B, T, H, d] ("head-last", fla's layout); states
[N, H, K, V] fp32, or [N, H, V, K] with state_v_first=True. lina.patch_fla() routes an installed
fla's calls here. Log-gates must be <= 0 (see check_gates)."""
from . import _lina
from .fla_args import (additive_gate, causal_attention, check_gates, check_log_gate, check_varlen, fla_keywords,
                       query_groups, repeat_heads, state_v_first_of)
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


def _run(key, q, tensors, initial_state, output_final_state, cu_seqlens, scale, options, state_v_first=False,
         reverse=False, vector_params=None):
    """One lina program call with fla's state layout and reverse option."""
    if state_v_first:
        initial_state = _transposed_state(initial_state)
    names = list(tensors)

    def call(*values):
        return _OPS[key](**dict(zip(names, values)), initial_state=initial_state,
                         output_final_state=output_final_state, cu_seqlens=cu_seqlens, scalar_params=_params(scale),
                         **({"vector_params": vector_params} if vector_params else {}), **options)

    values = tuple(tensors.values())
    o, final = _run_reversed(call, values, cu_seqlens) if reverse else call(*values)
    return o, _transposed_state(final) if state_v_first else final


_RECURRENT = dict(strategy="recurrent", chunk=0)


# --- GLA -------------------------------------------------------------------------------------------

def chunk_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, state_v_first=False,
              cu_seqlens=None, cu_seqlens_cpu=None, **kwargs):
    """o, final_state = chunk_gla(q, k, v, g): S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = S_t^T (scale q_t).
    state_v_first=True: initial and final states are [N, H, V, K] (fla's GLA layer layout).
    Beyond fla: strategy= ("auto", "fused", "split", "recurrent") and chunk_size=."""
    options, _ = fla_keywords("chunk_gla", kwargs, takes_extra=False)
    check_varlen("chunk_gla", q, initial_state, cu_seqlens)
    check_log_gate("chunk_gla", "g", g)
    return _run("gla", q, dict(q=q, k=k, v=v, g=g), initial_state, output_final_state, cu_seqlens, scale, options,
                state_v_first)


def fused_recurrent_gla(q, k, v, gk=None, gv=None, scale=None, initial_state=None, output_final_state=False,
                        reverse=False, state_v_first=False, cu_seqlens=None, **kwargs):
    """fla's fused_recurrent_gla: gk decays the rows (key side), gv the columns (value side); either
    may be absent. reverse=True runs each sequence from its last token to its first."""
    _, transposed = fla_keywords("fused_recurrent_gla", kwargs, takes_extra=True)
    state_v_first = state_v_first_of("fused_recurrent_gla", state_v_first, transposed)
    check_varlen("fused_recurrent_gla", q, initial_state, cu_seqlens)
    check_log_gate("fused_recurrent_gla", "gk", gk)
    check_log_gate("fused_recurrent_gla", "gv", gv)
    if gv is None and gk is not None:
        return _run("gla", q, dict(q=q, k=k, v=v, g=gk), initial_state, output_final_state, cu_seqlens, scale,
                    _RECURRENT, state_v_first, reverse)
    gk = q.new_zeros(q.shape) if gk is None else gk  # no key-side decay: log gate 0
    gv = v.new_zeros(v.shape) if gv is None else gv
    return _run("gla_gk_gv", q, dict(q=q, k=k, v=v, gk=gk, gv=gv), initial_state, output_final_state, cu_seqlens,
                scale, _RECURRENT, state_v_first, reverse)


def fused_chunk_gla(**kwargs):
    """Removed from fla 0.6.0 (its GLA layer's 'fused_chunk' mode fails the same way)."""
    raise NotImplementedError("`fused_chunk_gla` is deprecated. Please use `chunk_gla` instead.")


# --- simple GLA and retention ----------------------------------------------------------------------

def _simple_gla_gate(op_name, q, g, g_gamma):
    """fla's simple GLA gate: g [B, T, H] and/or a constant per-head log decay g_gamma [H]
    (both given: both decays apply, consistently in forward and backward); neither: no decay."""
    check_log_gate(op_name, "g", g)
    check_log_gate(op_name, "g_gamma", g_gamma)
    if g is None and g_gamma is None:
        return q.new_zeros(q.shape[:3])
    if g_gamma is None:
        return g
    decay = g_gamma.to(q.dtype if g is None else g.dtype).reshape(1, 1, -1).expand(q.shape[0], q.shape[1], -1)
    return decay if g is None else g + decay


def chunk_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None, output_final_state=False,
                     state_v_first=False, cu_seqlens=None, cu_seqlens_cpu=None, **kwargs):
    """o, final_state = chunk_simple_gla(q, k, v, g) with a scalar log decay per head and step:
    g [B, T, H], and/or a constant g_gamma [H]."""
    options, _ = fla_keywords("chunk_simple_gla", kwargs, takes_extra=True)
    check_varlen("chunk_simple_gla", q, initial_state, cu_seqlens)
    g = _simple_gla_gate("chunk_simple_gla", q, g, g_gamma)
    return _run("simple_gla", q, dict(q=q, k=k, v=v, g=g), initial_state, output_final_state, cu_seqlens, scale,
                options, state_v_first)


def fused_chunk_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None, output_final_state=False,
                           cu_seqlens=None):
    check_varlen("fused_chunk_simple_gla", q, initial_state, cu_seqlens)
    g = _simple_gla_gate("fused_chunk_simple_gla", q, g, g_gamma)
    return _run("simple_gla", q, dict(q=q, k=k, v=v, g=g), initial_state, output_final_state, cu_seqlens, scale,
                dict(strategy="auto", chunk=0))


def fused_recurrent_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None,
                               output_final_state=False, reverse=False, state_v_first=False, cu_seqlens=None,
                               **kwargs):
    _, transposed = fla_keywords("fused_recurrent_simple_gla", kwargs, takes_extra=True)
    state_v_first = state_v_first_of("fused_recurrent_simple_gla", state_v_first, transposed)
    check_varlen("fused_recurrent_simple_gla", q, initial_state, cu_seqlens)
    g = _simple_gla_gate("fused_recurrent_simple_gla", q, g, g_gamma)
    return _run("simple_gla", q, dict(q=q, k=k, v=v, g=g), initial_state, output_final_state, cu_seqlens, scale,
                _RECURRENT, state_v_first, reverse)


def parallel_simple_gla(q, k, v, g=None, scale=None, output_attentions=False, cu_seqlens=None, cu_seqlens_cpu=None):
    """o, attn = parallel_simple_gla(q, k, v, g): the same outputs as chunk_simple_gla (no state in or
    out); attn is the [B, H, T, T] score matrix when output_attentions=True, else None."""
    check_varlen("parallel_simple_gla", q, None, cu_seqlens)
    if output_attentions and cu_seqlens is not None:
        raise _lina.LinaError("parallel_simple_gla: output_attentions=True is not supported with cu_seqlens "
                              "(as in fla); run each sequence on its own")
    gate = _simple_gla_gate("parallel_simple_gla", q, g, None)
    o, _ = _run("simple_gla", q, dict(q=q, k=k, v=v, g=gate), None, False, cu_seqlens, scale,
                dict(strategy="auto", chunk=0))
    if not output_attentions:
        return o, None
    scale = k.shape[-1] ** -0.5 if scale is None else scale
    return o, causal_attention(q, k, None if g is None else g.float().cumsum(1), scale)


def _retention_gamma(q):
    """RetNet's per-head log decay, log(1 - 2^(-5 - h)), as fla computes it."""
    import torch
    return (1 - 2.0 ** (-5.0 - torch.arange(q.shape[2], dtype=torch.float, device=q.device))).log()


def chunk_retention(q, k, v, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None, **kwargs):
    """o, final_state = chunk_retention(q, k, v): decay gamma_h = 1 - 2^(-5 - h) per head."""
    options, _ = fla_keywords("chunk_retention", kwargs, takes_extra=True)
    check_varlen("chunk_retention", q, initial_state, cu_seqlens)
    return _run("retention", q, dict(q=q, k=k, v=v), initial_state, output_final_state, cu_seqlens, scale, options)


def fused_chunk_retention(q, k, v, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None):
    check_varlen("fused_chunk_retention", q, initial_state, cu_seqlens)
    return _run("retention", q, dict(q=q, k=k, v=v), initial_state, output_final_state, cu_seqlens, scale,
                dict(strategy="auto", chunk=0))


def fused_recurrent_retention(q, k, v, scale=None, initial_state=None, output_final_state=False, reverse=False,
                              state_v_first=False, cu_seqlens=None, **kwargs):
    _, transposed = fla_keywords("fused_recurrent_retention", kwargs, takes_extra=True)
    state_v_first = state_v_first_of("fused_recurrent_retention", state_v_first, transposed)
    check_varlen("fused_recurrent_retention", q, initial_state, cu_seqlens)
    return _run("retention", q, dict(q=q, k=k, v=v), initial_state, output_final_state, cu_seqlens, scale,
                _RECURRENT, state_v_first, reverse)


def parallel_retention(q, k, v, scale=None, output_attentions=False, cu_seqlens=None):
    check_varlen("parallel_retention", q, None, cu_seqlens)
    if output_attentions and cu_seqlens is not None:
        raise _lina.LinaError("parallel_retention: output_attentions=True is not supported with cu_seqlens "
                              "(as in fla); run each sequence on its own")
    o, _ = _run("retention", q, dict(q=q, k=k, v=v), None, False, cu_seqlens, scale, dict(strategy="auto", chunk=0))
    if not output_attentions:
        return o, None
    import torch
    steps = torch.arange(1, q.shape[1] + 1, dtype=torch.float, device=q.device)
    g_cumulative = steps[None, :, None] * _retention_gamma(q)[None, None, :]
    scale = k.shape[-1] ** -0.5 if scale is None else scale
    return o, causal_attention(q, k, g_cumulative.expand(q.shape[0], -1, -1), scale)


# --- GSA -------------------------------------------------------------------------------------------

def _gsa(op_name, q, k, v, s, g, scale, initial_state, output_final_state, cu_seqlens, options, reverse=False):
    """GSA as fla runs it: g=None takes the additive gate from s (vanilla ABC); q may have a multiple
    of k's heads (GQA), the key/value-side tensors and states repeated per group."""
    check_varlen(op_name, q, initial_state, cu_seqlens)
    if g is None:
        s, g = additive_gate(s, cu_seqlens)  # computed in fp32, handed on in the inputs' dtype
        s, g = s.to(k.dtype), g.to(k.dtype)
    else:
        check_log_gate(op_name, "g", g)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    groups = query_groups(op_name, q, k)
    k, v, s, g = repeat_heads(groups, k, v, s, g)
    if initial_state is not None:
        initial_state = repeat_heads(groups, *initial_state, dim=1)
    o, final = _run("gsa", q, dict(q=q, k=k, v=v, s=s, g=g), initial_state, output_final_state, cu_seqlens, scale,
                    options, reverse=reverse)
    if groups > 1 and final is not None and final[0] is not None:
        final = tuple(x[:, ::groups].contiguous() for x in final)
    return o, final


def chunk_gsa(q, k, v, s, g=None, scale=None, initial_state=None, output_final_state=False, checkpoint_level=2,
              cu_seqlens=None, cu_seqlens_cpu=None, **kwargs):
    """o, (Hk, Hv) = chunk_gsa(q, k, v, s, g): gated slot attention with M = s.shape[-1] slots.
    checkpoint_level (0, 1, 2) is fla's memory/recompute trade-off; lina's derived backward saves
    only the inputs and recomputes the chunk states, at least the saving of fla's level 2."""
    options, _ = fla_keywords("chunk_gsa", kwargs, takes_extra=True)
    if checkpoint_level not in (0, 1, 2):
        raise _lina.LinaError(f"chunk_gsa: checkpoint_level: expected 0, 1 or 2; got {checkpoint_level!r}")
    return _gsa("chunk_gsa", q, k, v, s, g, scale, initial_state, output_final_state, cu_seqlens, options)


def fused_recurrent_gsa(q, k, v, s, g=None, scale=None, initial_state=None, output_final_state=False,
                        reverse=False, cu_seqlens=None):
    return _gsa("fused_recurrent_gsa", q, k, v, s, g, scale, initial_state, output_final_state, cu_seqlens,
                _RECURRENT, reverse)


# --- RWKV6 -----------------------------------------------------------------------------------------

def chunk_rwkv6(r, k, v, w, u, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
                cu_seqlens_cpu=None, **kwargs):
    """o, final_state = chunk_rwkv6(r, k, v, w, u): o_t = scale * (r_t^T S_{t-1} + (r_t . (u * k_t)) v_t),
    S_t = diag(exp(w_t)) S_{t-1} + k_t v_t^T; w [B, T, H, K] log decays, u [H, K] the bonus;
    scale defaults to K^-0.5 as in fla (RWKV6's layer passes 1)."""
    options, _ = fla_keywords("chunk_rwkv6", kwargs, takes_extra=True)
    check_varlen("chunk_rwkv6", r, initial_state, cu_seqlens)
    check_log_gate("chunk_rwkv6", "w", w)
    scale = r.shape[-1] ** -0.5 if scale is None else scale
    return _run("rwkv6", r, dict(r=r, k=k, v=v, w=w), initial_state, output_final_state, cu_seqlens, scale, options,
                vector_params={"u": u})


def fused_recurrent_rwkv6(r, k, v, w, u, scale=None, initial_state=None, output_final_state=False, reverse=False,
                          cu_seqlens=None):
    check_varlen("fused_recurrent_rwkv6", r, initial_state, cu_seqlens)
    check_log_gate("fused_recurrent_rwkv6", "w", w)
    scale = r.shape[-1] ** -0.5 if scale is None else scale
    return _run("rwkv6", r, dict(r=r, k=k, v=v, w=w), initial_state, output_final_state, cu_seqlens, scale,
                _RECURRENT, reverse=reverse, vector_params={"u": u})


# fla.ops' families and their public ops, as fla 0.6.0 exports them (patch_fla and the parity test use this).
FLA_FAMILIES = {
    "gla": ["chunk_gla", "fused_chunk_gla", "fused_recurrent_gla"],
    "simple_gla": ["chunk_simple_gla", "fused_chunk_simple_gla", "fused_recurrent_simple_gla", "parallel_simple_gla"],
    "retention": ["chunk_retention", "fused_chunk_retention", "fused_recurrent_retention", "parallel_retention"],
    "gsa": ["chunk_gsa", "fused_recurrent_gsa"],
    "rwkv6": ["chunk_rwkv6", "fused_recurrent_rwkv6"],
}

__all__ = [name for names in FLA_FAMILIES.values() for name in names] + ["check_gates"]
