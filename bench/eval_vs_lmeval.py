#!/usr/bin/env python3
"""`mergesweep eval` against `lm_eval` itself: same model, same local tasks, same machine, one run,
whole-process wall time (start-up and model load included, as a user sees them).

  /tmp/lmeval/bin/python bench/eval_vs_lmeval.py --mergesweep build/bin/mergesweep [--items 500]

Needs a venv with lm-eval (and its accelerate, datasets), transformers, tokenizers, torch: the
reference tools, never the tests. It
1. writes two local lm-eval tasks over generated text: a 0-shot multiple-choice task (`--items`
   documents) and an MMLU-style 5-shot task (a description and the dev split's first 5 documents
   as examples: lm-eval's `first_n` sampler, as MMLU uses its dev split; `--fewshot-items`);
2. trains a byte-level BPE tokenizer on the text and saves a random Llama of about 100M parameters
   (`--hidden`, `--layers`, `--ffn`) with transformers;
3. exports both tasks as mergesweep packs with analysis/export_lmeval_task.py (lm-eval's own
   requests);
4. runs `lm_eval --model hf --batch_size 16` (auto first probes a full-length batch, which on a
   CPU costs minutes) and `mergesweep eval` (no thread variables set: the
   defaults a user gets) on each task, plus `mergesweep eval --per-item` (the reference path) and,
   when given, a baseline binary (`--baseline`, e.g. the previous release);
5. prints wall time, request tokens/s (sum of context + continuation tokens over lm-eval's
   requests) and the ratio to lm-eval, and checks that acc and acc_norm agree.
`--threads-sweep` also times `mergesweep eval` under explicit OMP_NUM_THREADS/OPENBLAS_NUM_THREADS
settings and reports how the default compares with the best of them.
On a GPU (bench/gpu/check.sh B): `--model DIR` evaluates an existing model folder (made by
bench/gpu/gpu_bench.py model) instead of training one, `--device cuda --dtype bfloat16` runs both
tools there in that dtype, `--lm-eval-batch-size auto`, and `--no-per-item` leaves out the
reference path.
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
{fewshot}output_type: multiple_choice
doc_to_text: question
doc_to_choice: choices
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
"""
FEWSHOT = """fewshot_config:
  sampler: first_n
num_fewshot: 5
description: "The following are multiple choice questions about word games.\\n\\n"
"""


def multiple_choice_doc(i, rng):
    return {"id": i, "question": f"Question: {common.random_words(rng, 8, 24)}\nAnswer:",
            "choices": [common.random_words(rng, 1, 4) for _ in range(4)], "gold": rng.randrange(4)}


def request_tokens(pack):
    import h5py

    with h5py.File(pack) as f:
        ctx_off, ch_off = f["context_offsets"][:], f["choice_offsets"][:]
        cont_off = f["continuation_offsets"][:]
    total = 0
    for i in range(len(ctx_off) - 1):
        n_ctx = int(ctx_off[i + 1] - ctx_off[i])
        for c in range(int(ch_off[i]), int(ch_off[i + 1])):
            total += n_ctx + int(cont_off[c + 1] - cont_off[c])
    return total


def run_lm_eval(work, model, task, batch_size, device, dtype):
    out = os.path.join(work, "out-" + task)
    seconds = common.time_lm_eval(work, model, task, batch_size, out, device=device, dtype=dtype)
    res_file = sorted(glob.glob(os.path.join(out, "**", "results_*.json"), recursive=True))[-1]
    with open(res_file) as f:
        res = json.load(f)["results"][task]
    return seconds, {"acc": res["acc,none"], "acc_norm": res["acc_norm,none"]}


