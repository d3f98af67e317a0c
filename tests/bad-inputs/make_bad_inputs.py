#!/usr/bin/env python3
"""Regenerates the bad-input corpus: malformed files and folders under tests/bad-inputs/inputs/
and cases.json, which says how to run mergesweep on each one and what its error must say.

Stdlib only. Each case: {"name", "args" (run from tests/bad-inputs/, {tmp} is a fresh folder),
"exit" (expected status), "expect" (substrings of stderr), "absent" (paths that must not exist
afterwards: nothing half-written)}. test_cli runs every case (tests/cli/test_bad_inputs.cpp).
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
IN = os.path.join(HERE, "inputs")
CASES = []


def st_bytes(header, data=b"", length=None):
    h = header.encode("utf-8") if isinstance(header, str) else header
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


def put(rel, content):
    path = os.path.join(IN, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode("utf-8"))
    return "inputs/" + rel


def case(name, args, expect, exit_code=1, absent=()):
    CASES.append({"name": name, "args": args, "exit": exit_code, "expect": expect, "absent": list(absent)})


def inspect_file(name, content, expect):
    rel = put(name + ".safetensors", content)
    case(name, f"inspect {rel}", [rel] + expect)


F32x2 = '"dtype":"F32","shape":[2],"data_offsets":'
LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4, "intermediate_size": 8,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 6,
         "tie_word_embeddings": True, "torch_dtype": "float32"}


def good_model_tensors():
    """(header json, data) of a valid 1-layer llama matching LLAMA."""
    names = [("model.embed_tokens.weight", [6, 4]), ("model.layers.0.input_layernorm.weight", [4]),
             ("model.norm.weight", [4])]
    entries, off = {}, 0
    for n, shape in names:
        size = 4
        for d in shape:
            size *= d
        entries[n] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + size]}
        off += size
    data = struct.pack(f"<{off // 4}f", *([0.5] * (off // 4)))
    return json.dumps(entries, separators=(",", ":")), data


def folder(name, files, expect, target=None):
    for rel, content in files.items():
        put(f"{name}/{rel}", content)
    path = f"inputs/{name}"
    case(name, f"inspect {path}", [path if target is None else target] + expect)


def clear_generated_inputs():
    """Removes what an earlier run wrote under inputs/, so that a dropped case leaves no stale file.

    inputs/<module>/ folders belong to the later modules' own generators (make_bad_inputs_*.py).
    """
    os.makedirs(IN, exist_ok=True)
    for entry in os.listdir(IN):
        if entry in ("model", "eval", "archive", "sweep", "testbed", "report"):
            continue
        path = os.path.join(IN, entry)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def safetensors_file_cases():
    """Malformed single .safetensors files: each breaks one rule of the header or the data section."""
    inspect_file("empty", b"", ["too short"])
    inspect_file("short_length_prefix", b"\x10\x00\x00", ["too short"])
    inspect_file("header_past_eof", st_bytes("{}", length=4096), ["runs past the end of the file"])
    inspect_file("header_too_large", st_bytes("{}", length=1 << 40), ["exceeds the limit"])
    inspect_file("invalid_json", st_bytes('{"a": {"dtype": '), ["invalid JSON"])
    inspect_file("header_not_object", st_bytes("[1, 2, 3]"), ["starting with '{'"])
    inspect_file("invalid_utf8", st_bytes(b'{"\xff\xfe":{}}'), ["not valid UTF-8"])
    inspect_file("unknown_dtype", st_bytes('{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', b"\0" * 16),
                 ["'w'", "unknown dtype 'F128'"])
    inspect_file("negative_shape", st_bytes('{"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}}', b"\0" * 16),
                 ["'w'", "negative"])
    inspect_file("huge_shape",
                 st_bytes('{"w":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,4]}}',
                          b"\0" * 4), ["'w'", "overflows"])
    inspect_file("bytes_shape_mismatch", st_bytes('{"w":{' + F32x2 + '[0,12]}}', b"\0" * 12),
                 ["'w'", "needs 8 bytes", "span 12"])
    inspect_file("truncated_data", st_bytes('{"w":{"dtype":"F32","shape":[256],"data_offsets":[0,1024]}}', b"\0" * 100),
                 ["'w'", "truncated"])
    inspect_file("overlapping_tensors", st_bytes('{"a":{' + F32x2 + '[0,8]},"b":{' + F32x2 + '[4,12]}}', b"\0" * 12),
                 ["'b'", "overlaps tensor 'a'"])
    inspect_file("hole_in_data", st_bytes('{"a":{' + F32x2 + '[0,8]},"b":{' + F32x2 + '[16,24]}}', b"\0" * 24),
                 ["'b'", "hole in the data section"])
    inspect_file("trailing_bytes", st_bytes('{"a":{' + F32x2 + '[0,8]}}', b"\0" * 20), ["12 trailing bytes"])
    inspect_file("duplicate_names", st_bytes('{"a":{' + F32x2 + '[0,8]},"a":{' + F32x2 + '[8,16]}}', b"\0" * 16),
                 ["duplicate key 'a'"])
    inspect_file("metadata_non_string", st_bytes('{"__metadata__":{"format":1}}'), ["__metadata__.format", "must be strings"])
    inspect_file("metadata_not_object", st_bytes('{"__metadata__":["pt"]}'), ["__metadata__", "must be an object"])
    inspect_file("missing_data_offsets", st_bytes('{"w":{"dtype":"F32","shape":[2]}}'), ["'w'", "missing field 'data_offsets'"])
    inspect_file("unknown_entry_field", st_bytes('{"w":{' + F32x2 + '[0,8],"strides":[1]}}', b"\0" * 8),
                 ["'w'", "unknown field 'strides'"])
    inspect_file("offsets_reversed", st_bytes('{"w":{' + F32x2 + '[8,0]}}', b"\0" * 8), ["'w'", "end before begin"])
    inspect_file("fractional_shape", st_bytes('{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}', b"\0" * 8),
                 ["'w'", "non-negative integer"])
    inspect_file("dtype_not_string", st_bytes('{"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}', b"\0" * 8),
                 ["'w'", "dtype must be a string"])
    # Found by bench/run_fuzz.sh: a number too large for a double escaped as a non-parse exception.
    inspect_file("number_overflow",
                 st_bytes('{"w":{"dtype":"F32","shape":[99999990000000e000000000077594287251075891130],"data_offsets":[0,4]}}',
                          b"\0" * 4), ["invalid JSON", "number overflow"])
    inspect_file("nul_in_header", st_bytes(b'{"w\x00":{}}'), ["invalid JSON"])


def config_folder_cases(weights, cfg):
    """Model folders whose config.json is missing or malformed, or that have no weights at all."""
    folder("folder_without_config", {"model.safetensors": weights}, ["config.json", "missing"])
    folder("config_invalid_json", {"config.json": '{"model_type": "llama",', "model.safetensors": weights},
           ["config.json", "invalid JSON"])
    folder("config_missing_hidden_size",
           {"config.json": json.dumps({k: v for k, v in LLAMA.items() if k != "hidden_size"}), "model.safetensors": weights},
           ["config.json", "hidden_size", "missing"])
    folder("config_bad_field_type", {"config.json": json.dumps({**LLAMA, "num_hidden_layers": "two"}),
                                     "model.safetensors": weights}, ["config.json", "num_hidden_layers", "positive integer"])
    folder("config_number_overflow", {"config.json": '{"model_type": "llama", "hidden_size": 1e999}',
                                      "model.safetensors": weights}, ["config.json", "number overflow"])
    folder("config_not_object", {"config.json": "[]", "model.safetensors": weights}, ["config.json", "JSON object"])
    folder("folder_without_weights", {"config.json": cfg}, ["no model.safetensors or model.safetensors.index.json"])


def sharded_index_cases(data, cfg):
    """Two-shard model folders whose model.safetensors.index.json is wrong (missing shards, paths that
    escape the folder, tensors the index and the shards disagree on)."""
    shard1_hdr = '{"model.embed_tokens.weight":{"dtype":"F32","shape":[6,4],"data_offsets":[0,96]}}'
    shard1 = st_bytes(shard1_hdr, data[:96])
    rest = {"model.layers.0.input_layernorm.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "model.norm.weight": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]}}
    shard2 = st_bytes(json.dumps(rest, separators=(",", ":")), data[96:])
    good_map = {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                "model.layers.0.input_layernorm.weight": "model-00002-of-00002.safetensors",
                "model.norm.weight": "model-00002-of-00002.safetensors"}

    def sharded(name, weight_map, expect, extra=None, index_text=None, target=None):
        files = {"config.json": cfg, "model-00001-of-00002.safetensors": shard1,
                 "model-00002-of-00002.safetensors": shard2,
                 "model.safetensors.index.json": index_text if index_text is not None else
                 json.dumps({"metadata": {"total_size": 128}, "weight_map": weight_map}, indent=2)}
        files.update(extra or {})
        folder(name, files, expect, target)

    idx = f"inputs/%s/model.safetensors.index.json"
    sharded("index_missing_shard", {**good_map, "model.norm.weight": "model-00003-of-00003.safetensors"},
            ["model.norm.weight", "does not exist"], target=idx % "index_missing_shard")
    sharded("index_path_dotdot", {**good_map, "model.norm.weight": "../index_missing_shard/model-00002-of-00002.safetensors"},
            ["escapes the model folder"], target=idx % "index_path_dotdot")
    sharded("index_path_absolute", {**good_map, "model.norm.weight": "/etc/passwd"}, ["is absolute"],
            target=idx % "index_path_absolute")
    sharded("index_tensor_not_in_shard", {**good_map, "model.norm.weight": "model-00001-of-00002.safetensors"},
            ["model.norm.weight", "does not contain it"], target=idx % "index_tensor_not_in_shard")
    sharded("index_unlisted_tensor", {k: v for k, v in good_map.items() if k != "model.norm.weight"},
            ["model-00002-of-00002.safetensors", "'model.norm.weight'", "not listed"])
    sharded("index_invalid_json", good_map, ["invalid JSON"], index_text='{"weight_map": ',
            target=idx % "index_invalid_json")
    sharded("index_without_weight_map", good_map, ["weight_map", "missing"], index_text='{"metadata": {}}',
            target=idx % "index_without_weight_map")
    sharded("index_wrong_total_size", good_map, ["metadata.total_size", "says 999"], target=idx % "index_wrong_total_size",
            index_text=json.dumps({"metadata": {"total_size": 999}, "weight_map": good_map}))
    # Symlink escape: a shard name inside the folder that resolves outside it.
    put("outside/model-00002-of-00002.safetensors", shard2)
    sharded("index_symlink_escape", {**good_map, "model.norm.weight": "escape.safetensors",
                                     "model.layers.0.input_layernorm.weight": "escape.safetensors"},
            ["outside the model folder"], target=idx % "index_symlink_escape")
    link = os.path.join(IN, "index_symlink_escape", "escape.safetensors")
    os.symlink("../outside/model-00002-of-00002.safetensors", link)


def integrity_cases(hdr, data, weights, cfg):
    """Well-formed folders whose config and tensors disagree, or whose values are NaN (integrity checks)."""
    folder("config_shape_mismatch", {"config.json": json.dumps({**LLAMA, "vocab_size": 7}), "model.safetensors": weights},
           ["'model.embed_tokens.weight'", "does not match config.json"], target="inputs/config_shape_mismatch")
    nan_data = bytearray(data)
    nan_data[96:100] = struct.pack("<f", float("nan"))
    folder("nan_values", {"config.json": cfg, "model.safetensors": st_bytes(hdr + " " * ((8 - len(hdr) % 8) % 8),
                                                                              bytes(nan_data))}, [])
    CASES[-1]["args"] += " --check-values"
    CASES[-1]["expect"] = ["model.safetensors", "'model.layers.0.input_layernorm.weight'", "NaN or Inf"]


def write_merge_model(name, tensors, cfg_text):
    """Writes inputs/merge/<name>/ (model.safetensors + config.json) from {tensor: (dtype, shape, fill)}."""
    write_tensors(f"merge/{name}/model.safetensors", tensors)
    put(f"merge/{name}/config.json", cfg_text)


def write_tensors(rel, tensors):
    """A safetensors file from {tensor: (dtype, shape, fill)}."""
    entries, blob, off = {}, b"", 0
    for tname, (dtype, shape, fill) in tensors.items():
        n = 1
        for d in shape:
            n *= d
        fmt, size = {"F32": ("f", 4), "F16": ("e", 2), "I32": ("i", 4)}[dtype]
        raw = struct.pack(f"<{n}{fmt}", *([int(fill) if fmt == "i" else fill] * n))
        entries[tname] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blob += raw
        off += len(raw)
    h = json.dumps(entries, separators=(",", ":"))
    put(rel, st_bytes(h + " " * ((8 - len(h) % 8) % 8), blob))


def write_adapter(name, r, tensors, weights=True):
    """A PEFT LoRA adapter folder inputs/merge/<name>/ (adapter_config.json + adapter_model.safetensors)."""
    cfg = {"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "base_model_name_or_path": "../base",
           "target_modules": ["embed_tokens"], "fan_in_fan_out": False, "use_rslora": False}
    put(f"merge/{name}/adapter_config.json", json.dumps(cfg, indent=1))
    if weights:
        write_tensors(f"merge/{name}/adapter_model.safetensors",
                      {"base_model.model." + k: v for k, v in tensors.items()})


def merge_tensors(**over):
    """The base model's tensors with some replaced (value None: left out)."""
    t = {"model.embed_tokens.weight": ("F32", [6, 4], 0.5), "model.layers.0.input_layernorm.weight": ("F32", [4], 1.0),
         "model.norm.weight": ("F32", [4], 1.0)}
    t.update(over)
    return {k: v for k, v in t.items() if v is not None}


