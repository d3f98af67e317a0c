#!/usr/bin/env python3
"""The GPU benchmarks of bench/gpu/check.sh B that compare mergesweep with transformers, on one
random Llama written once as a HF folder and loaded by both (same weights, same tokens):

  gpu_bench.py model   --out DIR [--hidden 2048 --layers 16 --ffn 8192 --heads 32 --kv-heads 8]
  gpu_bench.py forward --model DIR --bench BUILD/bin/bench_model_forward [--batch 8 --seq 1024]
  gpu_bench.py gen     --model DIR --mergesweep BUILD/bin/mergesweep [--items 128 --max-gen-toks 64]

`model`: a byte-level BPE trained on the benchmarks' word lists (bench/lmeval_bench_common.py)
and a random Llama (seed 0) of the given shape in bfloat16 (default about 1B parameters, 1024
positions), made on --device and saved with save_pretrained (then an empty `.complete` file).
`forward`: random ids [batch, seq] saved as safetensors; bench_model_forward --model times
mergesweep's forward + logits on them (and its MFU against the same run's GEMMs, and which SDPA
kernel ran); then transformers' LlamaForCausalLM (sdpa attention) forward + logits on the same
ids, in this process; prints tokens/s of both and the ratio.
`gen`: gen_vs_lmeval.py's gsm8k-style generate_until task (2-shot first_n, until "\\n\\n" and
"Question:"), exported as a pack with lm-eval's own requests; `mergesweep eval --generations`
and transformers' greedy `generate` (a child process: `hf-generate`, the pack's prompt ids,
left-padded batches, the pack's stop strings and stop ids) each timed as a whole process; prints
generated tokens/s (mergesweep's generated token count for both: the same work), the ratio, and
how many responses are identical.
--device auto (default) is cuda when torch sees a GPU; on the CPU use toy shapes.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench/: lmeval_bench_common, gen_vs_lmeval
import lmeval_bench_common as common  # noqa: E402


def pick_device(name):
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_model(args):
    """The random Llama and its tokenizer in args.out; returns the parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    rng = random.Random(5)
    texts = [common.random_words(rng, 4, 30) for _ in range(4000)]
    fast = common.fixture_common().train_bpe_tokenizer(texts, args.out, vocab_size=args.vocab)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=args.hidden, intermediate_size=args.ffn,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                      max_position_embeddings=args.positions, bos_token_id=0, eos_token_id=1,
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(pick_device(args.device)):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(args.out, safe_serialization=True)
    open(os.path.join(args.out, ".complete"), "w").close()  # a rerun may reuse the folder
    return sum(p.numel() for p in model.parameters())


def load_hf(folder, device):
    import torch
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, attn_implementation="sdpa").to(device).eval()


