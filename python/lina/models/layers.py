"""The pieces fla's models share, with fla's parameter names and its precision rules (fp32 math
inside every norm, results in the input's dtype; research/fla-spec.md §5.1-5.2): RMSNorm, the
gated RMSNorm of the GLA/RetNet output, LayerNorm and GroupNorm for RWKV6, the SwiGLU MLP, the
short causal convolution, the rotary embedding, and the unpadding that turns a padded batch into
packed sequences (cu_seqlens), which every attention layer here runs on."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _f32(x):
    """At least fp32 (bf16/fp16 are computed in fp32, float64 stays float64 for gradchecks)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def rms_norm(x, weight, eps):
    y = _f32(x)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * _f32(weight)
    return y.to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, size, eps, elementwise_affine=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size)) if elementwise_affine else None

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)

    def reset_parameters(self):
        if self.weight is not None:
            nn.init.ones_(self.weight)


class FusedRMSNormGated(RMSNorm):
    """fla's g_norm_swish_gate: RMSNorm(o) * w * swish(g), in fp32."""

    def forward(self, x, g):
        y = _f32(x)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight is not None:
            y = y * _f32(self.weight)
        gf = _f32(g)
        return (y * gf * torch.sigmoid(gf)).to(x.dtype)


class LayerNorm(nn.Module):
    """fla's LayerNorm (RWKV6): weight and bias, fp32 math."""

    def __init__(self, size, eps, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size)) if bias else None

    def forward(self, x):
        b = None if self.bias is None else _f32(self.bias)
        return F.layer_norm(_f32(x), x.shape[-1:], _f32(self.weight), b, self.eps).to(x.dtype)

    def reset_parameters(self):
        nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class GroupNorm(nn.Module):
    """fla's GroupNorm over the heads of RWKV6's output (each head normalised on its own)."""

    def __init__(self, groups, size, eps, elementwise_affine=True):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(size)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(size)) if elementwise_affine else None

    def forward(self, x):
        shape = x.shape
        y = _f32(x).reshape(*shape[:-1], self.groups, -1)
        y = (y - y.mean(-1, keepdim=True)) * torch.rsqrt(y.var(-1, unbiased=False, keepdim=True) + self.eps)
        y = y.reshape(shape)
        if self.weight is not None:
            y = y * _f32(self.weight) + _f32(self.bias)
        return y.to(x.dtype)

    def reset_parameters(self):
        if self.weight is not None:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)


class GatedMLP(nn.Module):
    """SwiGLU: down(silu(gate x) * up x), the product in fp32 (fla's fuse_swiglu)."""

    def __init__(self, hidden, intermediate):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x):
        gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj((F.silu(_f32(gate)) * _f32(up)).to(x.dtype))


def positions(batch, time, cu_seqlens, device):
    """Each token's position inside its own sequence: [B, T] (fixed length) or [1, T] (packed)."""
    t = torch.arange(time, device=device)
    if cu_seqlens is None:
        return t.expand(batch, time)
    cu = cu_seqlens.to(device).long()
    seq = torch.searchsorted(cu[1:], t, right=True)
    return (t - cu[seq]).unsqueeze(0)