def write_merge_models(cfg):
    """The small models the merge cases refer to: a base, two good fine-tunes and one per kind of mismatch."""
    write_merge_model("base", merge_tensors(), cfg)
    write_merge_model("ft_a", merge_tensors(**{"model.norm.weight": ("F32", [4], 1.5)}), cfg)
    write_merge_model("ft_b", merge_tensors(**{"model.norm.weight": ("F32", [4], 0.5)}), cfg)
    write_merge_model("ft_shape", merge_tensors(**{"model.embed_tokens.weight": ("F32", [7, 4], 0.5)}), cfg)
    # A float dtype that differs from the base's is widened (docs/checkpoints.md); an integer one is refused.
    write_merge_model("ft_dtype", merge_tensors(**{"model.norm.weight": ("I32", [4], 1)}), cfg)
    write_merge_model("ft_missing", merge_tensors(**{"model.norm.weight": None}), cfg)
    write_merge_model("ft_inf", merge_tensors(**{"model.norm.weight": ("F32", [4], float("inf"))}), cfg)
    # LoRA adapters of the base that do not fit it (docs/checkpoints.md).
    emb = "model.embed_tokens"
    write_adapter("lora_rank", 3, {emb + ".lora_embedding_A": ("F32", [2, 6], 0.1), emb + ".lora_embedding_B": ("F32", [4, 2], 0.1)})
    write_adapter("lora_target", 2, {"model.layers.0.self_attn.q_proj.lora_A.weight": ("F32", [2, 4], 0.1),
                                     "model.layers.0.self_attn.q_proj.lora_B.weight": ("F32", [4, 2], 0.1)})
    write_adapter("lora_b_shape", 2, {emb + ".lora_embedding_A": ("F32", [2, 6], 0.1), emb + ".lora_embedding_B": ("F32", [5, 2], 0.1)})
    write_adapter("lora_half_written", 2, {}, weights=False)


