"""How lina.ops takes fla's arguments: the keywords beyond the named ones, the varlen checks, the
gate-sign policy and GSA's additive gate, each as fla 0.6.0 does it, so that code written for fla
behaves the same on lina (and fails the same way where fla fails)."""
import contextlib
import os
import threading

from . import _lina

_gate_check = os.environ.get("LINA_GATE_CHECK", "1") != "0"


def check_gates(enabled=True):
    """Turn the gate-sign check of lina.ops on (the default) or off; returns the previous setting.

    fla's ops take log-decays (g = logsigmoid(x) <= 0, so exp(g) <= 1 decays the state). A positive
    value makes the state grow as exp(sum g) and the output overflow without an error, so lina's
    fla-facing ops reject it. The check is one max-reduction and, on a GPU, one host sync per call;
    it is skipped inside torch.compile graphs and CUDA-graph capture. Turn it off for recurrences
    that mean to grow, or to save the sync (LINA_GATE_CHECK=0 does the same for the process)."""
    global _gate_check
    previous, _gate_check = _gate_check, bool(enabled)
    return previous


_trusted = threading.local()


@contextlib.contextmanager
def trusted_gates():
    """Calls inside this block skip the gate-sign check: for callers whose gates are <= 0 by
    construction (lina.models' layers take logsigmoid or -exp), so they pay no reduction or sync."""
    depth = getattr(_trusted, "depth", 0)
    _trusted.depth = depth + 1
    try:
        yield
    finally:
        _trusted.depth = depth


def check_log_gate(op_name, arg_name, x):
    """Reject a log-gate with a positive entry (NaN passes through: NaN inputs give NaN outputs)."""
    if x is None or not _gate_check or x.numel() == 0 or getattr(_trusted, "depth", 0):
        return
    import torch
    if torch.compiler.is_compiling():
        return
    if x.is_cuda and torch.cuda.is_current_stream_capturing():
        return
    largest = float(x.detach().max())
    if largest > 0:
        raise _lina.LinaError(
            f"{op_name}: {arg_name} holds log-decays and must be <= 0 (the state decays by exp({arg_name}) per step); "
            f"its largest entry is {largest:.6g}. Pass a log-gate such as F.logsigmoid(x) / normalizer, or call "
            "lina.ops.check_gates(False) (or set LINA_GATE_CHECK=0) if the recurrence is meant to grow")


def fla_keywords(op_name, kwargs, takes_extra):
    """The options of a lina.ops call from its **kwargs, as fla treats them.

    `head_first` is gone from fla and is an error in both. `transpose_state_layout` is fla's older
    name of `state_v_first` (returned as such). `chunk_size` must be a power of two. fla ignores any
    other keyword in the ops that take **kwargs (takes_extra=True), and a function without **kwargs
    raises Python's TypeError; lina does the same, besides its own `strategy`."""
    kwargs = dict(kwargs)
    if "head_first" in kwargs:
        raise _lina.LinaError(f"{op_name}: head_first: the [B, H, T, d] layout is gone from fla and not taken by "
                              "lina; pass [B, T, H, d] tensors (e.g. x.transpose(1, 2))")
    chunk = kwargs.pop("chunk_size", None)
    if chunk is not None and (int(chunk) <= 0 or int(chunk) & (int(chunk) - 1)):
        raise _lina.LinaError(f"{op_name}: chunk_size: expected a power of 2; got {chunk}")
    strategy = kwargs.pop("strategy", "auto")
    transposed = kwargs.pop("transpose_state_layout", None)
    if not takes_extra and kwargs:
        raise TypeError(f"{op_name}() got an unexpected keyword argument '{next(iter(kwargs))}'")
    return dict(strategy=strategy, chunk=int(chunk or 0)), transposed


def state_v_first_of(op_name, state_v_first, transposed):
    """fla's fused_recurrent ops: transpose_state_layout is the deprecated name of state_v_first."""
    if transposed is None:
        return state_v_first
    if state_v_first:
        raise _lina.LinaError(f"{op_name}: cannot pass both state_v_first and the deprecated transpose_state_layout")
    return bool(transposed)


def check_varlen(op_name, q, initial_state, cu_seqlens):
    """fla's checks for packed input: batch 1, and one initial state per sequence."""
    if cu_seqlens is None:
        return
    if q.shape[0] != 1:
        raise _lina.LinaError(f"{op_name}: with cu_seqlens the batch size must be 1 (all sequences packed along T); "
                              f"got {q.shape[0]}; flatten the batch first, e.g. x.reshape(1, -1, *x.shape[2:])")
    first = initial_state[0] if isinstance(initial_state, (tuple, list)) else initial_state
    if first is not None and first.shape[0] != len(cu_seqlens) - 1:
        raise _lina.LinaError(f"{op_name}: initial_state: expected one state per sequence, {len(cu_seqlens) - 1} "
                              f"(len(cu_seqlens) - 1); got {first.shape[0]}")


def additive_gate(s, cu_seqlens):
    """fla's gate for GSA without g (vanilla ABC): z_t = logcumsumexp(s)_t within each sequence,
    k_t = exp(s_t - z_t) and g_t = z_{t-1} - z_t (0 at a sequence's first token). Returns (k, g)
    in float32, differentiable."""
    import torch
    x = s.float()
    if cu_seqlens is None:
        z = torch.logcumsumexp(x, dim=1)
        previous = torch.cat([torch.full_like(z[:, :1], float("-inf")), z[:, :-1]], dim=1)
    else:
        bounds = cu_seqlens.tolist()
        zs, ps = [], []
        for begin, end in zip(bounds[:-1], bounds[1:]):
            z = torch.logcumsumexp(x[:, begin:end], dim=1)
            zs.append(z)
            ps.append(torch.cat([torch.full_like(z[:, :1], float("-inf")), z[:, :-1]], dim=1))
        z, previous = torch.cat(zs, dim=1), torch.cat(ps, dim=1)
    g = torch.where(torch.isinf(previous), torch.zeros_like(z), previous - z)
    return torch.exp(x - z), g


def repeat_heads(n_groups, *tensors, dim=2):
    """GQA: each key/value head serves n_groups query heads (fla's repeat_interleave)."""
    if n_groups == 1:
        return tensors
    return tuple(None if x is None else x.repeat_interleave(n_groups, dim=dim) for x in tensors)


def query_groups(op_name, q, k):
    """HQ // H for GQA (query heads a multiple of key heads), as fla's chunk_gsa checks it."""
    hq, h = q.shape[2], k.shape[2]
    if hq < h or hq % h:
        raise _lina.LinaError(f"{op_name}: q has {hq} heads and k {h}; the query heads must be a multiple of the key "
                              "heads (GQA)")
    return hq // h


def causal_attention(q, k, g_cumulative, scale):
    """The [B, H, T, T] attention scores fla's parallel ops return with output_attentions=True:
    A_ij = scale q_i . k_j exp(G_i - G_j) for j <= i, else 0 (G the cumulative log decay)."""
    import torch
    a = torch.einsum("bihd,bjhd->bhij", q.float() * scale, k.float())
    t = q.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    if g_cumulative is not None:
        gc = g_cumulative.float().transpose(1, 2)  # [B, H, T]
        a = a * torch.exp((gc[..., :, None] - gc[..., None, :]).masked_fill(~causal, float("-inf")))
    return a.masked_fill(~causal, 0).to(q.dtype)
