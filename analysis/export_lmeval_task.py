#!/usr/bin/env python3
"""Turn an lm-eval task into a mergesweep task pack (HDF5, docs/formats.md): multiple_choice
(also with per-choice contexts, lm-eval's multiple_input form such as winogrande) and
loglikelihood_rolling (perplexity tasks: lm-eval's own rolling windows, analysis/lmeval_rolling.py).

The requests are lm-eval's own: the task builds its instances (construct_requests, few-shot
contexts, target delimiter), and lm-eval's own HFLM code splits each (context, continuation)
into token ids (_encode_pair: trailing whitespace of the context moves to the continuation,
encode(context + continuation)[len(encode(context)):], empty context -> [prefix token]). Only the
model is missing: HFLM's tokenizer-side methods run on an instance that holds a tokenizer, and the
token lists handed to _loglikelihood_tokens are captured instead of scored.

Needs lm-eval and transformers (a separate venv, never the project's interpreter):
  python analysis/export_lmeval_task.py --task arc_easy --tokenizer meta-llama/Llama-3.2-1B --out arc_easy.h5
  python analysis/export_lmeval_task.py --task path/to/task.yaml --tokenizer ./model --out task.h5
  python analysis/export_lmeval_task.py --task wikitext --tokenizer ./model --max-length 2048 --out wikitext.h5
"""
import argparse
import collections
import os
import sys

import h5py
import numpy as np


def load_task(task_arg, include_path):
    from lm_eval.tasks import TaskManager, get_task_dict

    name = task_arg
    if task_arg.endswith((".yaml", ".yml")):
        import yaml

        include_path = include_path or os.path.dirname(os.path.abspath(task_arg))
        with open(task_arg, encoding="utf-8") as f:
            # lm-eval YAMLs may carry !function tags; only the task name is needed here.
            yaml.add_multi_constructor("!", lambda loader, suffix, node: None, Loader=yaml.SafeLoader)
            name = yaml.safe_load(f)["task"]
    tm = TaskManager(include_path=include_path) if include_path else TaskManager()
    tasks = get_task_dict([name], tm)
    if len(tasks) != 1:
        sys.exit(f"export_lmeval_task: {task_arg}: a group of {len(tasks)} tasks; export its subtasks one by one")
    (task_name, task), = tasks.items()
    return task_name, task


def tokenizer_side_hflm(tokenizer_path, add_bos_token, prefix_token_id):
    """An HFLM that has a tokenizer but no model: enough for lm-eval's request encoding."""
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    lm = object.__new__(HFLM)
    lm.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    lm.backend = "causal"
    lm.add_bos_token = add_bos_token
    lm.custom_prefix_token_id = prefix_token_id
    lm.enable_thinking = False
    captured = []
    lm._loglikelihood_tokens = lambda requests, disable_tqdm=False, **kw: captured.extend(requests) or [
        (0.0, False)
    ] * len(requests)
    return lm, captured


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, help="lm-eval task name, or a task YAML file")
    ap.add_argument("--include-path", help="folder of extra task YAMLs (default: the YAML's folder)")
    ap.add_argument("--tokenizer", required=True, help="HF tokenizer name or folder (the model's)")
    ap.add_argument("--out", required=True, help="task pack to write (.h5)")
    ap.add_argument("--name", help="task name in results (default: the lm-eval task name)")
    ap.add_argument("--num-fewshot", type=int, default=None, help="few-shot examples (default: the task's)")
    ap.add_argument("--fewshot-seed", type=int, default=1234, help="lm-eval's default few-shot seed")
    ap.add_argument("--limit", type=int, default=None, help="first N documents only")
    ap.add_argument("--add-bos-token", action="store_true", default=None, help="as lm-eval's add_bos_token=True")
    ap.add_argument("--prefix-token-id", type=int, default=None, help="as lm-eval's prefix_token_id")
    ap.add_argument("--vocab-size", type=int, default=None,
                    help="ids must be below this (default: len(tokenizer)); use the model's vocab_size if larger")
    ap.add_argument("--max-gen-toks", type=int, default=256,
                    help="generate_until: max_gen_toks when the task sets none (lm-eval's HFLM default 256)")
    ap.add_argument("--stop-token-ids", type=int, nargs="+", default=None,
                    help="generate_until: ids that end a generation (default: the model's generation_config eos)")
    ap.add_argument("--max-length", type=int, default=None,
                    help="loglikelihood_rolling: the window length, lm-eval's max_length (the model's "
                         "max_position_embeddings unless lm-eval is given max_length); the engine must score with it")
    return ap.parse_args(argv)