def merge_case(name, yaml_text, expect, exit_code=1, names_config=True):
    """A merge configuration file plus its case; a failed merge must leave no output folder."""
    rel = put(f"merge_{name}.yaml", yaml_text)
    case("merge_" + name, f"merge {rel} {{tmp}}/out", ([rel] if names_config else []) + expect, exit_code,
         absent=["{tmp}/out"])


def merge_config_cases():
    """Merge configurations that are wrong in themselves (method, parameters, keys, YAML)."""
    two = "models:\n  - model: inputs/merge/ft_a\n  - model: inputs/merge/ft_b\n"
    merge_case("unknown_method", "merge_method: frankenmerge\nbase_model: inputs/merge/base\n" + two,
               ["merge_method", "unknown method 'frankenmerge'", "task_arithmetic"])
    merge_case("unknown_parameter", "merge_method: ties\nbase_model: inputs/merge/base\n" + two + "parameters: {lamda: 1}\n",
               ["lamda", "unknown parameter", "lambda"])
    merge_case("density_out_of_range", "merge_method: ties\nbase_model: inputs/merge/base\n" + two +
               "parameters: {density: 1.5}\n", ["density", "out of range"])
    merge_case("nan_lambda", "merge_method: task_arithmetic\nbase_model: inputs/merge/base\n" + two +
               "parameters: {lambda: .nan}\n", ["lambda", "finite"])
    merge_case("slerp_three_models", "merge_method: slerp\nbase_model: inputs/merge/base\n" + two,
               ["models", "slerp takes exactly 1 model"])
    merge_case("model_stock_one_model", "merge_method: model_stock\nbase_model: inputs/merge/base\n"
               "models:\n  - model: inputs/merge/ft_a\n", ["models", "at least 2 models"])
    merge_case("missing_base", "merge_method: ties\n" + two, ["base_model", "missing"])
    merge_case("unsupported_key", "merge_method: linear\n" + two + "chat_templat: auto\n",
               ["chat_templat", "unknown key 'chat_templat'", "line 5"])
    merge_case("mergekit_slices", "merge_method: linear\n" + two + "slices: []\n", ["slices", "give one of them", "line 5"])
    merge_case("mergekit_modules", "merge_method: linear\nmodules: {}\n", ["modules", "not supported"])
    merge_case("gradient_out_of_range", "merge_method: slerp\nbase_model: inputs/merge/base\n"
               "models:\n  - model: inputs/merge/ft_a\nparameters:\n  t: [0, 1.5]\n", ["t", "1.5", "out of range"])
    merge_case("filter_without_value", "merge_method: slerp\nbase_model: inputs/merge/base\n"
               "models:\n  - model: inputs/merge/ft_a\nparameters:\n  t: [{filter: mlp}]\n", ["parameters.t[0].value", "missing"])
    merge_case("slices_other_models", "merge_method: slerp\nbase_model: inputs/merge/base\nslices:\n"
               "  - sources: [{model: inputs/merge/base, layer_range: [0, 1]}, {model: inputs/merge/ft_a, layer_range: [0, 1]}]\n"
               "  - sources: [{model: inputs/merge/base, layer_range: [1, 2]}, {model: inputs/merge/ft_b, layer_range: [1, 2]}]\n",
               ["slices[1].sources", "takes other layers or models"])
    merge_case("invalid_yaml", "merge_method: [linear\n", ["invalid YAML"])
    merge_case("weight_on_model_stock", "merge_method: model_stock\nbase_model: inputs/merge/base\n"
               "models:\n  - model: inputs/merge/ft_a\n    parameters: {weight: 2}\n  - model: inputs/merge/ft_b\n",
               ["weight", "takes no per-model weight"])
    merge_case("bad_out_dtype", "merge_method: linear\n" + two + "dtype: float8\n", ["dtype", "float8"])


