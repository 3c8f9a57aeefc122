"""A model's config.json, as fla writes it for GLA, RetNet, GSA and RWKV6 (research/fla-spec.md
§5): the defaults of fla's config classes, the sizes its layers derive, and the checks that turn
a config lina cannot run into an error naming the file, the key, the expected and the actual
value. Keys fla itself ignores are kept (and written back), as transformers' PretrainedConfig
keeps unknown keys."""
import json
import math
import os

from .._lina import LinaError

_COMMON = dict(hidden_size=2048, num_hidden_layers=24, num_heads=4, num_kv_heads=None, hidden_ratio=4,
               intermediate_size=None, hidden_act="swish", max_position_embeddings=2048, elementwise_affine=True,
               norm_eps=1e-6, attn=None, use_cache=True, pad_token_id=None, bos_token_id=1, eos_token_id=2,
               tie_word_embeddings=False, initializer_range=0.02, fuse_norm=True, fuse_swiglu=True,
               fuse_cross_entropy=True, fuse_linear_cross_entropy=False, use_l2warp=False, vocab_size=32000,
               attnres_block_size=None)

# fla's config classes' defaults per model_type (configuration_{gla,retnet,gsa,rwkv6}.py).
DEFAULTS = {
    "gla": dict(_COMMON, expand_k=0.5, expand_v=1.0, feature_map=None, attn_mode="chunk", use_short_conv=False,
                conv_size=4, use_output_gate=True, clamp_min=None, use_gk=True, use_gv=False),
    "retnet": dict(_COMMON, attn_mode="chunk", expand_k=1.0, expand_v=2.0, hidden_ratio=2, num_heads=8,
                   feature_map=None, use_short_conv=False, conv_size=4, use_output_gate=True),
    "gsa": dict(_COMMON, gate_logit_normalizer=8, clamp_min=None, clamp_max=None, num_slots=64, use_short_conv=False,
                conv_size=4, expand_k=1, expand_v=1, feature_map="swish", use_output_gate=False, use_norm=True),
    "rwkv6": dict(_COMMON, attn_mode="chunk", expand_k=0.5, expand_v=1.0, hidden_ratio=3.5, proj_low_rank_dim=32,
                  gate_low_rank_dim=64, hidden_act="sqrelu", norm_first=True, norm_bias=True, norm_eps=1e-5),
}

_FEATURE_MAPS = {"gla": (None, "relu", "sigmoid", "logsigmoid", "swish", "silu", "sqrelu", "gelu"),
                 "retnet": (None, "relu", "sigmoid", "logsigmoid", "swish", "silu", "sqrelu", "gelu"),
                 "gsa": ("swish", "relu", "t2r")}