def prepare_task(args):
    """The lm-eval task with its requests built; refuses what a pack cannot hold."""
    task_name, task = load_task(args.task, args.include_path)
    if task.OUTPUT_TYPE not in ("multiple_choice", "loglikelihood_rolling", "generate_until"):
        sys.exit(f"export_lmeval_task: {task_name}: output_type {task.OUTPUT_TYPE!r} is not packed")
    if task.OUTPUT_TYPE == "multiple_choice" and "acc_mutual_info" in task._metric_fn_list:
        sys.exit(f"export_lmeval_task: {task_name}: acc_mutual_info needs unconditional requests; not packed")
    unsupported = sorted(set(task._metric_fn_list) - {"acc", "acc_norm", "acc_bytes", "exact_match"})
    if task.OUTPUT_TYPE == "multiple_choice" and unsupported:
        sys.exit(f"export_lmeval_task: {task_name}: metrics {unsupported} are corpus-level aggregations the engine "
                 "does not compute (it reports acc, acc_norm, acc_bytes, exact_match); not packed")
    if args.num_fewshot is not None:
        task.set_config(key="num_fewshot", value=args.num_fewshot)
    if hasattr(task, "set_fewshot_seed"):
        task.set_fewshot_seed(seed=args.fewshot_seed)
    task.build_all_requests(limit=args.limit, rank=0, world_size=1)
    return task_name, task


def requests_by_doc(task, lm, captured):
    """lm-eval's own (context, continuation) token lists, grouped by document, choices in order."""
    instances = task.instances
    lm.loglikelihood(instances, disable_tqdm=True)
    assert len(captured) == len(instances)
    by_doc = collections.OrderedDict()
    for inst, (_, ctx_enc, cont_enc) in zip(instances, captured):
        by_doc.setdefault(inst.doc_id, []).append((inst, ctx_enc, cont_enc))
    for reqs in by_doc.values():
        reqs.sort(key=lambda r: r[0].idx)
    return by_doc


def gold_index(task, doc, doc_id, choices):
    """The gold index exactly as lm-eval's process_results derives it (multiple_input: doc_to_text)."""
    g = task.doc_to_text(doc) if getattr(task, "multiple_input", 0) else task.doc_to_target(doc)
    if isinstance(g, list):
        sys.exit(f"export_lmeval_task: doc {doc_id}: several gold answers (multiple_target) are not packed")
    if isinstance(g, str):
        g = choices.index(g) if g in choices else -1
    if not 0 <= g < len(choices):
        sys.exit(f"export_lmeval_task: doc {doc_id}: gold {g} is not a choice index")
    return g


