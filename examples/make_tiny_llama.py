"""Writes a tiny random Llama (or, with --mistral, a Mistral with grouped KV heads) in Hugging
Face's layout, made with transformers' own classes: a stand-in for a real checkpoint in the
conversion example (examples/convert_and_finetune.sh). Vocabulary 320, so the byte tokenizer of
lina.finetune (ids 0-258) fits."""
import argparse

import torch
import transformers

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--mistral", action="store_true")
args = p.parse_args()
torch.manual_seed(0)
common = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, vocab_size=320,
              rms_norm_eps=1e-5, tie_word_embeddings=False)
if args.mistral:
    model = transformers.MistralForCausalLM(transformers.MistralConfig(num_key_value_heads=2, **common))
else:
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(num_key_value_heads=4, **common))
model.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
print(f"wrote a random {'Mistral' if args.mistral else 'Llama'} ({sum(p.numel() for p in model.parameters()):,} "
      f"parameters) to {args.out}")
