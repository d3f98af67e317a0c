#!/usr/bin/env python3
"""Scoring throughput: `mergesweep eval` against HF transformers driven the way lm-eval's HF
backend drives it (requests sorted by total length, longest first; fixed batch size; right
padding, no attention mask; log_softmax over the whole [B, T, V] logits; gather the continuation
positions), same model, same requests, one run each. Needs a venv with torch, transformers, h5py
(e.g. /tmp/lmeval/bin/python); not part of the tests.

  /tmp/lmeval/bin/python bench/eval_bench.py --mergesweep build/bin/mergesweep [--items 64]

Prints request tokens/s (sum over requests of len(ctx) + len(cont), what lm-eval processes) for
both and the ratio; also the largest per-choice log-likelihood difference between the two.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import h5py
import numpy as np
import torch


def make_model(path, args):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.ffn,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      num_key_value_heads=args.heads, max_position_embeddings=2048, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).to(torch.float32).eval()
    model.save_pretrained(path, safe_serialization=True)
    return model, sum(p.numel() for p in model.parameters())


def make_requests(args):
    rng = np.random.default_rng(1)
    items = []
    for _ in range(args.items):
        ctx = rng.integers(3, args.vocab, int(rng.integers(args.ctx // 2, args.ctx * 3 // 2))).tolist()
        choices = [rng.integers(3, args.vocab, int(rng.integers(1, args.cont + 1))).tolist() for _ in range(4)]
        items.append((ctx, choices, int(rng.integers(0, 4))))
    return items


def write_pack(path, items, vocab):
    ctx_tok, ctx_off, ch_off, cont_tok, cont_off, chars = [], [0], [0], [], [0], []
    for ctx, choices, _ in items:
        ctx_tok += ctx
        ctx_off.append(len(ctx_tok))
        for c in choices:
            cont_tok += c
            cont_off.append(len(cont_tok))
            chars.append(len(c))
        ch_off.append(len(chars))
    with h5py.File(path, "w") as f:
        for k, v in {"format": "mergesweep-task-pack", "name": "bench", "source_task": "bench",
                     "task_version": "0", "tokenizer": "random"}.items():
            f.attrs[k] = v
        f.attrs["format_version"] = np.int64(1)
        f.attrs["num_fewshot"] = np.int64(0)
        f.attrs["vocab_size"] = np.int64(vocab)
        f["gold"] = np.array([g for _, _, g in items], np.int32)
        f["context_tokens"] = np.array(ctx_tok, np.int32)
        f["context_offsets"] = np.array(ctx_off, np.int64)
        f["choice_offsets"] = np.array(ch_off, np.int64)
        f["continuation_tokens"] = np.array(cont_tok, np.int32)
        f["continuation_offsets"] = np.array(cont_off, np.int64)
        f["choice_chars"] = np.array(chars, np.int64)
        f["choice_bytes"] = np.array(chars, np.int64)


@torch.no_grad()
def hf_like_lmeval(model, items, batch_size):
    reqs = []
    for i, (ctx, choices, _) in enumerate(items):
        for c, cont in enumerate(choices):
            reqs.append(((i, c), ctx, cont))
    reqs.sort(key=lambda r: -(len(r[1]) + len(r[2])))  # lm-eval: longest first
    out = {}
    for s in range(0, len(reqs), batch_size):
        batch = reqs[s:s + batch_size]
        inps = [(ctx + cont)[-2049:][:-1] for _, ctx, cont in batch]
        width = max(len(x) for x in inps)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        for r, x in enumerate(inps):
            ids[r, :len(x)] = torch.tensor(x)
        logp = torch.nn.functional.log_softmax(model(ids).logits, dim=-1)  # [B, T, V]
        for r, (key, ctx, cont) in enumerate(batch):
            n, k = len(inps[r]), len(cont)
            sl = logp[r, n - k:n]
            tgt = torch.tensor(cont)
            out[key] = (float(sl.gather(1, tgt[:, None]).sum()), bool((sl.argmax(-1) == tgt).all()))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mergesweep", required=True)
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=128, help="mean context tokens")
    ap.add_argument("--cont", type=int, default=8, help="max continuation tokens")
    ap.add_argument("--batch-size", type=int, default=8, help="HF batch size (lm-eval --batch_size)")
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = tempfile.mkdtemp(prefix="ms-eval-bench-")
    model, nparams = make_model(os.path.join(tmp, "model"), args)
    items = make_requests(args)
    write_pack(os.path.join(tmp, "pack.h5"), items, args.vocab)
    req_tokens = sum(len(ctx) + len(c) for ctx, chs, _ in items for c in chs)
    print(f"model: random llama {nparams / 1e6:.0f}M params; {args.items} items x 4 choices, "
          f"{req_tokens} request tokens; {args.threads} threads")

    t0 = time.perf_counter()
    ref = hf_like_lmeval(model, items, args.batch_size)
    t_hf = time.perf_counter() - t0

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    subprocess.run([args.mergesweep, "eval", os.path.join(tmp, "model"), "--tasks", os.path.join(tmp, "pack.h5"),
                    "--json", os.path.join(tmp, "r.json"), "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    t_ms_total = time.perf_counter() - t0
    with open(os.path.join(tmp, "r.json")) as f:
        t_ms = json.load(f)["results"]["bench"]["seconds"]
    print(f"hf (lm-eval style, batch {args.batch_size}): {t_hf:.2f} s, {req_tokens / t_hf:.0f} request tokens/s")
    print(f"mergesweep eval: {t_ms:.2f} s scoring ({t_ms_total:.2f} s with load), {req_tokens / t_ms:.0f} request tokens/s")
    print(f"speed-up: {t_hf / t_ms:.2f}x")
    # Same scores: per-choice log-likelihoods through the library are checked by the tests; here
    # the task accuracy from both.
    acc_hf = np.mean([max(range(4), key=lambda c: ref[(i, c)][0]) == g for i, (_, _, g) in enumerate(items)])
    with open(os.path.join(tmp, "r.json")) as f:
        acc_ms = json.load(f)["results"]["bench"]["acc"]
    print(f"acc: hf {acc_hf:.4f}, mergesweep {acc_ms:.4f}")


if __name__ == "__main__":
    main()