class ShortConvolution(nn.Module):
    """fla's ShortConvolution: a causal depthwise conv (weight [C, 1, W]) and SiLU, that never reads
    across a sequence boundary of cu_seqlens. The cache [N, C, W] holds each sequence's last W
    inputs (zeros before its start), as fla's decode cache does."""

    def __init__(self, channels, kernel_size, bias=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x, cu_seqlens=None, cache=None, output_final_state=False):
        B, T, C = x.shape
        W = self.kernel_size
        w = self.weight[:, 0, :]  # [C, W]; tap W-1 reads the current token, tap W-1-s the one s back
        pos = positions(B, T, cu_seqlens, x.device)  # [B or 1, T]
        if cu_seqlens is None:
            N, starts, ends = B, None, None
        else:
            cu = cu_seqlens.to(x.device).long()
            N, starts, ends = cu.numel() - 1, cu[:-1], cu[1:]
        old = cache if cache is not None else x.new_zeros(N, C, W)
        y = x * w[:, W - 1]
        for s in range(1, W):
            shifted = F.pad(x, (0, 0, s, 0))[:, :T]
            # A tap before the sequence's first token reads the cache: (s - p) tokens back is slot W - (s - p).
            slot = (W - s + pos).clamp(max=W - 1)
            if cu_seqlens is None:
                past = old.gather(2, slot.unsqueeze(1).expand(B, C, T)).transpose(1, 2)
            else:
                seq = torch.searchsorted(ends, torch.arange(T, device=x.device), right=True)
                past = old[seq].gather(2, slot[0].view(T, 1, 1).expand(T, C, 1)).squeeze(-1).unsqueeze(0)
            y = y + torch.where((pos >= s).unsqueeze(-1), shifted, past) * w[:, W - 1 - s]
        if self.bias is not None:
            y = y + self.bias
        y = F.silu(y)
        if not output_final_state:
            return y, None
        if cu_seqlens is None:
            return y, torch.cat([old, x.transpose(1, 2)], -1)[:, :, -W:]
        tok = ends.unsqueeze(1) - W + torch.arange(W, device=x.device)  # [N, W]: the last W tokens of each
        p = tok - starts.unsqueeze(1)
        from_x = x[0, tok.clamp(min=0)].transpose(1, 2)  # [N, C, W]
        from_old = old.gather(2, (W + p).clamp(0, W - 1).unsqueeze(1).expand(N, C, W))
        return y, torch.where((p >= 0).unsqueeze(1), from_x, from_old)


def rotate_half_rope(x, pos, base=10000.0):
    """NeoX (non-interleaved) rotary embedding of x [B, T, H, D] at positions pos [B or 1, T]:
    cos/sin tables in x's dtype, the rotation in fp32 (fla's RotaryEmbedding)."""
    D = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, device=x.device, dtype=torch.float32) / D))
    angles = pos.float().unsqueeze(-1) * inv_freq  # [B, T, D/2]
    cos = _f32(angles.cos().to(x.dtype)).unsqueeze(2)
    sin = _f32(angles.sin().to(x.dtype)).unsqueeze(2)
    x1, x2 = _f32(x).chunk(2, -1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).to(x.dtype)


def token_shift(x, cu_seqlens=None, last=None):
    """RWKV's delta_t = x_{t-1} - x_t, with x_{-1} = 0 at each sequence start (or the cached last
    token `last` [B, C] for a sequence that continues)."""
    B, T, C = x.shape
    shifted = F.pad(x, (0, 0, 1, 0))[:, :T]
    if cu_seqlens is not None:
        start = positions(B, T, cu_seqlens, x.device) == 0
        shifted = torch.where(start.unsqueeze(-1), torch.zeros_like(shifted), shifted)
    if last is not None:
        shifted = shifted.clone()
        shifted[:, 0] = last
    return shifted - x


class Unpadded:
    """A padded batch [B, T, ...] with a 0/1 attention_mask [B, T] as packed sequences [1, N, ...]
    with cu_seqlens, and back (fla's unpad_hidden_states / repad). Left and right padding both
    work: a sequence is its tokens with mask 1, in order."""

    def __init__(self, attention_mask):
        mask = attention_mask.bool()
        self.batch, self.time = mask.shape
        self.indices = mask.reshape(-1).nonzero().squeeze(-1)
        lengths = mask.sum(-1)
        self.cu_seqlens = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)

    def pack(self, x):
        return x.reshape(self.batch * self.time, *x.shape[2:]).index_select(0, self.indices).unsqueeze(0)

    def unpack(self, y):
        out = y.new_zeros(self.batch * self.time, *y.shape[2:])
        out = out.index_copy(0, self.indices, y[0])
        return out.reshape(self.batch, self.time, *y.shape[2:])
