#!/usr/bin/env python3
"""Writes N PEFT LoRA adapters over a model folder, for measuring adapter families.

    python3 bench/make_lora_adapters.py BASE OUT --count 12 --r 8 [--dtype bf16|f32]

Each OUT/lora-XX holds adapter_config.json and adapter_model.safetensors as peft's
save_pretrained lays them out ("base_model.model.<module>.lora_A.weight" [r, in], lora_B [out, r]),
targeting every attention and MLP projection, with seeded random factors (peft's initialisation
makes B zero). Only numpy is needed. bench/lora_family_bench.sh uses it.
"""
import argparse
import json
import os
import struct

import numpy as np

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def read_shapes(base):
    shapes = {}
    for name in sorted(os.listdir(base)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(base, name), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def write_safetensors(path, tensors, dtype):
    header, blobs, offset = {}, [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype=np.float32)
        raw = (a.view(np.uint32) >> 16).astype(np.uint16).tobytes() if dtype == "bf16" else a.tobytes()
        header[name] = {"dtype": "BF16" if dtype == "bf16" else "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=12)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--dtype", choices=("bf16", "f32"), default="bf16")
    args = ap.parse_args()
    shapes = read_shapes(args.base)
    for i in range(args.count):
        rng = np.random.default_rng(1000 + i)
        tensors = []
        for name, shape in sorted(shapes.items()):
            module = name[: -len(".weight")] if name.endswith(".weight") else None
            if module is None or len(shape) != 2 or module.rsplit(".", 1)[-1] not in TARGETS:
                continue
            tensors.append((f"base_model.model.{module}.lora_A.weight", rng.standard_normal((args.r, shape[1])) * 0.02))
            tensors.append((f"base_model.model.{module}.lora_B.weight", rng.standard_normal((shape[0], args.r)) * 0.02))
        out = os.path.join(args.out, f"lora-{i:02d}")
        os.makedirs(out, exist_ok=True)
        write_safetensors(os.path.join(out, "adapter_model.safetensors"), tensors, args.dtype)
        config = {"peft_type": "LORA", "r": args.r, "lora_alpha": 2 * args.r, "target_modules": list(TARGETS),
                  "base_model_name_or_path": os.path.abspath(args.base), "fan_in_fan_out": False,
                  "use_rslora": False, "modules_to_save": None}
        with open(os.path.join(out, "adapter_config.json"), "w") as f:
            json.dump(config, f, indent=2)


if __name__ == "__main__":
    main()
