"""fla-compatible ops on lina's kernels: the same names, arguments, defaults and return values
as fla.ops for GLA, simple GLA, retention and GSA (chunked and fused-recurrent), each with
autograd through the compiler-derived backward. Tensors are [B, T, H, d] ("head-last", fla's
default); states [N, H, K, V] fp32."""
from . import _lina
from .program import library

# Built at import (milliseconds; kernels compile on first use), so a torch.compile trace of an op
# call finds them ready and never calls into the extension.
_OPS = {name: library(name) for name in ("gla", "simple_gla", "retention", "gsa")}


def _params(scale):
    return {} if scale is None else {"scale": float(scale)}


def _unsupported(what, fix):
    raise _lina.LinaError(f"{what} is not supported by lina yet; {fix}")


def chunk_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
              state_v_first=False, **kwargs):
    """o, final_state = chunk_gla(q, k, v, g): S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = S_t^T (scale q_t)."""
    if state_v_first:
        _unsupported("state_v_first=True", "pass states as [N, H, K, V]")
    return _OPS["gla"](q=q, k=k, v=v, g=g, initial_state=initial_state, output_final_state=output_final_state,
                      cu_seqlens=cu_seqlens, scalar_params=_params(scale), strategy=kwargs.get("strategy", "auto"))


def fused_recurrent_gla(q, k, v, gk=None, gv=None, scale=None, initial_state=None, output_final_state=False,
                        reverse=False, state_v_first=False, cu_seqlens=None):
    if gv is not None or gk is None:
        _unsupported("fused_recurrent_gla without gk or with gv", "pass gk only (a value-side gate is a DSL program: "
                     "tests/programs/gla_gv.lina with lina.compile)")
    if reverse:
        _unsupported("reverse=True", "flip the sequence before the call")
    return chunk_gla(q, k, v, gk, scale, initial_state, output_final_state, cu_seqlens, state_v_first,
                     strategy="recurrent")


def chunk_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None, output_final_state=False,
                     cu_seqlens=None, **kwargs):
    """o, final_state = chunk_simple_gla(q, k, v, g) with a scalar log decay g: [B, T, H] per head."""
    if g is None or g_gamma is not None:
        _unsupported("g_gamma", "pass g [B, T, H] (a constant per-head decay is chunk_retention's form)")
    return _OPS["simple_gla"](q=q, k=k, v=v, g=g, initial_state=initial_state, output_final_state=output_final_state,
                             cu_seqlens=cu_seqlens, scalar_params=_params(scale),
                             strategy=kwargs.get("strategy", "auto"))


def fused_recurrent_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None,
                               output_final_state=False, reverse=False, cu_seqlens=None):
    if reverse:
        _unsupported("reverse=True", "flip the sequence before the call")
    return chunk_simple_gla(q, k, v, g, g_gamma, scale, initial_state, output_final_state, cu_seqlens,
                            strategy="recurrent")


def chunk_retention(q, k, v, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None, **kwargs):
    """o, final_state = chunk_retention(q, k, v): decay gamma_h = 1 - 2^(-5 - h) per head."""
    return _OPS["retention"](q=q, k=k, v=v, initial_state=initial_state, output_final_state=output_final_state,
                            cu_seqlens=cu_seqlens, scalar_params=_params(scale),
                            strategy=kwargs.get("strategy", "auto"))


def fused_recurrent_retention(q, k, v, scale=None, initial_state=None, output_final_state=False, reverse=False,
                              cu_seqlens=None):
    if reverse:
        _unsupported("reverse=True", "flip the sequence before the call")
    return chunk_retention(q, k, v, scale, initial_state, output_final_state, cu_seqlens, strategy="recurrent")


def chunk_gsa(q, k, v, s, g=None, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
              **kwargs):
    """o, (Hk, Hv) = chunk_gsa(q, k, v, s, g): gated slot attention with M = s.shape[-1] slots."""
    if g is None:
        _unsupported("g=None", "pass the slot forget gate g [B, T, H, M]")
    return _OPS["gsa"](q=q, k=k, v=v, s=s, g=g, initial_state=initial_state, output_final_state=output_final_state,
                      cu_seqlens=cu_seqlens, scalar_params=_params(scale), strategy=kwargs.get("strategy", "auto"))


def fused_recurrent_gsa(q, k, v, s, g=None, scale=None, initial_state=None, output_final_state=False,
                        reverse=False, cu_seqlens=None):
    if reverse:
        _unsupported("reverse=True", "flip the sequence before the call")
    return chunk_gsa(q, k, v, s, g, scale, initial_state, output_final_state, cu_seqlens, strategy="recurrent")


__all__ = ["chunk_gla", "fused_recurrent_gla", "chunk_simple_gla", "fused_recurrent_simple_gla", "chunk_retention",
           "fused_recurrent_retention", "chunk_gsa", "fused_recurrent_gsa"]
