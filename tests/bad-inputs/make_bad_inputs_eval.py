#!/usr/bin/env python3
"""Bad inputs of `mergesweep eval` (task and probe packs, models it cannot score): writes
tests/bad-inputs/inputs/eval/ and cases-eval.json (schema: make_bad_inputs.py). Needs h5py and
numpy (the project's .venv). Every case runs from tests/bad-inputs/.
"""
import json
import os
import shutil
import struct

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
IN = os.path.join(HERE, "inputs", "eval")
CASES = []
MODEL = "../fixtures/lmeval/model"  # a valid tiny llama (vocab 320) with the parity fixture
PACK = "../fixtures/lmeval/ms_parity.h5"


def case(name, args, expect, exit_code=1, absent=()):
    CASES.append({"name": name, "args": args, "exit": exit_code, "expect": expect, "absent": list(absent)})


def pack_layout(generate, vocab):
    """The datasets and attributes of a valid 3-item pack (layout of docs/formats.md): multiple
    choice (format_version 1, two choices an item) or, with `generate`, generate_until (format_version
    2: no choices, a byte table, until strings). Insertion order is the order written, so the
    committed packs stay byte-identical."""
    d = {
        "gold": np.array([0, 1, 0], np.int32),
        "context_tokens": np.array([5, 6, 7, 8, 9, 10], np.int32),
        "context_offsets": np.array([0, 2, 3, 6], np.int64),
        "choice_offsets": np.array([0, 2, 4, 6], np.int64),
        "continuation_tokens": np.array([11, 12, 13, 14, 15, 16, 17, 18], np.int32),
        "continuation_offsets": np.array([0, 1, 3, 4, 5, 7, 8], np.int64),
        "choice_chars": np.array([1, 2, 1, 1, 2, 1], np.int64),
        "choice_bytes": np.array([1, 2, 1, 1, 2, 1], np.int64),
    }
    attrs = {"format": "mergesweep-task-pack", "format_version": 2 if generate else 1}
    if generate:
        attrs["output_type"] = "generate_until"
    attrs.update(name="badgen" if generate else "bad", source_task="handmade", task_version="1",
                 tokenizer="fixture", num_fewshot=0, vocab_size=vocab)
    if not generate:
        return d, attrs
    attrs.update(max_gen_toks=8, strip_leading_space=0)
    table = [b""] + [f"<{t}>".encode() for t in range(1, vocab)]
    d.update(gold=np.zeros(3, np.int32), choice_offsets=np.zeros(4, np.int64),
             continuation_tokens=np.zeros(0, np.int32), continuation_offsets=np.zeros(1, np.int64),
             choice_chars=np.zeros(0, np.int64), choice_bytes=np.zeros(0, np.int64),
             until=["\n\n", "Question:"], stop_token_ids=np.array([1], np.int32),
             token_bytes=np.frombuffer(b"".join(table), np.uint8),
             token_bytes_offsets=np.cumsum([0] + [len(b) for b in table]).astype(np.int64))
    return d, attrs