def merge_pair(other):
    """A valid task_arithmetic configuration merging ft_a with inputs/merge/<other>."""
    return ("merge_method: task_arithmetic\nbase_model: inputs/merge/base\nmodels:\n"
            f"  - model: inputs/merge/ft_a\n  - model: inputs/merge/{other}\n")


def merge_model_mismatch_cases():
    """Valid configurations whose models do not fit together, and a merge onto an existing output."""
    merge_case("shape_mismatch", merge_pair("ft_shape"),
               ["inputs/merge/ft_shape", "model.embed_tokens.weight: shape [7, 4] differs from the base's [6, 4]",
                "models[1].model", "vocabulary differs"], names_config=False)
    merge_case("dtype_not_float", merge_pair("ft_dtype"),
               ["inputs/merge/ft_dtype", "model.norm.weight", "dtype I32 cannot be merged", "models[1].model"],
               names_config=False)
    merge_case("missing_tensor", merge_pair("ft_missing"),
               ["inputs/merge/ft_missing", "model.norm.weight: tensor of the base", "F32 [4]", "missing"], names_config=False)
    merge_case("non_finite_output", merge_pair("ft_inf"), ["inputs/merge/ft_inf", "'model.norm.weight'", "NaN or Inf"],
               names_config=False)
    merge_case("lora_wrong_rank", merge_pair("lora_rank"),
               ["inputs/merge/lora_rank/adapter_model.safetensors", "lora_A [2, 6] and lora_B [4, 2] do not have the rank 3"],
               names_config=False)
    merge_case("lora_target_missing", merge_pair("lora_target"),
               ["targets module 'model.layers.0.self_attn.q_proj', which the base", "inputs/merge/base"], names_config=False)
    merge_case("lora_b_shape", merge_pair("lora_b_shape"),
               ["lora_B [5, 2] · lora_A [2, 6] gives [6, 5], but the base's model.embed_tokens.weight is [6, 4]"],
               names_config=False)
    merge_case("lora_half_written", merge_pair("lora_half_written"),
               ["inputs/merge/lora_half_written", "adapter_model.safetensors: is missing"], names_config=False)
    merge_case("missing_model_folder", merge_pair("ft_nowhere"), ["inputs/merge/ft_nowhere", "no such file"], names_config=False)
    # An existing output is never overwritten.
    case("merge_output_exists", "merge inputs/merge_ok.yaml inputs/merge", ["inputs/merge", "already exists"])
    put("merge_ok.yaml", merge_pair("ft_b"))


