#!/usr/bin/env python3
"""Write the testbed's task packs out as local lm-eval tasks (for bench/sweep_bench.sh).

A testbed pack holds token ids only; the testbed tokenizer is char-level (WordLevel, one id per
character, no BOS), so the item texts are the ids decoded through tokenizer.json. Each pack
becomes DIR/<name>.jsonl (question, choices, gold) + DIR/<name>.yaml (multiple_choice, lm-eval's
default target delimiter " "), and the decoded texts are re-encoded and checked against the
pack's ids, so lm-eval scores exactly the pack's (context, continuation) token pairs.

  python bench/testbed_lmeval_tasks.py --tokenizer TESTBED/base/tokenizer.json --out DIR TESTBED/tasks/*.h5

Prints the lm-eval task names, comma-separated (for lm_eval --tasks).
"""
import argparse
import json
import os
import sys

import h5py

YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: question
doc_to_choice: choices
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True, help="the testbed's tokenizer.json")
    ap.add_argument("--out", required=True, help="folder for the task YAMLs and JSONL files")
    ap.add_argument("packs", nargs="+", help="testbed task packs (.h5)")
    args = ap.parse_args()

    with open(args.tokenizer, encoding="utf-8") as f:
        tok = json.load(f)
    if tok["model"]["type"] != "WordLevel":
        sys.exit(f"testbed_lmeval_tasks: {args.tokenizer}: model {tok['model']['type']}; expected the char-level WordLevel")
    vocab = tok["model"]["vocab"]
    id2ch = {i: c for c, i in vocab.items()}

    def decode(ids):
        s = "".join(id2ch[int(i)] for i in ids)
        if any(len(id2ch[int(i)]) != 1 for i in ids):
            sys.exit(f"testbed_lmeval_tasks: a special token in an item: {ids!r}")
        return s

    def encode(s):
        return [vocab[c] for c in s]

    os.makedirs(args.out, exist_ok=True)
    names = []
    for path in args.packs:
        with h5py.File(path, "r") as f:
            name = f.attrs["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            ctx, ctx_off = f["context_tokens"][:], f["context_offsets"][:]
            cont, cont_off = f["continuation_tokens"][:], f["continuation_offsets"][:]
            ch_off, gold = f["choice_offsets"][:], f["gold"][:]
        lm_name = "msbench_" + name
        data = os.path.abspath(os.path.join(args.out, lm_name + ".jsonl"))
        with open(data, "w", encoding="utf-8") as out:
            for i in range(len(gold)):
                c_ids = ctx[ctx_off[i]:ctx_off[i + 1]]
                question = decode(c_ids)
                choices = []
                for j in range(ch_off[i], ch_off[i + 1]):
                    ids = cont[cont_off[j]:cont_off[j + 1]]
                    text = decode(ids)
                    if not text.startswith(" ") or question.endswith((" ", "\n")):
                        sys.exit(f"testbed_lmeval_tasks: {path}: item {i}: not a ' ' + choice continuation")
                    choices.append(text[1:])
                # lm-eval: context = question, continuation = " " + choice; char-level, so the
                # joined string splits back into exactly the pack's ids.
                assert encode(question) == [int(t) for t in c_ids]
                for j, c in zip(range(ch_off[i], ch_off[i + 1]), choices):
                    assert encode(" " + c) == [int(t) for t in cont[cont_off[j]:cont_off[j + 1]]]
                out.write(json.dumps({"id": i, "question": question, "choices": choices, "gold": int(gold[i])}) + "\n")
        with open(os.path.join(args.out, lm_name + ".yaml"), "w", encoding="utf-8") as y:
            y.write(YAML.format(name=lm_name, data=data))
        names.append(lm_name)
    print(",".join(names))


if __name__ == "__main__":
    main()
