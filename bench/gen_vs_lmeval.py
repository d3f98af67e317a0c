#!/usr/bin/env python3
"""Greedy generation (generate_until): `mergesweep eval` against `lm_eval --model hf` itself, same
model, same local task, same machine, one run, whole-process wall time (start-up and model load
included, as a user sees them).

  /tmp/lmeval/bin/python bench/gen_vs_lmeval.py --mergesweep build/bin/mergesweep [--items 200]

Needs a venv with lm-eval (and its accelerate, datasets), transformers, tokenizers, torch: the
reference tools, never the tests. It
1. writes a gsm8k-style local lm-eval task over generated text: a 2-shot prompt (lm-eval's
   `first_n` sampler over a dev split), `until` ["\\n\\n", "Question:"], `--max-gen-toks` tokens;
2. trains a byte-level BPE tokenizer on the text and saves two random Llamas with transformers:
   "small" (the testbed's shape: hidden 64, 2 layers, 4 heads, 2 KV heads) and one of about 100M
   parameters (`--hidden`, `--layers`, `--ffn`);
3. exports the task as a generate_until pack with analysis/export_lmeval_task.py (lm-eval's own
   requests, the byte table checked against the tokenizer's decode);
4. runs `lm_eval --model hf --batch_size B --log_samples` and `mergesweep eval --generations`
   (thread variables unset: the defaults a user gets) on each model;
5. prints wall time, generated tokens/s (mergesweep's generated token count, the same work for
   both: lm-eval generates at least those tokens) and the speed-up over lm_eval, and how many
   responses are identical to lm-eval's (greedy on a random float32 model: batching may flip a
   near-tie now and then, in either tool).
"""
import argparse
import glob
import json
import os
import random
import tempfile

import lmeval_bench_common as common  # bench/lmeval_bench_common.py: tasks, models, timing

TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    dev: {dev}
    test: {test}
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
num_fewshot: 2
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: " {{{{answer}}}}"
target_delimiter: ""
generation_kwargs:
  until: ["\\n\\n", "Question:"]
  do_sample: false
  max_gen_toks: {max_gen_toks}
metric_list:
  - metric: exact_match
metadata:
  version: 1.0
"""


def generation_doc(i, rng):
    return {"id": i, "question": common.random_words(rng, 8, 24), "answer": common.random_words(rng, 1, 4)}


def build_models(work, texts, args):
    """The "small" (testbed-shaped) and "100M" random Llamas: {name: (folder, parameter count)}."""
    shapes = {"small": (64, 176, 2, 4, 2), "100M": (args.hidden, args.ffn, args.layers, args.hidden // 64, args.hidden // 64)}
    out = {}
    for name, (hidden, ffn, layers, heads, kv) in shapes.items():
        folder = os.path.join(work, "model-" + name)
        out[name] = (folder, common.save_random_llama(folder, texts, args.vocab, hidden, ffn, layers, heads, kv))
    return out


def run_lm_eval(work, model, task, batch_size):
    out = os.path.join(work, "out-" + os.path.basename(model))
    seconds = common.time_lm_eval(work, model, task, batch_size, out, ["--log_samples"])
    samples = sorted(glob.glob(os.path.join(out, "**", f"samples_{task}_*.jsonl"), recursive=True))[-1]
    by_doc = {}
    with open(samples) as f:
        for line in f:
            s = json.loads(line)
            by_doc[s["doc_id"]] = s["resps"][0][0]
    return seconds, by_doc


def run_mergesweep(binary, work, model, pack, batch_tokens):
    gens = os.path.join(work, "gens-" + os.path.basename(model) + ".jsonl")
    seconds = common.time_mergesweep_eval(binary, model, pack,
                                          ["--generations", gens, "-q", "--batch-tokens", str(batch_tokens)])
    with open(gens) as f:
        lines = [json.loads(line) for line in f]
    return seconds, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mergesweep", required=True)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--max-gen-toks", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--ffn", type=int, default=2560)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--models", default="small,100M", help="which models to run (small, 100M)")
    ap.add_argument("--lm-eval-batch-size", type=int, default=16)
    ap.add_argument("--batch-tokens", type=int, default=8192, help="mergesweep eval --batch-tokens")
    ap.add_argument("--exporter", default=common.EXPORTER)
    ap.add_argument("--work", help="scratch folder (default: a new temporary one)")
    args = ap.parse_args()
    binary = os.path.abspath(args.mergesweep)
    work = args.work or tempfile.mkdtemp(prefix="ms-gen-vs-lmeval-")
    os.makedirs(work, exist_ok=True)
    task = "bench_gen"
    items = common.write_task(work, task, TASK_YAML, generation_doc, args.items, 2, random.Random(13),
                              max_gen_toks=args.max_gen_toks)
    texts = [d["question"] for d in items] + [" " + d["answer"] for d in items]
    models = build_models(work, texts, args)
    print(f"{os.cpu_count()} cores; {args.items} items, max_gen_toks {args.max_gen_toks}; work {work}")
    rows = []
    for name in args.models.split(","):
        model, nparams = models[name]
        pack = os.path.join(work, f"{task}-{name}.h5")
        common.export_pack(os.path.join(work, task + ".yaml"), model, pack, args.exporter)
        ref_s, ref = run_lm_eval(work, model, task, args.lm_eval_batch_size)
        ms_s, gens = run_mergesweep(binary, work, model, pack, args.batch_tokens)
        generated = sum(len(g["tokens"]) for g in gens)
        doc_ids = [g.get("doc_id", g["item"]) for g in gens]
        same = sum(1 for d, g in zip(doc_ids, gens) if ref.get(d) == g["text"])
        rows.append((name, nparams, f"lm_eval --batch_size {args.lm_eval_batch_size}", ref_s, generated / ref_s, 1.0, ""))
        rows.append((name, nparams, f"mergesweep eval --batch-tokens {args.batch_tokens}", ms_s, generated / ms_s,
                     ref_s / ms_s, f"{same}/{len(gens)}"))
    print("\n| model | parameters | run | wall s | generated tokens/s | speed-up vs lm_eval | responses identical |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1] / 1e6:.2f}M | {r[2]} | {r[3]:.1f} | {r[4]:.0f} | {r[5]:.2f}x | {r[6]} |")


if __name__ == "__main__":
    main()
