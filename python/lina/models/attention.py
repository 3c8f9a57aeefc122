"""The token mixers of fla's GLA, RetNet and GSA layers (fla/layers/{gla,multiscale_retention,gsa}.py)
with fla's parameter names, every recurrence through lina.ops (lina's kernels on CUDA tensors,
the reference interpreter on CPU ones, autograd through the derived backward). Each takes its
input already packed ([1, N, D] with cu_seqlens) or fixed-length ([B, T, D]), and a per-layer
state dict (None at a sequence's start), and returns (output, new state or None)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops
from ..fla_args import trusted_gates
from .layers import FusedRMSNormGated, RMSNorm, ShortConvolution, positions, rotate_half_rope

_ACTIVATIONS = {
    "relu": F.relu, "sigmoid": torch.sigmoid, "logsigmoid": F.logsigmoid, "swish": F.silu, "silu": F.silu,
    "sqrelu": lambda x: F.relu(x).pow(2), "gelu": F.gelu,
}


def _heads(x, d):
    return x.reshape(*x.shape[:-1], -1, d)


def _repeat_groups(x, groups):
    """[.., H_kv, d] -> [.., H_kv * groups, d] in fla's '(h g)' order."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=-2)


def _build_qkv(m, c, layer_idx, short_conv):
    """The q/k/v projections every fla mixer here has (k and v with their GQA groups), and the
    optional short convolutions after them."""
    m.layer_idx = layer_idx
    m.head_k, m.head_v, m.groups = c.head_k, c.head_v, c.kv_groups
    kd, vd = c.key_dim, c.value_dim
    m.q_proj = nn.Linear(c.hidden_size, kd, bias=False)
    m.k_proj = nn.Linear(c.hidden_size, kd // m.groups, bias=False)
    m.v_proj = nn.Linear(c.hidden_size, vd // m.groups, bias=False)
    m.use_short_conv = short_conv
    if short_conv:
        m.q_conv1d = ShortConvolution(kd, c.conv_size)
        m.k_conv1d = ShortConvolution(kd // m.groups, c.conv_size)
        m.v_conv1d = ShortConvolution(vd // m.groups, c.conv_size)


def _qkv(m, x, cu_seqlens, state, use_cache):
    """q, k, v (flat, before the head split) and the new conv cache (None without short convs)."""
    q, k, v = m.q_proj(x), m.k_proj(x), m.v_proj(x)
    if not m.use_short_conv:
        return q, k, v, None
    conv = state.get("conv_state") or (None, None, None)
    q, cq = m.q_conv1d(q, cu_seqlens, conv[0], use_cache)
    k, ck = m.k_conv1d(k, cu_seqlens, conv[1], use_cache)
    v, cv = m.v_conv1d(v, cu_seqlens, conv[2], use_cache)
    return q, k, v, (cq, ck, cv)


class _OutputGate(nn.Module):
    """GLA/RetNet's output: g_norm_swish_gate(o, g) (fused names) or g_norm(o) * swish(g)."""

    def _build_output(self, c):
        self.use_output_gate = c.use_output_gate
        if c.use_output_gate:
            self.g_proj = nn.Linear(c.hidden_size, c.value_dim, bias=False)
        self.fused_gate = c.use_output_gate and c.fuse_norm
        if self.fused_gate:
            self.g_norm_swish_gate = FusedRMSNormGated(c.head_v, c.norm_eps, c.elementwise_affine)
        else:
            self.g_norm = RMSNorm(c.head_v, c.norm_eps, c.elementwise_affine)
        self.o_proj = nn.Linear(c.value_dim, c.hidden_size, bias=False)

    def _output(self, o, x):
        if self.use_output_gate:
            g = self.g_proj(x)
            if self.fused_gate:
                o = self.g_norm_swish_gate(o, _heads(g, self.head_v)).flatten(-2)
            else:
                o = self.g_norm(o).flatten(-2) * F.silu(g)
        else:
            o = self.g_norm(o).flatten(-2)
        return self.o_proj(o)


class GatedLinearAttention(_OutputGate):
    def __init__(self, c, layer_idx):
        super().__init__()
        _build_qkv(self, c, layer_idx, c.use_short_conv)
        kd = c.key_dim
        # gate_low_rank_dim 16 and gate_logit_normalizer 16 are the layer's defaults; fla's block passes neither.
        self.gk_proj = nn.Sequential(nn.Linear(c.hidden_size, 16, bias=False), nn.Linear(16, kd // self.groups, bias=True))
        self.feature_map = _ACTIVATIONS.get(c.feature_map) if c.feature_map else None
        self.clamp_min = c.clamp_min
        self._build_output(c)

    def forward(self, x, cu_seqlens=None, state=None, use_cache=False):
        state = state or {}
        q, k, v, conv = _qkv(self, x, cu_seqlens, state, use_cache)
        gk = self.gk_proj(x)
        q = _heads(q, self.head_k)
        k, gk = (_repeat_groups(_heads(t, self.head_k), self.groups) for t in (k, gk))
        v = _repeat_groups(_heads(v, self.head_v), self.groups)
        gk = F.logsigmoid(gk) / 16
        if self.clamp_min is not None:
            gk = torch.clamp_min(gk, self.clamp_min)
        if self.feature_map is not None:
            q, k = self.feature_map(q), self.feature_map(k)
        with trusted_gates():  # gates <= 0 by construction: no sign check, no sync
            o, final = ops.chunk_gla(q, k, v, gk, initial_state=state.get("recurrent_state"),
                                     output_final_state=use_cache, cu_seqlens=cu_seqlens)
        new_state = None
        if use_cache:
            new_state = {"recurrent_state": final, "conv_state": conv}
        return self._output(o, x), new_state


class MultiScaleRetention(_OutputGate):
    """RetNet: per-head decays 1 - 2^(-5-h) (inside lina's retention program), rotary q/k."""

    def __init__(self, c, layer_idx):
        super().__init__()
        _build_qkv(self, c, layer_idx, False)  # fla's RetNet block never passes use_short_conv
        self.feature_map = _ACTIVATIONS.get(c.feature_map) if c.feature_map else None
        self._build_output(c)

    def forward(self, x, cu_seqlens=None, state=None, use_cache=False):
        state = state or {}
        q, k = _heads(self.q_proj(x), self.head_k), _heads(self.k_proj(x), self.head_k)
        v = _heads(self.v_proj(x), self.head_v)
        if self.feature_map is not None:
            q, k = self.feature_map(q), self.feature_map(k)
        pos = positions(x.shape[0], x.shape[1], cu_seqlens, x.device)
        seen = state.get("seen")  # [N] tokens each sequence has already consumed
        if seen is not None:
            if cu_seqlens is None:
                pos = pos + seen.unsqueeze(1)
            else:
                seq = torch.searchsorted(cu_seqlens.to(x.device).long()[1:], torch.arange(x.shape[1], device=x.device),
                                         right=True)
                pos = pos + seen[seq].unsqueeze(0)
        q, k = rotate_half_rope(q, pos), rotate_half_rope(k, pos)
        k, v = _repeat_groups(k, self.groups), _repeat_groups(v, self.groups)
        with trusted_gates():  # gates <= 0 by construction: no sign check, no sync
            o, final = ops.chunk_retention(q, k, v, initial_state=state.get("recurrent_state"),
                                           output_final_state=use_cache, cu_seqlens=cu_seqlens)
        new_state = None
        if use_cache:
            lengths = (torch.full((x.shape[0],), x.shape[1], device=x.device) if cu_seqlens is None
                       else cu_seqlens.to(x.device).long().diff())
            new_state = {"recurrent_state": final, "seen": lengths if seen is None else seen + lengths}
        return self._output(o, x), new_state


class GatedSlotAttention(nn.Module):
    def __init__(self, c, layer_idx):
        super().__init__()
        _build_qkv(self, c, layer_idx, c.use_short_conv)
        self.slots = c.num_slots
        self.f_proj = nn.Linear(c.hidden_size, c.kv_heads * c.num_slots, bias=False)
        self.feature_map_name = c.feature_map
        if c.feature_map == "t2r":
            self.feature_map = nn.Module()
            self.feature_map.layer = nn.Linear(self.head_k, self.head_k, bias=False)
        self.normalizer = c.gate_logit_normalizer
        # fla sizes g_norm by hidden_size and calls rms_norm_linear without eps: 1e-5, not norm_eps.
        self.g_norm = RMSNorm(c.hidden_size, 1e-5, c.elementwise_affine)
        self.o_proj = nn.Linear(c.value_dim, c.hidden_size, bias=False)

    def _feature(self, x):
        if self.feature_map_name == "swish":
            return F.silu(x)
        if self.feature_map_name == "relu":
            return F.relu(x)
        return F.relu(self.feature_map.layer(x))

    def forward(self, x, cu_seqlens=None, state=None, use_cache=False):
        state = state or {}
        q, k, v, conv = _qkv(self, x, cu_seqlens, state, use_cache)
        f = _heads(self.f_proj(x), self.slots)
        q, k, v = _heads(q, self.head_k), _heads(k, self.head_k), _heads(v, self.head_v)
        q, k = self._feature(q), self._feature(k)
        v = F.silu(v)
        f = F.logsigmoid(f) / self.normalizer
        s = (1 - f.exp()).to(f.dtype)
        k, v, f, s = (_repeat_groups(t, self.groups) for t in (k, v, f, s))
        with trusted_gates():  # gates <= 0 by construction: no sign check, no sync
            o, final = ops.chunk_gsa(q, k, v, s, f, scale=1.0, initial_state=state.get("recurrent_state"),
                                     output_final_state=use_cache, cu_seqlens=cu_seqlens)
        o = self.g_norm(F.silu(o.flatten(-2)))
        new_state = None
        if use_cache:
            new_state = {"recurrent_state": final, "conv_state": conv}
        return self.o_proj(o.to(self.o_proj.weight.dtype)), new_state