def task_pack(rel, vocab=320, generate=False, **override):
    """A valid 3-item pack (pack_layout) with `override` replacing datasets/attributes (None drops
    a dataset), written to inputs/eval/`rel`."""
    d, attrs = pack_layout(generate, vocab)
    for k, v in override.items():
        (attrs if k in attrs else d)[k] = v
    path = os.path.join(IN, rel)
    with h5py.File(path, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = np.int64(v) if isinstance(v, int) else v
        for k, v in d.items():
            if v is None:
                continue
            if isinstance(v, list):  # until: a list of str, stored as UTF-8 strings
                f.create_dataset(k, data=np.array(v, dtype=object), dtype=h5py.string_dtype("utf-8"))
            else:
                f[k] = v
    return "inputs/eval/" + rel


def model_folder(rel, config_edit=None, drop=(), keep_only=None):
    """A copy of the fixture model with config.json edited or tensors dropped."""
    src = os.path.join(HERE, MODEL)
    dst = os.path.join(IN, rel)
    os.makedirs(dst)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    if config_edit:
        config_edit(cfg)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(src, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    keep = {k: v for k, v in header.items()
            if k not in drop and (keep_only is None or k in keep_only or k == "__metadata__")}
    out, parts, off = {}, [], 0
    for k, v in keep.items():
        if k == "__metadata__":
            out[k] = v
            continue
        b, e = v["data_offsets"]
        parts.append(data[b:e])
        out[k] = dict(v, data_offsets=[off, off + (e - b)])
        off += e - b
    h = json.dumps(out, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(parts))
    return "inputs/eval/" + rel


def generation_pack_cases():
    """generate_until packs: the byte table, until strings, max_gen_toks, prompts, the model."""
    short = [b""] + [f"<{t}>".encode() for t in range(1, 300)]  # 300 entries for vocab_size 320
    p = task_pack("gen_short_byte_table.h5", generate=True, token_bytes=np.frombuffer(b"".join(short), np.uint8),
                  token_bytes_offsets=np.cumsum([0] + [len(b) for b in short]).astype(np.int64))
    case("eval_gen_short_byte_table", f"eval {MODEL} --tasks {p}",
         [p, "token_bytes_offsets", "300 entries", "vocab_size 320"])
    p = task_pack("gen_empty_until.h5", generate=True, until=["\n\n", ""])
    case("eval_gen_empty_until", f"eval {MODEL} --tasks {p}", [p, "until", "is empty"])
    p = task_pack("gen_max_gen_toks_0.h5", generate=True, max_gen_toks=0)
    case("eval_gen_max_gen_toks_0", f"eval {MODEL} --tasks {p}", [p, "max_gen_toks", "must be > 0"])
    p = task_pack("gen_empty_prompt.h5", generate=True, context_offsets=np.array([0, 2, 2, 6], np.int64))
    case("eval_gen_empty_prompt", f"eval {MODEL} --tasks {p}", [p, "item 1", "empty prompt"])
    # Ids valid for both, but the model can produce ids 300..319 that the pack cannot decode.
    p = task_pack("gen_vocab_300.h5", generate=True, vocab=300)
    case("eval_gen_other_vocab", f"eval {MODEL} --tasks {p}",
         [p, "vocab_size", "the pack has 300 ids, the model 320", "--vocab-size 320"])
    p = task_pack("gen_no_room.h5", generate=True)
    case("eval_gen_max_length_no_room", f"eval {MODEL} --tasks {p} --max-length 8",
         [p, "max_gen_toks", "leave no room for the prompt in max_length 8"])


def main():
    shutil.rmtree(IN, ignore_errors=True)
    os.makedirs(IN)

    rel = "inputs/eval/not_hdf5.h5"
    with open(os.path.join(HERE, rel), "w") as f:
        f.write("this is not an HDF5 file\n")
    case("eval_pack_not_hdf5", f"eval {MODEL} --tasks {rel}", [rel, "not an HDF5 file"])

    p = task_pack("bad_offsets.h5", context_offsets=np.array([0, 4, 3, 6], np.int64))
    case("eval_pack_bad_offsets", f"eval {MODEL} --tasks {p}", [p, "context_offsets", "item 1: offsets decrease"])

    p = task_pack("missing_dataset.h5", choice_bytes=None)
    case("eval_pack_missing_dataset", f"eval {MODEL} --tasks {p}", [p, "choice_bytes", "missing dataset"])

    # Item 1 gets no choices: its two choices move to item 2.
    p = task_pack("empty_choices.h5", choice_offsets=np.array([0, 2, 2, 6], np.int64),
                  gold=np.array([0, 0, 3], np.int32))
    case("eval_pack_empty_choices", f"eval {MODEL} --tasks {p}", [p, "choice_offsets", "item 1: empty choices"])

    p = task_pack("empty_continuation.h5", continuation_offsets=np.array([0, 1, 1, 4, 5, 7, 8], np.int64))
    case("eval_pack_empty_continuation", f"eval {MODEL} --tasks {p}",
         [p, "continuation_tokens", "item 0 choice 1: empty continuation"])

    p = task_pack("token_out_of_vocab.h5", continuation_tokens=np.array([11, 12, 13, 14, 320, 16, 17, 18], np.int32))
    case("eval_pack_token_out_of_vocab", f"eval {MODEL} --tasks {p}",
         [p, "continuation_tokens", "item 1 choice 1: token id 320", "outside the vocabulary [0, 320)"])

    p = task_pack("gold_out_of_range.h5", gold=np.array([0, 2, 0], np.int32))
    case("eval_pack_gold_out_of_range", f"eval {MODEL} --tasks {p}", [p, "gold", "item 1: gold 2"])

    p = task_pack("wrong_version.h5", format_version=9)
    case("eval_pack_wrong_version", f"eval {MODEL} --tasks {p}", [p, "format_version", "unsupported version 9"])

    # Ids valid for the pack's vocabulary but beyond the model's 320 embeddings.
    p = task_pack("vocab_bigger_than_model.h5", vocab=50000)
    case("eval_pack_vocab_bigger_than_model", f"eval {MODEL} --tasks {p}", [p, "vocab_size", "another tokenizer"])

    case("eval_pack_missing", f"eval {MODEL} --tasks inputs/eval/no_such_pack.h5",
         ["inputs/eval/no_such_pack.h5", "no such file"])

    # The model type is refused before any tensor is needed: one tensor keeps the folder small.
    m = model_folder("gpt2_model", lambda c: c.update(model_type="gpt2"), keep_only=("model.norm.weight",))
    case("eval_model_gpt2", f"eval {m} --tasks {PACK}", [m, "model_type", "'gpt2' is not supported"])

    m = model_folder("missing_lm_head", drop=("lm_head.weight",))
    case("eval_model_missing_tensor", f"eval {m} --tasks {PACK}", [m, "lm_head.weight", "missing"])

    rel = "inputs/eval/probe_bad_label.h5"
    with h5py.File(os.path.join(HERE, rel), "w") as f:
        for k, v in {"format": "mergesweep-probe-pack", "name": "p", "tokenizer": "fixture"}.items():
            f.attrs[k] = v
        f.attrs["format_version"] = np.int64(1)
        f.attrs["vocab_size"] = np.int64(320)
        f["tokens"] = np.array([5, 6, 7, 8], np.int32)
        f["offsets"] = np.array([0, 1, 2, 3, 4], np.int64)
        f["labels"] = np.array([0, 1, 2, 0], np.int32)
        f["split"] = np.array([0, 1, 2, 0], np.uint8)
        f.create_dataset("label_names", data=np.array(["a", "b"], dtype=object), dtype=h5py.string_dtype("utf-8"))
    case("eval_probe_bad_label", f"eval {MODEL} --probes {rel}", [rel, "labels", "sentence 2: label 2"])

    generation_pack_cases()

    case("eval_bad_layers", f"eval {MODEL} --tasks {PACK} --layers 0,x", ["--layers", "'x' is not a layer"])
    case("eval_bad_json_folder", f"eval {MODEL} --tasks {PACK} --limit 2 --json {{tmp}}/no/such/dir/r.json",
         ["r.json", "--json", "does not exist"], absent=["{tmp}/no/such/dir/r.json"])

    # several models (eval A B ...): what a comparison refuses
    other = "../fixtures/lmeval_fewshot/model"  # another tokenizer with the same vocab_size (320)
    case("eval_compare_other_tokenizer", f"eval {MODEL} {other} --tasks {PACK}",
         [f"{other}/tokenizer.json", "MODEL 2", "token id 260", "must share a tokenizer"])
    case("eval_compare_missing_model", f"eval {MODEL} inputs/eval/no_such_model --tasks {PACK}",
         ["MODEL 2", "inputs/eval/no_such_model", "no such file"])
    case("eval_compare_probes", f"eval {MODEL} {MODEL} --tasks {PACK} --probes x.h5", ["--probes", "on its own"])

    with open(os.path.join(HERE, "cases-eval.json"), "w") as f:
        json.dump({"cases": CASES}, f, indent=1)
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()
