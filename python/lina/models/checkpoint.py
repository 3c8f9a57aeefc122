"""Checkpoint folders as fla (and lina-run) read and write them: config.json plus model.safetensors,
or shards model-0000i-of-0000n.safetensors with model.safetensors.index.json (Hugging Face's
layout). Loading is strict: a missing, unexpected or mis-shaped tensor is an error naming the
file, the key, the expected and the actual shape. Writes go to temporary names first, so an
interrupted save never leaves a half-written checkpoint under the real names."""
import json
import os

from .._lina import LinaError


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError:
        raise LinaError("lina.models: reading and writing checkpoints needs the safetensors package; "
                        "pip install safetensors") from None
    return st


def checkpoint_files(folder):
    """The safetensors files of a checkpoint folder, in order."""
    index = os.path.join(folder, "model.safetensors.index.json")
    single = os.path.join(folder, "model.safetensors")
    if os.path.exists(index):
        try:
            with open(index, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise LinaError(f"{index}: expected a JSON object with a 'weight_map'; {e}; regenerate the index") from None
        files = sorted(set(weight_map.values()))
        for name in files:
            if not os.path.exists(os.path.join(folder, name)):
                raise LinaError(f"{index}: names shard '{name}', which is not in {folder}; copy the missing shard")
        return [os.path.join(folder, name) for name in files]
    if os.path.exists(single):
        return [single]
    raise LinaError(f"{folder}: no model.safetensors or model.safetensors.index.json; "
                    "pass a checkpoint folder (lina-run --init or lina.models save_pretrained write one)")


def load_tensors(folder):
    st = _safetensors()
    tensors, origin = {}, {}
    for path in checkpoint_files(folder):
        try:
            part = st.load_file(path)
        except Exception as e:  # safetensors raises its own error types for truncated or corrupt files
            raise LinaError(f"{path}: not a readable safetensors file ({e}); re-download or re-convert it") from None
        for key, value in part.items():
            if key in tensors:
                raise LinaError(f"{path}: tensor '{key}' is also in {origin[key]}; a checkpoint holds each tensor once")
            tensors[key], origin[key] = value, path
    return tensors, origin


def load_state_dict_strict(module, tensors, origin, folder, tied):
    expected = module.state_dict()
    if tied:
        expected.pop("lm_head.weight", None)
        tensors = {k: v for k, v in tensors.items() if k != "lm_head.weight"}
    for key, value in expected.items():
        if key not in tensors:
            raise LinaError(f"{folder}: tensor '{key}' (shape {list(value.shape)}) is missing; the config says "
                            "the checkpoint has it: check config.json against the checkpoint")
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise LinaError(f"{origin[key]}: tensor '{key}': expected shape {list(value.shape)} from config.json; "
                            f"got {list(tensors[key].shape)}")
    for key in tensors:
        if key not in expected:
            raise LinaError(f"{origin[key]}: unexpected tensor '{key}' for this config; check config.json "
                            "(e.g. use_short_conv, use_output_gate, feature_map)")
    module.load_state_dict(tensors, strict=False)


def save_tensors(tensors, folder, max_shard_bytes):
    """Writes {name: tensor}; one file when it fits max_shard_bytes, else shards and an index."""
    st = _safetensors()
    os.makedirs(folder, exist_ok=True)
    shards, current, size = [], {}, 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        n = t.numel() * t.element_size()
        if current and size + n > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name], size = t, size + n
    shards.append(current)
    metadata = {"format": "pt"}
    if len(shards) == 1:
        tmp = os.path.join(folder, "model.safetensors.tmp")
        st.save_file(shards[0], tmp, metadata=metadata)
        os.replace(tmp, os.path.join(folder, "model.safetensors"))
        return ["model.safetensors"]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        tmp = os.path.join(folder, name + ".tmp")
        st.save_file(shard, tmp, metadata=metadata)
        os.replace(tmp, os.path.join(folder, name))
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
             "weight_map": {k: name for name, shard in zip(names, shards) for k in shard}}
    tmp = os.path.join(folder, "model.safetensors.index.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(folder, "model.safetensors.index.json"))
    return names
