"""lina: a JIT compiler for linear-attention recurrences.

    import lina
    op = lina.compile("my_variant.lina")        # or the DSL text itself
    print(op.ir); print(op.cuda_source(dims={"K": 128, "V": 128}))
    o, state = op(q=q, k=k, v=v, g=g)            # torch tensors on a GPU, with autograd
    from lina.ops import chunk_gla               # fla's ops, same signatures
    outs, finals = op.forward_dlpack({"q": q, ...})   # any DLPack arrays (CuPy, JAX, torch)

Importable without a GPU and without torch: the compiler, the IR/CUDA views and the CPU
reference (`op.reference(...)`) need neither.
"""
from ._lina import DeviceArray, LinaError, Program, cuda_available, library_programs
from .program import Op, compile, library
from .runner import Runner, init_checkpoint

__all__ = ["DeviceArray", "LinaError", "Op", "Program", "Runner", "compile", "init_checkpoint", "cuda_available", "library", "library_programs"]
