"""Memory per rank, group size and wall time of the studies' sweeps (docs/sizing.md).

`python3 -m analysis sizing` prints the tables of docs/sizing.md; a test checks that the
document shows exactly what this prints, so the numbers cannot drift from the model.

The memory model is the engine's, not a copy of it: for each study model this writes a
shape-only spec (the model's config.json alone, `checkpoints: {count: K}`, the job spec's
methods and largest subsets, the studies' evaluation batch) and reads `mergesweep sweep SPEC
--plan --json`: the parts per rank (resident, workspace, merged model, activations, runtime) from
the real tensor shapes and the engine's own shard assignment and per-method workspace rules
(src/sweep/memory_plan.cpp), and the smallest group that fits the budget. The engine is found at
$MS_CLI, $MS_BUILD/bin/mergesweep, build/bin/mergesweep or on PATH.
Budgets: 90% of the device (80 GB GPU: 72 GB; a 256 GB CPU node, one rank: 230.4 GB).
GB = 1e9 bytes.
"""
from __future__ import annotations

import functools
import json
import math
import os
import pathlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Model:
    name: str
    hidden: int          # config.json of the Hugging Face model
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool           # tie_word_embeddings
    checkpoints: int     # K: checkpoints held resident
    configs: int         # planned configs of its job spec (baselines + merges)
    largest_subset: int  # n: the largest subset one merge reads
    methods: tuple       # (method, TIES density or None, largest subset of this method) of its job spec


SYSTEMATIC = (("task_arithmetic", None, 12), ("ties", 0.1, 12), ("model_stock", None, 12), ("tsv_m", None, 12),
              ("iso_c", None, 12), ("task_arithmetic_sb", None, 12), ("ties_sb", 0.1, 12))
PIPELINE = (("linear", None, 2), ("slerp", None, 1), ("task_arithmetic", None, 2), ("ties", 0.5, 2),
            ("dare_ties", 0.5, 2))
MODELS = [
    Model("llama-3.2-3b-instruct", 3072, 8192, 28, 24, 8, 128, 128_256, True, 12, 545, 12, SYSTEMATIC),
    Model("llama-3.1-8b-instruct", 4096, 14336, 32, 32, 8, 128, 128_256, False, 12, 545, 12, SYSTEMATIC),
    Model("qwen3-4b", 2560, 9728, 36, 32, 8, 128, 151_936, True, 12, 545, 12, SYSTEMATIC),
    Model("qwen3-8b", 4096, 12288, 36, 32, 8, 128, 151_936, False, 12, 545, 12, SYSTEMATIC),
    Model("qwen2.5-7b (pipeline)", 3584, 18944, 28, 28, 4, 128, 152_064, False, 3, 19, 2, PIPELINE),
]

BUDGET = {"gpu": "72GB", "cpu": "230.4GB"}  # 90% of an 80 GB GPU, of a 256 GB node with one rank
BATCH_TOKENS = 8192
SEQ = 2048
# Measured here (bench_merge_resident, 2 cores, float32 resident): task arithmetic ~0.58 s per
# merge of a 250M-parameter model. Merges are memory-bound, so time scales with P / g per rank.
TA_MERGE_S_PER_PARAM = 0.58 / 250e6


def engine() -> str:
    """The mergesweep executable whose plan this reads."""
    for cand in (os.environ.get("MS_CLI"),
                 os.environ.get("MS_BUILD") and os.path.join(os.environ["MS_BUILD"], "bin", "mergesweep"),
                 str(ROOT / "build" / "bin" / "mergesweep"), shutil.which("mergesweep")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("sizing reads the engine's plan: build it (README) or set MS_CLI to the mergesweep executable")


def config_json(m: Model) -> dict:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": m.hidden,
            "intermediate_size": m.intermediate, "num_hidden_layers": m.layers, "num_attention_heads": m.heads,
            "num_key_value_heads": m.kv_heads, "head_dim": m.head_dim, "vocab_size": m.vocab,
            "max_position_embeddings": 131072, "tie_word_embeddings": m.tied, "torch_dtype": "bfloat16",
            "rms_norm_eps": 1e-5, "rope_theta": 500000.0}