class ModelConfig:
    """Attribute access to every key (fla's defaults filled in) plus the derived sizes."""

    def __init__(self, values=None, source="config", **overrides):
        values = dict(values or {}, **overrides)
        self._source = source
        model_type = values.get("model_type")
        if model_type not in DEFAULTS:
            raise LinaError(f"{source}: model_type: expected one of {', '.join(DEFAULTS)}; got {model_type!r}; "
                            "set \"model_type\" to the fla model this checkpoint is")
        # GSA's constructor spells these exapnd_k/exapnd_v (fla's typo); either spelling is read.
        if model_type == "gsa":
            for good, bad in (("expand_k", "exapnd_k"), ("expand_v", "exapnd_v")):
                if bad in values and good not in values:
                    values[good] = values.pop(bad)
        self.__dict__.update(DEFAULTS[model_type])
        self.__dict__.update(values)
        self._validate()

    @classmethod
    def from_file(cls, path):
        """config.json, or a checkpoint folder holding one."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except FileNotFoundError:
            raise LinaError(f"{path}: no such file; a checkpoint folder holds config.json next to its safetensors") from None
        except json.JSONDecodeError as e:
            raise LinaError(f"{path}: not valid JSON ({e}); fix or regenerate the file") from None
        if not isinstance(values, dict):
            raise LinaError(f"{path}: expected a JSON object; got {type(values).__name__}")
        return cls(values, source=path)

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def save(self, folder):
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, "config.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, os.path.join(folder, "config.json"))

    # --- derived sizes (fla's layers) -------------------------------------------------------------
    @property
    def kv_heads(self):
        return self.num_kv_heads or self.num_heads

    @property
    def kv_groups(self):
        return self.num_heads // self.kv_heads

    @property
    def key_dim(self):
        return round(self.hidden_size * self.expand_k)

    @property
    def value_dim(self):
        return round(self.hidden_size * self.expand_v)

    @property
    def head_k(self):
        return self.key_dim // self.num_heads

    @property
    def head_v(self):
        return self.value_dim // self.num_heads

    @property
    def mlp_size(self):
        """fla's GatedMLP width (int(D * ratio * 2/3) rounded up to 256), or RWKV6's FFN width
        (int(D * ratio) rounded up to 32)."""
        if self.intermediate_size:
            return int(self.intermediate_size)
        if self.model_type == "rwkv6":
            return 32 * ((int(self.hidden_size * (self.hidden_ratio or 3.5)) + 31) // 32)
        width = int(self.hidden_size * (self.hidden_ratio or 4) * 2 / 3)
        return 256 * ((width + 255) // 256)

    def _fail(self, key, expected, fix=""):
        actual = self.__dict__.get(key)
        raise LinaError(f"{self._source}: {key}: expected {expected}; got {actual!r}" + (f"; {fix}" if fix else ""))

    def _validate(self):
        t = self.model_type
        for key in ("hidden_size", "num_hidden_layers", "num_heads", "vocab_size"):
            if not isinstance(self.__dict__[key], int) or self.__dict__[key] <= 0:
                self._fail(key, "a positive integer")
        if self.num_kv_heads is not None and (not isinstance(self.num_kv_heads, int) or self.num_kv_heads <= 0
                                              or self.num_heads % self.num_kv_heads):
            self._fail("num_kv_heads", f"null or a positive divisor of num_heads = {self.num_heads}")
        for key, size in (("expand_k", self.hidden_size * self.expand_k), ("expand_v", self.hidden_size * self.expand_v)):
            if not math.isclose(size, round(size)) or round(size) <= 0 or round(size) % self.num_heads:
                self._fail(key, f"hidden_size * {key} a positive integer divisible by num_heads = {self.num_heads}")
        if self.attn is not None:
            self._fail("attn", "null (hybrid softmax-attention layers are not run by lina)",
                       "remove the key or set it to null")
        if self.attnres_block_size is not None:
            self._fail("attnres_block_size", "null (attention residuals are not run by lina)")
        if t == "rwkv6":
            if self.hidden_act != "sqrelu":
                self._fail("hidden_act", "'sqrelu' (RWKV6's FFN)")
            if self.num_kv_heads not in (None, self.num_heads):
                self._fail("num_kv_heads", "null (RWKV6 has no grouped heads)")
        else:
            if self.hidden_act != "swish":
                self._fail("hidden_act", "'swish' (fla's GatedMLP)")
            if self.feature_map not in _FEATURE_MAPS[t]:
                self._fail("feature_map", "one of " + ", ".join(repr(f) for f in _FEATURE_MAPS[t]))
        if t == "gsa":
            if not isinstance(self.num_slots, int) or self.num_slots <= 0:
                self._fail("num_slots", "a positive integer")
            if self.elementwise_affine and self.value_dim != self.hidden_size:
                self._fail("expand_v", "1 (GSA's g_norm is sized hidden_size when elementwise_affine)")
        if t == "retnet" and self.head_k > 256:
            self._fail("expand_k", "head_k = hidden_size * expand_k / num_heads <= 256 (fla's rotary embedding)")

    def __repr__(self):
        return f"ModelConfig({self.to_dict()!r})"
