"""lina.convert: a Llama or Mistral checkpoint (Hugging Face layout) into an fla GLA or GSA one,
as `lina-convert llama-to-gla|gsa` does (library/convert/): copied tensors byte for byte, the new
parameters initialised as fla initialises them, the config derived from the source's."""
from . import _lina


def _convert(source, destination, target, config, max_shard_bytes, seed):
    if not hasattr(_lina, "convert_llama"):
        raise _lina.LinaError("lina.convert: this build has no model library (nlohmann-json was missing when it was configured)")
    overrides = {}
    for key, value in (config or {}).items():
        if isinstance(value, bool):
            overrides[key] = "true" if value else "false"
        elif isinstance(value, (int, float)):
            overrides[key] = repr(value)
        elif value is None:
            overrides[key] = "null"
        elif isinstance(value, str):
            overrides[key] = '"' + value.replace('"', '\\"') + '"'
        else:
            raise _lina.LinaError(f"config['{key}']: expected a bool, number, string or None; got {type(value).__name__}")
    return _lina.convert_llama(str(source), str(destination), target, overrides, int(max_shard_bytes), int(seed))


def llama_to_gla(source, destination, config=None, max_shard_bytes=5 << 30, seed=0):
    """Returns a dict: tensors (name, source, shape, kind), files, copied, initialised, dropped, report."""
    return _convert(source, destination, "gla", config, max_shard_bytes, seed)


def llama_to_gsa(source, destination, config=None, max_shard_bytes=5 << 30, seed=0):
    """As llama_to_gla, into GSA (config e.g. {"num_slots": 64})."""
    return _convert(source, destination, "gsa", config, max_shard_bytes, seed)


def rwkv6_to_fla(source, destination, config=None, max_shard_bytes=5 << 30):
    """An RWKV6 checkpoint (HF remote-code or BlinkDL layout: a folder of safetensors, or a .pth)
    into fla's RWKV6 layout (needs torch and safetensors); returns the coverage as llama_to_gla."""
    from .convert_rwkv6 import rwkv6_to_fla as convert
    return convert(source, destination, config, max_shard_bytes)