def forward(args):
    import torch
    from safetensors.torch import save_file

    device = pick_device(args.device)
    with open(os.path.join(args.model, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    ids = torch.randint(vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(3))
    ids_path = os.path.join(args.work, "ids.safetensors")
    save_file({"input_ids": ids.contiguous()}, ids_path)
    run = subprocess.run([args.bench, "--model", args.model, "--ids", ids_path, "--device", device.split(":")[0],
                          "--reps", str(args.reps)], check=True, capture_output=True, text=True)
    print(run.stdout, end="")
    ms_tps = float(re.search(r"forward \+ logits [0-9.]+ ms: ([0-9.]+) tokens/s", run.stdout).group(1))
    mfu = float(re.search(r"MFU against them ([0-9.]+)%", run.stdout).group(1))
    t0 = time.perf_counter()
    model = load_hf(args.model, device)
    load_s = time.perf_counter() - t0
    x = ids.to(device)
    with torch.inference_mode():
        model(input_ids=x, use_cache=False).logits  # warm-up (no KV cache: a plain scoring forward)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.reps):
            model(input_ids=x, use_cache=False).logits
        sync(device)
    hf_s = (time.perf_counter() - t0) / args.reps
    hf_tps = ids.numel() / hf_s
    print(f"transformers LlamaForCausalLM (sdpa, bf16) forward + logits {hf_s * 1e3:.1f} ms: {hf_tps:.0f} tokens/s "
          f"(load {load_s:.1f} s)")
    print(f"forward: MFU against the same run's GEMMs {mfu:.1f}% (goal >= 40%); tokens/s, mergesweep / transformers: "
          f"{ms_tps / hf_tps:.2f}x (goal >= 1.5x)")


def read_generation_pack(pack):
    """(prompts as id lists, until strings, stop ids, max_gen_toks) of a generate_until pack."""
    import h5py

    with h5py.File(pack) as f:
        tok, off = f["context_tokens"][:], f["context_offsets"][:]
        until = [u.decode() if isinstance(u, bytes) else u for u in f["until"][:]]
        stops = [int(t) for t in f["stop_token_ids"][:]]
        max_gen = int(f.attrs["max_gen_toks"])
    return [tok[off[i]:off[i + 1]].tolist() for i in range(len(off) - 1)], until, stops, max_gen


def hf_generate(args):
    """transformers' greedy generate over the pack's prompts (the child process `gen` times)."""
    import torch
    from transformers import AutoTokenizer

    device = pick_device(args.device)
    prompts, until, stops, max_gen = read_generation_pack(args.pack)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = load_hf(args.model, device)
    pad = stops[0]
    out = []
    t0 = time.perf_counter()
    for b in range(0, len(prompts), args.batch):
        chunk = prompts[b:b + args.batch]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_gen,
                                 eos_token_id=stops, pad_token_id=pad, stop_strings=until, tokenizer=tok)
        for row in gen[:, width:].tolist():
            text = tok.decode(row, skip_special_tokens=True)
            for u in until:  # lm-eval's response: cut before the first stop string
                text = text.split(u)[0]
            out.append(text)
    sync(device)
    print(f"transformers generate: {time.perf_counter() - t0:.1f} s in generate, batch {args.batch}")
    with open(args.out, "w") as f:
        f.writelines(json.dumps(t) + "\n" for t in out)


def gen(args):
    import gen_vs_lmeval

    device = pick_device(args.device)
    task = "bench_gen"
    common.write_task(args.work, task, gen_vs_lmeval.TASK_YAML, gen_vs_lmeval.generation_doc, args.items, 2,
                      random.Random(13), max_gen_toks=args.max_gen_toks)
    pack = os.path.join(args.work, task + ".h5")
    common.export_pack(os.path.join(args.work, task + ".yaml"), args.model, pack)
    gens = os.path.join(args.work, "gens.jsonl")
    ms_s = common.time_mergesweep_eval(os.path.abspath(args.mergesweep), args.model, pack,
                                       ["--generations", gens, "-q", "--dtype", "bfloat16", "--device",
                                        device.split(":")[0]])
    with open(gens) as f:
        ms = [json.loads(line) for line in f]
    hf_out = os.path.join(args.work, "hf-gens.jsonl")
    cmd = [sys.executable, os.path.abspath(__file__), "hf-generate", "--model", args.model, "--pack", pack,
           "--out", hf_out, "--batch", str(args.hf_batch), "--device", device]
    t0 = time.perf_counter()
    child = subprocess.run(cmd, check=True, capture_output=True, text=True)
    hf_s = time.perf_counter() - t0
    print(child.stdout, end="")
    with open(hf_out) as f:
        hf = [json.loads(line) for line in f]
    generated = sum(len(g["tokens"]) for g in ms)
    same = sum(1 for g in ms if g["text"] == hf[g["item"]])
    print(f"{len(ms)} prompts, max_gen_toks {args.max_gen_toks}, {generated} tokens generated by mergesweep")
    print(f"mergesweep eval --generations (whole process): {ms_s:.1f} s, {generated / ms_s:.0f} tokens/s")
    print(f"transformers generate (whole process): {hf_s:.1f} s, {generated / hf_s:.0f} tokens/s")
    print(f"generation tokens/s, mergesweep / transformers: {hf_s / ms_s:.2f}x; responses identical {same}/{len(ms)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model")
    m.add_argument("--out", required=True)
    for flag, default in (("hidden", 2048), ("layers", 16), ("ffn", 8192), ("heads", 32), ("kv-heads", 8),
                          ("vocab", 8000), ("positions", 1024)):
        m.add_argument("--" + flag, type=int, default=default)
    f = sub.add_parser("forward")
    f.add_argument("--bench", required=True, help="BUILD/bin/bench_model_forward")
    f.add_argument("--batch", type=int, default=8)
    f.add_argument("--seq", type=int, default=1024)
    f.add_argument("--reps", type=int, default=5)
    g = sub.add_parser("gen")
    g.add_argument("--mergesweep", required=True)
    g.add_argument("--items", type=int, default=128)
    g.add_argument("--max-gen-toks", type=int, default=64)
    g.add_argument("--hf-batch", type=int, default=64)
    h = sub.add_parser("hf-generate")
    h.add_argument("--pack", required=True)
    h.add_argument("--out", required=True)
    h.add_argument("--batch", type=int, default=64)
    for p in (f, g, h):
        p.add_argument("--model", required=True)
    for p in (f, g):
        p.add_argument("--work", required=True, help="scratch folder")
    for p in (m, f, g, h):
        p.add_argument("--device", default="auto")
    args = ap.parse_args()
    if args.cmd == "model":
        n = make_model(args)
        print(f"random Llama, {n / 1e6:.1f}M parameters, bfloat16, in {args.out}")
    elif args.cmd == "hf-generate":
        hf_generate(args)
    else:
        os.makedirs(args.work, exist_ok=True)
        forward(args) if args.cmd == "forward" else gen(args)


if __name__ == "__main__":
    main()
