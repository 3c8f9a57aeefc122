"""Causal LMs in fla's layout (research/fla-spec.md §5): embeddings, pre-norm blocks, a final norm
and lm_head, with fla's parameter names, so a checkpoint moves between fla, lina.models and
lina-run unchanged. Training takes a padded batch with an attention mask or packed documents
with cu_seqlens; both run every layer on packed sequences, so the two give the same loss and
gradients. Decoding carries a per-layer cache of recurrent states."""
import dataclasses
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._lina import LinaError
from . import checkpoint
from .attention import GatedLinearAttention, GatedSlotAttention, MultiScaleRetention
from .config import ModelConfig
from .layers import _f32, GatedMLP, LayerNorm, RMSNorm, ShortConvolution, Unpadded
from .rwkv6 import LoRA, RWKV6Attention, RWKV6Block, init_rwkv6_

IGNORE_INDEX = -100
_MIXERS = {"gla": GatedLinearAttention, "retnet": MultiScaleRetention, "gsa": GatedSlotAttention}


@dataclasses.dataclass
class CausalLMOutput:
    loss: torch.Tensor = None
    logits: torch.Tensor = None
    past_key_values: list = None


class Block(nn.Module):
    """GLA / RetNet / GSA block: h + attn(norm h), then the fused add + RMSNorm (sum in fp32,
    stored in the residual's dtype, the norm of the fp32 sum) and the SwiGLU MLP."""

    def __init__(self, c, layer_idx):
        super().__init__()
        self.attn_norm = RMSNorm(c.hidden_size, c.norm_eps)
        self.attn = _MIXERS[c.model_type](c, layer_idx)
        self.mlp_norm = RMSNorm(c.hidden_size, c.norm_eps)
        self.mlp = GatedMLP(c.hidden_size, c.mlp_size)

    def forward(self, h, cu_seqlens=None, state=None, use_cache=False):
        a, new_state = self.attn(self.attn_norm(h), cu_seqlens, state, use_cache)
        total = _f32(a) + _f32(h)
        residual = total.to(h.dtype)
        x = self.mlp_norm(total).to(h.dtype)
        return residual + self.mlp(x), new_state


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = nn.Embedding(c.vocab_size, c.hidden_size, c.pad_token_id)
        block = RWKV6Block if c.model_type == "rwkv6" else Block
        self.layers = nn.ModuleList([block(c, i) for i in range(c.num_hidden_layers)])
        self.norm = (LayerNorm(c.hidden_size, c.norm_eps, c.norm_bias) if c.model_type == "rwkv6"
                     else RMSNorm(c.hidden_size, c.norm_eps))