def command_line_cases():
    """Bad command lines and output paths: nothing may be written."""
    case("missing_path", "inspect inputs/does-not-exist", ["inputs/does-not-exist", "no such file"])
    case("bad_shard_size", "synth --out {tmp}/fam --max-shard-size 5XB", ["--max-shard-size", "unknown unit"],
         absent=["{tmp}/fam"])
    case("bad_dtype_leaves_nothing", "synth --out {tmp}/fam --dtype float8", ["--dtype", "float8"], absent=["{tmp}/fam"])
    case("bad_preset", "synth --out {tmp}/fam --preset huge", ["--preset", "huge"], absent=["{tmp}/fam"])
    case("output_exists", "synth --out inputs", ["inputs", "already exists"])
    case("unknown_verb", "frobnicate", ["unknown verb 'frobnicate'"], exit_code=2)
    case("unknown_option", "inspect --frobnicate x", ["frobnicate"], exit_code=2)


def main():
    # The groups run in a fixed order: it is the order of the cases in cases.json.
    clear_generated_inputs()
    safetensors_file_cases()

    hdr, data = good_model_tensors()
    weights = st_bytes(hdr + " " * ((8 - len(hdr) % 8) % 8), data)
    cfg = json.dumps(LLAMA)
    config_folder_cases(weights, cfg)
    sharded_index_cases(data, cfg)
    integrity_cases(hdr, data, weights, cfg)

    write_merge_models(cfg)
    merge_config_cases()
    merge_model_mismatch_cases()
    command_line_cases()

    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump({"cases": CASES}, f, indent=1)
        f.write("\n")
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()
