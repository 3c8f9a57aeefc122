"""fla's RWKV6 block (fla/layers/rwkv6.py, fla/models/rwkv6/modeling_rwkv6.py, research/fla-spec.md
§5.7) with fla's parameter names: data-dependent token-shift mixes, the decay LoRA, the bonus u,
the per-head GroupNorm, and the squared-ReLU channel mix; the recurrence through lina.ops.chunk_rwkv6."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops
from ..fla_args import trusted_gates
from .layers import _f32, GroupNorm, LayerNorm, token_shift


class LoRA(nn.Module):
    def __init__(self, input_dim, output_dim, low_rank_dim, bias=True):
        super().__init__()
        self.lora = nn.Sequential(nn.Linear(input_dim, low_rank_dim, bias=False), nn.Tanh(),
                                  nn.Linear(low_rank_dim, output_dim, bias=bias))

    def forward(self, x):
        return self.lora(x)


class LerpLinear(nn.Module):
    """linear(x + delta * mu), mu a learned mix per channel."""

    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim, bias=False)
        self.mu = nn.Parameter(torch.zeros(input_dim))

    def forward(self, x, delta):
        return self.linear(x + delta * self.mu)


class DDLerpLinear(nn.Module):
    """linear(x + delta * mu) with a data-dependent mix mu."""

    def __init__(self, input_dim, output_dim, low_rank_dim=None):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim, bias=False) if low_rank_dim is None else \
            LoRA(input_dim, output_dim, low_rank_dim)

    def forward(self, x, mu, delta):
        return self.linear(x + delta * mu)


class RWKV6Attention(nn.Module):
    def __init__(self, c, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        D, kd, vd = c.hidden_size, c.key_dim, c.value_dim
        self.head_k, self.head_v, self.rank = c.head_k, c.head_v, c.proj_low_rank_dim
        self.x_proj = nn.Sequential(LerpLinear(D, self.rank * 5), nn.Tanh(), nn.Linear(self.rank * 5, D, bias=False))
        self.x_bias = nn.Parameter(torch.zeros(5, D))
        self.r_proj = DDLerpLinear(D, kd)
        self.w_proj = DDLerpLinear(D, kd, low_rank_dim=c.gate_low_rank_dim)
        self.k_proj = DDLerpLinear(D, kd)
        self.v_proj = DDLerpLinear(D, vd)
        self.g_proj = DDLerpLinear(D, vd)
        self.bonus = nn.Parameter(torch.zeros(c.num_heads, self.head_k))
        self.g_norm = GroupNorm(c.num_heads, vd, c.norm_eps, c.elementwise_affine)
        self.o_proj = nn.Linear(vd, D, bias=False)

    def forward(self, x, cu_seqlens=None, state=None, use_cache=False):
        state = state or {}
        B, T, D = x.shape
        delta = token_shift(x, cu_seqlens, state.get("conv_state"))
        mixed = torch.tanh(self.x_proj[0](x, delta)).view(B, T, 5, self.rank)
        mixed = torch.einsum("btnr,hnr->btnh", mixed, self.x_proj[2].weight.view(D, 5, self.rank)) + self.x_bias
        r, w, k, v, g = mixed.unbind(-2)
        r = self.r_proj(x, r, delta).unflatten(-1, (-1, self.head_k))
        w = -torch.exp(self.w_proj(x, w, delta)).unflatten(-1, (-1, self.head_k))
        k = self.k_proj(x, k, delta).unflatten(-1, (-1, self.head_k))
        v = self.v_proj(x, v, delta).unflatten(-1, (-1, self.head_v))
        g = self.g_proj(x, g, delta)
        with trusted_gates():  # gates <= 0 by construction: no sign check, no sync
            o, final = ops.chunk_rwkv6(r, k, v, w, self.bonus, scale=1.0, initial_state=state.get("recurrent_state"),
                                       output_final_state=use_cache, cu_seqlens=cu_seqlens)
        o = self.o_proj(self.g_norm(o.flatten(-2)) * F.silu(g))
        new_state = None
        if use_cache:
            new_state = {"recurrent_state": final, "conv_state": _last_tokens(x, cu_seqlens, state.get("conv_state"))}
        return o, new_state


def _last_tokens(x, cu_seqlens, previous):
    """Each sequence's last input row (the token shift's cache); a sequence with no tokens in this
    call keeps its previous one."""
    if cu_seqlens is None:
        return x[:, -1]
    cu = cu_seqlens.to(x.device).long()
    last = x[0, (cu[1:] - 1).clamp(min=0)]
    empty = (cu[1:] == cu[:-1]).unsqueeze(-1)
    return torch.where(empty, previous if previous is not None else torch.zeros_like(last), last)


class RWKV6FeedForward(nn.Module):
    def __init__(self, c, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.key = LerpLinear(c.hidden_size, c.mlp_size)
        self.value = nn.Linear(c.mlp_size, c.hidden_size, bias=False)
        self.receptance = LerpLinear(c.hidden_size, c.hidden_size)

    def forward(self, x, cu_seqlens=None, state=None, use_cache=False):
        state = state or {}
        delta = token_shift(x, cu_seqlens, state.get("ffn_state"))
        key = F.relu(self.key(x, delta)).pow(2)
        out = torch.sigmoid(self.receptance(x, delta)) * self.value(key)
        return out, ({"ffn_state": _last_tokens(x, cu_seqlens, state.get("ffn_state"))} if use_cache else None)


class RWKV6Block(nn.Module):
    def __init__(self, c, layer_idx):
        super().__init__()
        if c.norm_first and layer_idx == 0:
            self.pre_norm = LayerNorm(c.hidden_size, c.norm_eps, c.norm_bias)
        self.attn_norm = LayerNorm(c.hidden_size, c.norm_eps, c.norm_bias)
        self.attn = RWKV6Attention(c, layer_idx)
        self.ffn_norm = LayerNorm(c.hidden_size, c.norm_eps, c.norm_bias)
        self.ffn = RWKV6FeedForward(c, layer_idx)

    def forward(self, h, cu_seqlens=None, state=None, use_cache=False):
        state = state or {}
        residual = self.pre_norm(h) if hasattr(self, "pre_norm") else h
        a, attn_state = self.attn(self.attn_norm(residual), cu_seqlens, state.get("attn"), use_cache)
        # fla's fused add + norm: the sum in fp32, stored in the residual's dtype, the norm of the fp32 sum.
        total = _f32(a) + _f32(residual)
        residual = total.to(residual.dtype)
        f, ffn_state = self.ffn(self.ffn_norm(total).to(h.dtype), cu_seqlens, state.get("ffn"), use_cache)
        return residual + f, ({"attn": attn_state, "ffn": ffn_state} if use_cache else None)


def init_rwkv6_(module, config):
    """The inits fla's RWKV6 modules give themselves on construction (before _init_weights): the
    low-rank decay's first matrix zero and its second orthogonal with gain 0.1."""
    for m in module.modules():
        if isinstance(m, LoRA):
            nn.init.zeros_(m.lora[0].weight)
            shape = m.lora[2].weight.shape
            gain = math.sqrt(shape[1] / shape[0]) if shape[1] > shape[0] else 1
            nn.init.orthogonal_(m.lora[2].weight, gain=gain * 0.1)
            if m.lora[2].bias is not None:
                nn.init.zeros_(m.lora[2].bias)