def run_mergesweep(binary, work, model, pack, extra=(), env_extra=None):
    out = os.path.join(work, "ms.json")
    seconds = common.time_mergesweep_eval(binary, model, pack, ["--json", out, "-q", *extra], env_extra)
    with open(out) as f:
        res = next(iter(json.load(f)["results"].values()))
    return seconds, {"acc": res["acc"], "acc_norm": res["acc_norm"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mergesweep", required=True)
    ap.add_argument("--baseline", help="another mergesweep binary to time on the same tasks")
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--fewshot-items", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--ffn", type=int, default=2560)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--work", help="scratch folder (default: a new temporary one)")
    ap.add_argument("--threads-sweep", action="store_true")
    ap.add_argument("--lm-eval-batch-size", default="16",
                    help="lm_eval --batch_size (auto probes a full max_length batch first, minutes on a CPU)")
    ap.add_argument("--model", help="an existing HF model folder to evaluate (default: train a random one)")
    ap.add_argument("--device", default="cpu", help="both tools' device (cpu, cuda)")
    ap.add_argument("--dtype", default="float32", help="both tools' dtype (float32, bfloat16)")
    ap.add_argument("--no-per-item", action="store_true", help="leave out mergesweep eval --per-item")
    args = ap.parse_args()
    ms_opts = ["--device", args.device, "--dtype", args.dtype]
    binary = os.path.abspath(args.mergesweep)
    work = args.work or tempfile.mkdtemp(prefix="ms-eval-vs-lmeval-")
    os.makedirs(work, exist_ok=True)
    rng = random.Random(11)
    texts = []
    for name, n, fewshot in (("bench_0shot", args.items, False), ("bench_5shot", args.fewshot_items, True)):
        for d in common.write_task(work, name, TASK_YAML, multiple_choice_doc, n, 5, rng,
                                   fewshot=FEWSHOT if fewshot else ""):
            texts += [d["question"]] + [" " + c for c in d["choices"]]
    if args.model:
        model = os.path.abspath(args.model)
        print(f"model: {model}; {args.dtype} on {args.device}; {os.cpu_count()} cores; work {work}")
    else:
        model = os.path.join(work, "model")
        nparams = common.save_random_llama(model, texts, args.vocab, args.hidden, args.ffn, args.layers,
                                           args.hidden // 64, args.hidden // 64)
        print(f"model: random Llama, {nparams / 1e6:.1f}M parameters, float32; {os.cpu_count()} cores; work {work}")
    rows = []
    for task in ("bench_0shot", "bench_5shot"):
        pack = os.path.join(work, task + ".h5")
        common.export_pack(os.path.join(work, task + ".yaml"), model, pack)
        tokens = request_tokens(pack)
        runs = [(f"lm_eval --batch_size {args.lm_eval_batch_size}",
                 run_lm_eval(work, model, task, args.lm_eval_batch_size, args.device, args.dtype)),
                ("mergesweep eval", run_mergesweep(binary, work, model, pack, ms_opts))]
        if not args.no_per_item:
            runs.append(("mergesweep eval --per-item", run_mergesweep(binary, work, model, pack, ["--per-item", *ms_opts])))
        if args.baseline:
            runs.append(("baseline mergesweep eval", run_mergesweep(os.path.abspath(args.baseline), work, model, pack, ms_opts)))
        if args.threads_sweep:
            for omp, blas in ((1, 1), (1, 2), (2, 1), (2, 2)):
                env = {"OMP_NUM_THREADS": str(omp), "OPENBLAS_NUM_THREADS": str(blas)}
                runs.append((f"mergesweep eval OMP={omp} BLAS={blas}", run_mergesweep(binary, work, model, pack, ms_opts, env)))
        ref_s, ref_m = runs[0][1]
        for label, (s, m) in runs:
            same = abs(m["acc"] - ref_m["acc"]) < 1e-12 and abs(m["acc_norm"] - ref_m["acc_norm"]) < 1e-12
            rows.append((task, label, s, tokens / s, ref_s / s, m["acc"], m["acc_norm"], "yes" if same else "NO"))
    print("\n| task | run | wall s | request tokens/s | speed-up vs lm_eval | acc | acc_norm | same acc/acc_norm as lm_eval |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.0f} | {r[4]:.2f}x | {r[5]:.4f} | {r[6]:.4f} | {r[7]} |")
    if args.threads_sweep:
        for task in ("bench_0shot", "bench_5shot"):
            mine = [r for r in rows if r[0] == task]
            default = next(r[2] for r in mine if r[1] == "mergesweep eval")
            best = min(r[2] for r in mine if "OMP=" in r[1])
            print(f"{task}: default threads {default:.1f} s, best explicit {best:.1f} s "
                  f"({'within' if default <= 1.1 * best else 'NOT within'} 10%)")


if __name__ == "__main__":
    main()