def pack_arrays(task, by_doc, vocab):
    """The pack's flat arrays (docs/formats.md, "Task packs") from the grouped requests. With
    per-choice contexts (multiple_input) each choice's context goes to choice_context_tokens and the
    item contexts stay empty; choice_chars/bytes are always the doc_to_choice strings' lengths."""
    per_choice = bool(getattr(task, "multiple_input", 0))
    a = {k: [] for k in ("gold", "context_tokens", "continuation_tokens", "choice_chars", "choice_bytes",
                         "choice_text", "doc_id")}
    a.update(context_offsets=[0], choice_offsets=[0], continuation_offsets=[0])
    if per_choice:
        a.update(choice_context_tokens=[], choice_context_offsets=[0])
    for doc_id, reqs in by_doc.items():
        doc = reqs[0][0].doc
        choices = task.doc_to_choice(doc)
        if len(choices) != len(reqs):
            sys.exit(f"export_lmeval_task: doc {doc_id}: {len(reqs)} requests for {len(choices)} choices")
        ctx0 = [] if per_choice else list(reqs[0][1])
        for inst, ctx_enc, cont_enc in reqs:
            if not per_choice and list(ctx_enc) != ctx0:
                sys.exit(f"export_lmeval_task: doc {doc_id}: choices have different context tokens")
            if len(cont_enc) == 0:
                sys.exit(f"export_lmeval_task: doc {doc_id} choice {inst.idx}: empty continuation after tokenization")
        a["gold"].append(gold_index(task, doc, doc_id, choices))
        a["doc_id"].append(doc_id)
        a["context_tokens"].extend(ctx0)
        a["context_offsets"].append(len(a["context_tokens"]))
        for (_, ctx_enc, cont_enc), choice in zip(reqs, choices):
            if per_choice:
                a["choice_context_tokens"].extend(ctx_enc)
                a["choice_context_offsets"].append(len(a["choice_context_tokens"]))
            a["continuation_tokens"].extend(cont_enc)
            a["continuation_offsets"].append(len(a["continuation_tokens"]))
            a["choice_chars"].append(len(choice))                   # code points, as lm-eval's len(str)
            a["choice_bytes"].append(len(choice.encode("utf-8")))
            a["choice_text"].append(choice)
        a["choice_offsets"].append(len(a["choice_chars"]))
    bad = [t for t in a["context_tokens"] + a["continuation_tokens"] + a.get("choice_context_tokens", [])
           if not 0 <= t < vocab]
    if bad:
        sys.exit(f"export_lmeval_task: token id {bad[0]} outside [0, {vocab}); pass --vocab-size")
    return a


def task_version(task):
    try:
        return str(task.VERSION if task.VERSION is not None else task.config.metadata.get("version", ""))
    except Exception:
        return str((getattr(task.config, "metadata", None) or {}).get("version", ""))


# Every dataset a log-likelihood pack may hold, with its type (docs/formats.md); optional ones are
# written when present.
DATASETS = (("gold", np.int32), ("context_tokens", np.int32), ("context_offsets", np.int64),
            ("choice_offsets", np.int64), ("continuation_tokens", np.int32), ("continuation_offsets", np.int64),
            ("choice_chars", np.int64), ("choice_bytes", np.int64), ("choice_context_tokens", np.int32),
            ("choice_context_offsets", np.int64), ("item_doc", np.int64), ("doc_words", np.int64),
            ("doc_bytes", np.int64), ("doc_id", np.int64))


def write_pack(out, attrs, a):
    """Writes under a temporary name in the same folder, then renames."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), "." + os.path.basename(out) + ".tmp")
    with h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        for k, dtype in DATASETS:
            if k in a:
                f[k] = np.asarray(a[k], dtype=dtype)
        if "choice_text" in a:
            f.create_dataset("choice_text", data=np.array(a["choice_text"], dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
    os.replace(tmp, out)


def main(argv=None):
    args = parse_args(argv)
    task_name, task = prepare_task(args)
    lm, captured = tokenizer_side_hflm(args.tokenizer, args.add_bos_token, args.prefix_token_id)
    if task.OUTPUT_TYPE == "generate_until":  # analysis/lmeval_generation.py, beside this script
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import lmeval_generation
        return lmeval_generation.export(args, task_name, task, lm, task_version(task))
    vocab = args.vocab_size or len(lm.tokenizer)
    attrs = {"format": "mergesweep-task-pack", "format_version": np.int64(2), "output_type": task.OUTPUT_TYPE,
             "name": args.name or task_name, "source_task": task_name, "task_version": task_version(task),
             "tokenizer": args.tokenizer, "num_fewshot": np.int64(task.config.num_fewshot or 0),
             "vocab_size": np.int64(vocab)}
    if task.OUTPUT_TYPE == "loglikelihood_rolling":  # analysis/lmeval_rolling.py, beside this script
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import lmeval_rolling
        a = lmeval_rolling.pack_arrays(task, lm, captured, args.max_length, vocab)
        attrs["max_length"] = np.int64(args.max_length)
    else:
        a = pack_arrays(task, requests_by_doc(task, lm, captured), vocab)
    write_pack(args.out, attrs, a)
    print(f"export_lmeval_task: {task_name}: {len(a['gold'])} items, {len(a['continuation_offsets']) - 1} choices "
          f"-> {args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