def spec_text(m: Model, device: str) -> str:
    methods = "".join(
        f"  - {{method: {name}, sizes: [{n}]" + (f", density: {d}" if d is not None else "") + "}\n"
        for name, d, n in m.methods)
    return (f"name: sizing\nbase: model\ncheckpoints: {{count: {m.checkpoints}}}\n"
            f"subsets: {{sizes: [{m.largest_subset}], samples: 1, seed: 1}}\nmethods:\n{methods}"
            f"eval: {{tasks: [not-read.h5], batch_tokens: {BATCH_TOKENS}, max_length: {SEQ}, dtype: bfloat16}}\n"
            f"output: plan.h5\nschedule: {{device: {'cuda' if device == 'gpu' else 'cpu'}, "
            f"memory_per_rank: {BUDGET[device]}}}\n")


@functools.lru_cache(maxsize=None)
def plan(m: Model, g: int, device: str = "gpu") -> dict:
    """`mergesweep sweep --plan --json --group-size g` of the model's shape-only spec."""
    with tempfile.TemporaryDirectory() as tmp:
        (pathlib.Path(tmp) / "model").mkdir()
        (pathlib.Path(tmp) / "model" / "config.json").write_text(json.dumps(config_json(m)))
        (pathlib.Path(tmp) / "spec.yaml").write_text(spec_text(m, device))
        out = subprocess.run([engine(), "sweep", "spec.yaml", "--plan", "--json", "--group-size", str(g)], cwd=tmp,
                             capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if out.returncode != 0:
        raise RuntimeError(f"mergesweep --plan failed for {m.name}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def params(m: Model) -> int:
    return plan(m, 1)["parameters"]


def fixed(m: Model, device: str = "gpu") -> float:
    """The part that does not shrink with g: merged model, workspace, activations, runtime (g = 1)."""
    r = plan(m, 1, device)["memory"]["ranks"][0]
    return r["total"] - r["resident"]


def resident(m: Model) -> float:
    return plan(m, 1)["memory"]["ranks"][0]["resident"]


def per_rank(m: Model, g: int, device: str = "gpu") -> float:
    """The engine's peak bytes over the ranks of a group of g."""
    return plan(m, g, device)["memory"]["peak"]


def min_group(m: Model, device: str = "gpu") -> int | None:
    """Smallest g whose ranks fit the budget (None: even the part that does not shrink does not)."""
    return plan(m, 1, device)["memory"]["smallest_fitting_group"] or None


def pow2(g: int | None) -> int | None:
    return None if g is None else 1 << (g - 1).bit_length()


def gb(x: float) -> str:
    return f"{x / 1e9:.1f}"


def memory_table() -> str:
    rows = ["| model | params | K | n | resident bf16 (g=1) | merged + workspace + activations + runtime | "
            "per rank at g=1 | min g on 80 GB GPU | use g (GPU) | per rank at that g | "
            "min g on 256 GB CPU node | per rank at that g |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in MODELS:
        gg = min_group(m, "gpu")
        gc = min_group(m, "cpu")
        use = pow2(gg)
        rows.append(f"| {m.name} | {params(m) / 1e9:.2f}B | {m.checkpoints} | {m.largest_subset} | "
                    f"{gb(resident(m))} GB | {gb(fixed(m, 'gpu'))} GB | "
                    f"{gb(per_rank(m, 1))} GB | {gg} | {use} | {gb(per_rank(m, use))} GB | "
                    f"{gc} | {gb(per_rank(m, gc, 'cpu'))} GB |")
    return "\n".join(rows) + "\n"


def walltime_table(t_config_s=(60.0, 300.0), gpus: int = 32) -> str:
    """Hours for the whole plan with `gpus` ranks in groups of the GPU group size, for per-config
    costs t (seconds of one group per config: merge + benchmarks + probes)."""
    head = " | ".join(f"t = {t:g} s/config" for t in t_config_s)
    rows = [f"| model | configs | g | groups on {gpus} GPUs | TA merge per config (compute bound, 2-core rate) | {head} |",
            "|---|---|---|---|---|" + "---|" * len(t_config_s)]
    for m in MODELS:
        g = pow2(min_group(m))
        groups = max(1, gpus // g)
        merge_s = TA_MERGE_S_PER_PARAM * params(m) / g
        cells = " | ".join(f"{math.ceil(m.configs / groups) * t / 3600:.1f} h" for t in t_config_s)
        rows.append(f"| {m.name} | {m.configs} | {g} | {groups} | {merge_s:.1f} s | {cells} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    print("### Memory per rank\n")
    print(memory_table())
    print("### Wall time\n")
    print(walltime_table())
    return 0
