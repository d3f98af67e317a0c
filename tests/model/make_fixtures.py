#!/usr/bin/env python3
"""Tiny random decoder models and transformers' own float32 outputs, for tests/model/test_model.cpp.

Run with a venv that has torch + transformers (not a project dependency), e.g.
    /tmp/mk2/bin/python tests/model/make_fixtures.py
Writes tests/fixtures/model/<name>/{config.json, model.safetensors, expected.safetensors}.
expected.safetensors holds, per case c: ids_c (int64 [B, T]), logits_c (float32 [B, T, V]) and
hidden_c_<i> for i in 0..L (transformers' output_hidden_states; the last is after the final norm),
and logits_bf16_3: the model cast to bfloat16, last case (as float32).
"""
import json
import os
import shutil

import torch
import transformers
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "model")

COMMON = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=101, max_position_embeddings=64, rms_norm_eps=1e-5)

MODELS = {
    # Llama 3.2 style: llama3 rope scaling with a small original context so all three frequency
    # bands (kept, interpolated, divided) occur at head_dim 16, and tied embeddings.
    "llama3_tied": (transformers.LlamaConfig, dict(
        COMMON, tie_word_embeddings=True, rope_theta=500000.0, max_position_embeddings=128,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64})),
    "llama_untied": (transformers.LlamaConfig, dict(COMMON, tie_word_embeddings=False, rope_theta=10000.0)),
    # A sliding window shorter than the longest case, so the window mask is exercised.
    "mistral": (transformers.MistralConfig, dict(COMMON, tie_word_embeddings=False, rope_theta=1000000.0,
                                                 sliding_window=6)),
    "qwen2": (transformers.Qwen2Config, dict(COMMON, tie_word_embeddings=True, rope_theta=1000000.0)),
    # Explicit head_dim different from hidden / heads, as Qwen3 models have.
    "qwen3": (transformers.Qwen3Config, dict(COMMON, tie_word_embeddings=False, head_dim=24, rope_theta=1000000.0)),
}

# (batch, length) per case; ids drawn from a fixed generator.
CASES = [(1, 1), (1, 7), (2, 11), (2, 40)]


def model_class(cfg):
    return transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    for seed, (name, (cls, kwargs)) in enumerate(sorted(MODELS.items())):
        torch.manual_seed(1000 + seed)
        cfg = cls(**kwargs)
        model = model_class(cfg).eval()
        # Norm weights start at 1 and biases at 0; randomize them so a wrong norm or a dropped
        # bias shows in the logits.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "norm" in pname or pname.endswith(".bias"):
                    p.copy_(1.0 + 0.2 * torch.randn_like(p) if "norm" in pname else 0.1 * torch.randn_like(p))
        folder = os.path.join(OUT, name)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        model.save_pretrained(folder, safe_serialization=True)
        for extra in ("generation_config.json",):
            path = os.path.join(folder, extra)
            if os.path.exists(path):
                os.remove(path)
        gen = torch.Generator().manual_seed(7 + seed)
        expected = {}
        for c, (b, t) in enumerate(CASES):
            ids = torch.randint(0, cfg.vocab_size, (b, t), generator=gen)
            with torch.no_grad():
                out = model(input_ids=ids, output_hidden_states=True)
            expected[f"ids_{c}"] = ids.contiguous()
            expected[f"logits_{c}"] = out.logits.float().contiguous()
            for i, h in enumerate(out.hidden_states):
                expected[f"hidden_{c}_{i}"] = h.float().contiguous()
        # transformers' own bf16 forward of the longest case, loaded as lm-eval loads it
        # (from_pretrained with dtype: RoPE frequencies stay float32; model.to() would round them).
        model_bf16 = transformers.AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.bfloat16, attn_implementation="eager").eval()
        with torch.no_grad():
            last = len(CASES) - 1
            expected[f"logits_bf16_{last}"] = model_bf16(input_ids=expected[f"ids_{last}"]).logits.float().contiguous()
        save_file(expected, os.path.join(folder, "expected.safetensors"),
                  metadata={"transformers": transformers.__version__, "torch": torch.__version__})
        print(name, sorted(os.listdir(folder)), {f: os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)})


if __name__ == "__main__":
    main()
