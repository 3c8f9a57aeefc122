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


def _size(text):
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale != 1 else text
    if not digits.isdigit() or int(digits) < 1:
        raise _lina.LinaError(f"--max-shard-size: expected a positive size in bytes (suffix K, M or G); got '{text}'")
    return int(digits) * scale


def main(argv=None):
    """python -m lina.convert llama-to-gla|llama-to-gsa|rwkv6 SRC DST [--config K=V ...] [--max-shard-size N[K|M|G]]"""
    import argparse
    import json
    import sys
    p = argparse.ArgumentParser(prog="python -m lina.convert", description="weights into fla's layout")
    p.add_argument("command", choices=("llama-to-gla", "llama-to-gsa", "rwkv6"))
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the derived config.json (VALUE as JSON; a bare word is a string)")
    p.add_argument("--max-shard-size", default="5G")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        overrides = {}
        for kv in args.config:
            key, eq, value = kv.partition("=")
            if not eq or not key:
                raise _lina.LinaError(f"--config: expected KEY=VALUE; got '{kv}'")
            try:
                overrides[key] = json.loads(value)
            except json.JSONDecodeError:
                overrides[key] = value
        shard = _size(args.max_shard_size)
        if args.command == "rwkv6":
            report = rwkv6_to_fla(args.source, args.destination, overrides, shard)
        else:
            convert = llama_to_gla if args.command == "llama-to-gla" else llama_to_gsa
            report = convert(args.source, args.destination, overrides, shard, args.seed)
    except _lina.LinaError as e:
        sys.stderr.write(f"lina.convert: error: {e}\n")
        return 2
    sys.stdout.write(report["report"])
    return 0


if __name__ == "__main__":
    import sys as _sys
    _sys.exit(main())