class ForCausalLM(nn.Module):
    """model = ForCausalLM(config) or ForCausalLM.from_pretrained(folder); see the module docs."""

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, ModelConfig):
            config = ModelConfig(config)
        self.config = config
        self.model = Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embeddings.weight
        self.reset_parameters()

    # --- initialisation, as fla's _init_weights ---------------------------------------------------
    def reset_parameters(self, seed=None):
        if seed is not None:
            torch.manual_seed(seed)
        r = self.config.initializer_range
        lora_linears = set()
        if self.config.model_type == "rwkv6":
            init_rwkv6_(self, self.config)
            lora_linears = {id(sub) for m in self.modules() if isinstance(m, LoRA) for sub in m.lora}
        for m in self.modules():
            if isinstance(m, (nn.Linear, ShortConvolution)):
                if id(m) not in lora_linears:  # the decay LoRA keeps RWKV6's own init
                    nn.init.normal_(m.weight, 0.0, r)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, r)
            elif hasattr(m, "reset_parameters") and m is not self:
                m.reset_parameters()
            if self.config.model_type == "rwkv6" and isinstance(m, RWKV6Attention):
                # fla's RWKV6 rescales each residual output projection (rescale_prenorm_residual).
                nn.init.kaiming_uniform_(m.o_proj.weight, a=math.sqrt(5))
                with torch.no_grad():
                    m.o_proj.weight /= math.sqrt(2 * self.config.num_hidden_layers)

    # --- forward ----------------------------------------------------------------------------------
    def forward(self, input_ids, attention_mask=None, cu_seqlens=None, labels=None, past_key_values=None,
                use_cache=False, logits_to_keep=0, num_items_in_batch=None):
        """input_ids [B, T]; attention_mask [B, T] (1 = token, 0 = padding, left or right) or
        cu_seqlens [N + 1] for documents packed into B = 1. labels [B, T] (IGNORE_INDEX = -100
        skipped) are shifted inside: position t predicts labels[t + 1], never across a padding or a
        document boundary. Returns CausalLMOutput(loss, logits, past_key_values)."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise LinaError(f"input_ids: expected a [B, T] integer tensor; got "
                            f"{getattr(input_ids, 'shape', type(input_ids).__name__)}")
        B, T = input_ids.shape
        packing = None
        if attention_mask is not None:
            if cu_seqlens is not None:
                raise LinaError("attention_mask and cu_seqlens: pass one (a padded batch or packed documents), not both")
            if tuple(attention_mask.shape) != (B, T):
                raise LinaError(f"attention_mask: expected shape [{B}, {T}] like input_ids; got {list(attention_mask.shape)}")
            packing = Unpadded(attention_mask)
            cu_seqlens = packing.cu_seqlens.to(input_ids.device)
        elif cu_seqlens is not None and B != 1:
            raise LinaError(f"cu_seqlens: packed documents go in one row, input_ids [1, T]; got B = {B}")
        h = self.model.embeddings(input_ids)
        if packing is not None:
            h = packing.pack(h)
        states = past_key_values or [None] * len(self.model.layers)
        new_states = []
        for layer, state in zip(self.model.layers, states):
            h, s = layer(h, cu_seqlens, state, use_cache)
            new_states.append(s)
        h = self.model.norm(h)
        if packing is not None:
            h = packing.unpack(h)
        loss = None
        if labels is not None:
            logits = self.lm_head(h)
            loss = self.loss(logits, labels, attention_mask, cu_seqlens if packing is None else None, num_items_in_batch)
        else:
            logits = self.lm_head(h if not logits_to_keep else h[:, -logits_to_keep:])
        return CausalLMOutput(loss, logits, new_states if use_cache else None)

    @staticmethod
    def shifted_labels(labels, attention_mask=None, cu_seqlens=None):
        """labels[t + 1] at t, IGNORE_INDEX where t + 1 is padding, outside t's document, or past the end."""
        labels = labels.clone()
        if attention_mask is not None:
            labels = labels.masked_fill(attention_mask == 0, IGNORE_INDEX)
        shifted = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)], 1)
        if attention_mask is not None:
            shifted = shifted.masked_fill(attention_mask == 0, IGNORE_INDEX)
        if cu_seqlens is not None:
            ends = cu_seqlens.to(labels.device).long()[1:] - 1
            shifted[0, ends[ends >= 0]] = IGNORE_INDEX
        return shifted

    def loss(self, logits, labels, attention_mask=None, cu_seqlens=None, num_items_in_batch=None):
        """Mean cross entropy over the predicted tokens, or their sum / num_items_in_batch (so
        accumulated micro-batches weigh every token equally)."""
        target = self.shifted_labels(labels, attention_mask, cu_seqlens)
        reduction = "mean" if num_items_in_batch is None else "sum"
        loss = F.cross_entropy(_f32(logits).reshape(-1, logits.shape[-1]), target.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction=reduction)
        return loss if num_items_in_batch is None else loss / num_items_in_batch

    # --- generation -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, input_ids, max_new_tokens=16, attention_mask=None, eos_token_id=None):
        """Greedy decoding: one prefill over the prompts (padded with a mask, or not), then one token
        per step from the recurrent states. Returns [B, T + new] token ids."""
        out = self(input_ids, attention_mask=attention_mask, use_cache=True)
        cache = out.past_key_values
        tokens = [input_ids]
        last = _last_logits(out.logits, attention_mask).argmax(-1, keepdim=True)
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            tokens.append(last)
            if eos_token_id is not None:
                done |= last[:, 0] == eos_token_id
                if bool(done.all()):
                    break
            out = self(last, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            last = out.logits[:, -1].argmax(-1, keepdim=True)
        return torch.cat(tokens, 1)

    # --- checkpoints ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder, dtype=None, device=None):
        """A checkpoint folder of fla's layout (config.json + safetensors, sharded or not)."""
        folder = os.fspath(folder)
        config = ModelConfig.from_file(folder)
        with torch.device("meta"):
            model = cls.__new__(cls)
            nn.Module.__init__(model)
            model.config = config
            model.model = Model(config)
            model.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        tensors, origin = checkpoint.load_tensors(folder)
        tied = config.tie_word_embeddings or "lm_head.weight" not in tensors
        stored = next(iter(tensors.values())).dtype if tensors else torch.float32
        # Parameters in the stored dtype before loading, so no value goes through another one.
        model = model.to(stored).to_empty(device=device or "cpu")
        if tied:
            model.lm_head.weight = model.model.embeddings.weight
        checkpoint.load_state_dict_strict(model, tensors, origin, folder, tied)
        return model if dtype is None else model.to(dtype)

    def save_pretrained(self, folder, max_shard_bytes=5 << 30, dtype=None):
        """config.json and the weights (tied lm_head left out, as Hugging Face writes it)."""
        tensors = {k: (v if dtype is None else v.to(dtype)) for k, v in self.state_dict().items()}
        if self.config.tie_word_embeddings:
            tensors.pop("lm_head.weight", None)
        files = checkpoint.save_tensors(tensors, folder, int(max_shard_bytes))
        self.config.save(folder)
        return files


def _last_logits(logits, attention_mask):
    """Each row's logits at its last real token (right padding leaves pads after it)."""
    if attention_mask is None:
        return logits[:, -1]
    last = attention_mask.long().cumsum(-1).argmax(-1)
    return logits[torch.arange(logits.shape[0], device=logits.device), last]
