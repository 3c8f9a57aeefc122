"""lina.patch_fla(): route an installed fla's op calls to lina.ops, so fla's layers and models
(fla.layers.GatedLinearAttention, fla.models.GLAForCausalLM, ...) run on lina's kernels unchanged.

fla's layers import their ops by name (`from fla.ops.gla import chunk_gla`), so replacing the
attribute of fla.ops.gla alone would not reach them. The patch imports fla's op, layer and model
modules and replaces, in every loaded fla module, each attribute that *is* one of fla's op functions
by lina's op of the same name. It is undone by the returned handle (also a context manager)."""
import importlib
import sys

from . import ops as _ops

# The fla modules whose import brings in every user of the patched ops.
_FLA_MODULES = ["fla.ops", "fla.layers", "fla.models"]


class FlaPatch:
    """What patch_fla replaced: (module, attribute, fla's function) triples. Undo with .undo(), or
    use the patch as a context manager."""

    def __init__(self, replaced):
        self.replaced = replaced

    @property
    def ops(self):
        """The names of the fla ops that now run on lina."""
        return sorted({name for _, name, _ in self.replaced})

    def undo(self):
        for module, name, original in reversed(self.replaced):
            setattr(module, name, original)
        self.replaced = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.undo()
        return False


def _fla_originals():
    """fla's own op functions, {function: lina's replacement}, from fla.ops.<family>."""
    originals = {}
    for family, names in _ops.FLA_FAMILIES.items():
        module = importlib.import_module(f"fla.ops.{family}")
        for name in names:
            fla_op = getattr(module, name, None)
            if fla_op is None:
                raise ImportError(f"patch_fla: fla.ops.{family} has no {name}; lina mirrors fla 0.6.0's ops "
                                  f"(installed: fla {_fla_version()})")
            originals[fla_op] = getattr(_ops, name)
    return originals


def _fla_version():
    try:
        from importlib.metadata import version
        return version("flash-linear-attention")
    except Exception:
        return "unknown"


def patch_fla(modules=None):
    """Replace fla's GLA, simple GLA, retention, GSA and RWKV6 ops by lina's in every loaded fla
    module (after importing fla.ops, fla.layers and fla.models, or `modules` if given). Returns a
    FlaPatch; fla's functions come back with .undo() or at the end of a `with` block."""
    try:
        for name in modules or _FLA_MODULES:
            importlib.import_module(name)
    except ImportError as e:
        raise ImportError(f"patch_fla: cannot import fla ({e}); install flash-linear-attention==0.6.0 "
                          "(pip install flash-linear-attention) or drop the patch") from e
    originals = _fla_originals()
    replaced = []
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "fla" or module_name.startswith("fla.")):
            continue
        for attribute, value in list(vars(module).items()):
            try:
                lina_op = originals.get(value)
            except TypeError:  # an unhashable module attribute cannot be one of the ops
                continue
            if lina_op is not None:
                setattr(module, attribute, lina_op)
                replaced.append((module, attribute, value))
    return FlaPatch(replaced)
