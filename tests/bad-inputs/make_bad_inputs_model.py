#!/usr/bin/env python3
"""Bad model folders for the decoder forward: tests/bad-inputs/inputs/model/<case>/.

Stdlib plus h5py (for task.h5). Each folder is a tiny 1-layer llama-shaped HF folder with one thing wrong:
  unsupported_model_type  config.json says "gpt_neox" (valid tensors otherwise)
  missing_tensor          model.safetensors lacks model.layers.0.self_attn.v_proj.weight
tests/model/test_model.cpp loads them (Errors.BadModelFoldersFromTheBadInputsCorpus), and
cases-model.json runs each through the CLI: `eval inputs/model/<case> --tasks inputs/model/task.h5`
(task.h5: a valid one-item task pack for the folders' vocabulary of 6, so the model is what fails).
task.h5 needs h5py: run with the project's interpreter (.venv/bin/python).
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
IN = os.path.join(HERE, "inputs", "model")

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 6,
          "max_position_embeddings": 16, "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": True,
          "torch_dtype": "float32"}

TENSORS = [("model.embed_tokens.weight", [6, 4]), ("model.layers.0.input_layernorm.weight", [4]),
           ("model.layers.0.self_attn.q_proj.weight", [4, 4]), ("model.layers.0.self_attn.k_proj.weight", [2, 4]),
           ("model.layers.0.self_attn.v_proj.weight", [2, 4]), ("model.layers.0.self_attn.o_proj.weight", [4, 4]),
           ("model.layers.0.post_attention_layernorm.weight", [4]), ("model.layers.0.mlp.gate_proj.weight", [8, 4]),
           ("model.layers.0.mlp.up_proj.weight", [8, 4]), ("model.layers.0.mlp.down_proj.weight", [4, 8]),
           ("model.norm.weight", [4])]


def safetensors_bytes(tensors):
    header, off = {}, 0
    for name, shape in tensors:
        n = 4
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    values = [0.01 * ((i * 7) % 13 - 6) for i in range(off // 4)]
    return struct.pack("<Q", len(h)) + h + struct.pack(f"<{len(values)}f", *values)


def folder(name, config, tensors):
    path = os.path.join(IN, name)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(safetensors_bytes(tensors))
    return "inputs/model/" + name


def write_task_pack(path):
    """One item, context [1, 2], choices [3] and [4, 5], gold 0 (format in docs/formats.md)."""
    import h5py
    import numpy as np

    if os.path.exists(path):
        os.remove(path)
    with h5py.File(path, "w") as f:
        for key, value in {"format": "mergesweep-task-pack", "name": "bad_model_probe", "source_task": "handmade",
                           "task_version": "1", "tokenizer": "none"}.items():
            f.attrs[key] = value
        f.attrs["format_version"] = np.int64(1)
        f.attrs["num_fewshot"] = np.int64(0)
        f.attrs["vocab_size"] = np.int64(6)
        f["gold"] = np.array([0], np.int32)
        f["context_tokens"] = np.array([1, 2], np.int32)
        f["context_offsets"] = np.array([0, 2], np.int64)
        f["choice_offsets"] = np.array([0, 2], np.int64)
        f["continuation_tokens"] = np.array([3, 4, 5], np.int32)
        f["continuation_offsets"] = np.array([0, 1, 3], np.int64)
        f["choice_chars"] = np.array([1, 2], np.int64)
        f["choice_bytes"] = np.array([1, 2], np.int64)


def main():
    cases = []
    rel = folder("unsupported_model_type", dict(CONFIG, model_type="gpt_neox", architectures=["GPTNeoXForCausalLM"]),
                 TENSORS)
    cases.append((rel, ["unsupported_model_type", "model_type", "gpt_neox"]))
    drop = "model.layers.0.self_attn.v_proj.weight"
    rel = folder("missing_tensor", CONFIG, [t for t in TENSORS if t[0] != drop])
    cases.append((rel, ["missing_tensor", drop, "missing"]))
    write_task_pack(os.path.join(IN, "task.h5"))
    out = {"cases": [{"name": "model_" + os.path.basename(r), "args": f"eval {r} --tasks inputs/model/task.h5",
                      "exit": 1, "expect": e, "absent": []} for r, e in cases]}
    with open(os.path.join(HERE, "cases-model.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
