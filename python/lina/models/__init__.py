"""lina.models: PyTorch causal LMs for GLA, RetNet, GSA and RWKV6 in fla's layout (parameter
names, config.json, safetensors), every recurrence on lina.ops (lina's kernels on CUDA tensors,
the reference interpreter on CPU tensors), trainable with autograd, with a padded batch and an
attention mask or with packed documents (cu_seqlens).

    from lina.models import AutoModelForCausalLM, ModelConfig
    model = AutoModelForCausalLM.from_pretrained("path/to/checkpoint")     # fla's or lina-run's
    out = model(input_ids, attention_mask=mask, labels=input_ids)          # out.loss, out.logits
    out = model(packed_ids, cu_seqlens=cu, labels=packed_ids)              # documents packed in one row
    ids = model.generate(prompt_ids, max_new_tokens=32)                    # greedy, recurrent decode
    model.save_pretrained("out")
"""
from .config import ModelConfig
from .modeling import IGNORE_INDEX, CausalLMOutput, ForCausalLM


class _Family(ForCausalLM):
    model_type = None

    def __init__(self, config):
        if not isinstance(config, ModelConfig):
            config = ModelConfig(dict(config, model_type=self.model_type))
        super().__init__(config)


class GLAForCausalLM(_Family):
    model_type = "gla"


class RetNetForCausalLM(_Family):
    model_type = "retnet"


class GSAForCausalLM(_Family):
    model_type = "gsa"


class RWKV6ForCausalLM(_Family):
    model_type = "rwkv6"


class AutoModelForCausalLM:
    """The class for a config's model_type, as transformers' Auto classes pick one."""

    @staticmethod
    def from_config(config):
        return ForCausalLM(config if isinstance(config, ModelConfig) else ModelConfig(config))

    @staticmethod
    def from_pretrained(folder, dtype=None, device=None):
        return ForCausalLM.from_pretrained(folder, dtype=dtype, device=device)


__all__ = ["AutoModelForCausalLM", "CausalLMOutput", "ForCausalLM", "GLAForCausalLM", "GSAForCausalLM", "IGNORE_INDEX",
           "ModelConfig", "RWKV6ForCausalLM", "RetNetForCausalLM"]
