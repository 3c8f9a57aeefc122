"""fla's own GatedLinearAttention layer (fla 0.6.0) run on lina's kernels through lina.patch_fla():
on a GPU fla's layer runs unchanged; on this CPU machine fla's Triton-only pieces (its RMSNorm
and swish) are swapped for torch, and lina's ops run on the LLVM CPU backend. Prints the layer's
output norm with lina, and with fla's own naive recurrence for comparison."""
import warnings

import torch

warnings.filterwarnings("ignore")
import fla.layers  # noqa: E402
import fla.modules  # noqa: E402
from fla.ops.gla.naive import naive_recurrent_gla  # noqa: E402

import lina  # noqa: E402

cpu = not torch.cuda.is_available()
if cpu:  # fla's fused norm and swish are Triton kernels: the same math in torch
    fla.modules.RMSNorm.forward = lambda self, x, residual=None, prenorm=False, residual_in_fp32=False: (
        x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps) * self.weight)
torch.manual_seed(0)
layer = fla.layers.GatedLinearAttention(hidden_size=256, num_heads=4, use_short_conv=False, fuse_norm=False)
if cpu:
    layer.gate_fn = torch.nn.functional.silu
x = torch.randn(2, 128, 256)
with lina.patch_fla() as patch:
    routed = len(patch.replaced)
    y = layer(x)[0]
print(f"lina.patch_fla(): {routed} fla op references routed to lina; output {tuple(y.shape)}, "
      f"norm {y.norm():.6f}")
import fla.layers.gla as gla_module  # noqa: E402

saved = gla_module.chunk_gla
gla_module.chunk_gla = lambda q, k, v, g, **kw: (naive_recurrent_gla(q, k, v, g)[0], None)
try:
    ref = layer(x)[0]
finally:
    gla_module.chunk_gla = saved
print(f"fla's naive recurrence: norm {ref.norm():.6f}; max |lina - naive| / max |naive| = "
      f"{(y - ref).abs().max() / ref.abs().max():.2e}")
