"""lina: a JIT compiler for linear-attention recurrences.

    import lina
    op = lina.compile("my_variant.lina")        # or the DSL text itself
    print(op.ir); print(op.cuda_source(dims={"K": 128, "V": 128}))
    o, state = op(q=q, k=k, v=v, g=g)            # torch tensors on a GPU, with autograd
    from lina.ops import chunk_gla               # fla's ops, same signatures
    lina.patch_fla()                             # fla's own layers and models on lina's kernels
    outs, finals = op.forward_dlpack({"q": q, ...})   # any DLPack arrays (CuPy, JAX, torch)

Importable without a GPU and without torch: the compiler, the IR/CUDA views and the CPU
reference (`op.reference(...)`) need neither.
"""
import importlib.util as _util
import os as _os


def _nvrtc_search_path():
    """Folders of the NVRTC that installed wheels ship (nvidia-cuda-nvrtc, torch's bundled one),
    found without importing them; lina's runtime loads libnvrtc from there on first compile."""
    dirs = []
    for name in ("nvidia.cuda_nvrtc", "nvidia.cu13", "nvidia.cu12", "torch"):
        try:
            spec = _util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for root in (spec.submodule_search_locations or []) if spec else []:
            dirs += [_os.path.join(root, "lib"), _os.path.join(root, "lib64")]
    return [d for d in dirs if _os.path.isdir(d)]


_os.environ["LINA_NVRTC_SEARCH_PATH"] = ":".join(
    [p for p in _os.environ.get("LINA_NVRTC_SEARCH_PATH", "").split(":") if p] + _nvrtc_search_path())

from ._lina import DeviceArray, LinaError, Program, __version__, library_programs, versions
from ._lina import cuda_available as _cuda_available


class CudaAvailability(tuple):
    """(ok, why): unpacks as a pair, and is true only when a CUDA device is usable."""

    def __bool__(self):
        return bool(self[0])


def cuda_available():
    """Whether lina can launch kernels here: a CudaAvailability (ok, why), true only when ok."""
    return CudaAvailability(_cuda_available())


from .program import Op, compile, library, tune
from .runner import Runner, init_checkpoint
from . import convert
from .fla_patch import patch_fla

__all__ = ["__version__", "versions", "patch_fla", "DeviceArray", "LinaError", "Op", "Program", "Runner", "compile", "convert", "init_checkpoint", "cuda_available", "library", "library_programs", "tune"]
