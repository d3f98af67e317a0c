"""What the `mergesweep eval` vs `lm_eval` benchmarks (eval_vs_lmeval.py, gen_vs_lmeval.py) share:
random local lm-eval tasks over generated text (each script gives its task YAML and document
maker), random Llamas with a byte-level BPE trained on the task text, the pack export, and
whole-process timing of lm_eval and mergesweep with the thread variables a user gets by default.
Needs the reference venv (lm-eval, transformers, tokenizers, torch), as the benchmarks do.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXPORTER = os.path.join(ROOT, "analysis", "export_lmeval_task.py")
WORDS = ("river market early fox summer bridge rain quick brown jumps over light city late price dog when of the "
         "a rises winter stone garden silver window paper music quiet green orange table number letter").split()
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def random_words(rng, lo, hi):
    """Between `lo` and `hi` random WORDS, space-separated."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def write_task(work, name, template, make_doc, n, dev_n, rng, **fields):
    """A local lm-eval task in `work`: `dev_n` (the few-shot examples) and `n` test documents from
    `make_doc(i, rng)` as <name>_{dev,test}.jsonl, and <name>.yaml from `template` formatted with
    name, dev, test (absolute data paths) and `fields`. Returns the documents, dev first."""
    paths = {}
    for split, count in (("dev", dev_n), ("test", n)):
        paths[split] = os.path.join(work, f"{name}_{split}.jsonl")
        with open(paths[split], "w") as f:
            f.writelines(json.dumps(make_doc(i, rng)) + "\n" for i in range(count))
    with open(os.path.join(work, f"{name}.yaml"), "w") as f:
        f.write(template.format(name=name, dev=paths["dev"], test=paths["test"], **fields))
    return [json.loads(line) for p in paths.values() for line in open(p)]


def fixture_common():
    """tests/fixtures/lmeval_common.py (the tokenizer trainers of the parity fixtures)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
    import lmeval_common

    return lmeval_common


def save_random_llama(folder, texts, vocab, hidden, ffn, layers, heads, kv_heads):
    """A byte-level BPE (`vocab` ids) trained on `texts` and a random float32 Llama of the given
    shape (seed 0, 1024 positions) saved to `folder`; returns its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    fast = fixture_common().train_bpe_tokenizer(texts, folder, vocab_size=vocab)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=1024,
                      bos_token_id=0, eos_token_id=1, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(folder, safe_serialization=True)
    return sum(p.numel() for p in model.parameters())


def export_pack(task_yaml, tokenizer, out, exporter=EXPORTER):
    """The task as a mergesweep pack (lm-eval's own requests), the exporter's log hidden."""
    subprocess.run([sys.executable, exporter, "--task", task_yaml, "--tokenizer", tokenizer, "--out", out],
                   check=True, stderr=subprocess.DEVNULL)


def clean_env(extra=None):
    """The environment without thread variables (the defaults a user gets), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(extra or {})
    return env


def timed(cmd, env, cwd=None):
    """Wall seconds of the whole process `cmd` (start-up and model load included), output hidden."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def time_lm_eval(work, model, task, batch_size, out, extra=(), device="cpu", dtype="float32"):
    """Wall seconds of `lm_eval --model hf` on the local task `task` in `work`, results under `out`."""
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype={dtype}",
           "--tasks", task, "--include_path", work, "--device", device, "--batch_size", str(batch_size),
           "--output_path", out, *extra]
    return timed(cmd, clean_env())


def time_mergesweep_eval(binary, model, pack, options, env_extra=None):
    """Wall seconds of `mergesweep eval MODEL --tasks PACK OPTIONS`, thread variables unset but for
    `env_extra`."""
    return timed([binary, "eval", model, "--tasks", pack, *options], clean_env(env_extra))
