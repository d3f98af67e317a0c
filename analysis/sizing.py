"""Memory per rank, group size and wall time of the studies' sweeps (docs/sizing.md).

`python3 -m analysis sizing` prints the tables of docs/sizing.md; a test checks that the
document shows exactly what this prints, so the numbers cannot drift from the model.

The model is the one `mergesweep sweep --plan` computes from the real tensors
(src/sweep/memory_plan.cpp); here the shards are taken as balanced (B/g), which the engine's
byte-balanced assignment of whole tensors approaches for models of hundreds of tensors. Per rank
of a worker group of g ranks, for a model of P parameters stored in b bytes each (B = P·b):
  resident    = (K + 1) x B / g           base and K checkpoints in their file dtype (bf16: b = 2)
  workspace   = 4 x (W + the most one tensor holds beside W)
                                          float32 on a GPU, as `--plan` computes it
                                          (memory_plan.cpp): W = E, one buffer the size of the
                                          largest tensor (the embedding, E = V x H) through
                                          which baselines and row-block passes go; beside it,
                                          per tensor after how the method goes through it
                                          (merge::tensor_pass), for E and the largest SVD-merged
                                          matrix (M = I x H), n the largest subset, Bk = one row
                                          block (about 2^20 values):
                                            row blocks (TA, DARE, Linear; TSV-M/Iso-C/TA+SB on E)
                                              (2n + 4) Bk
                                            TIES (and TIES+SB on E): a trim rule, then row blocks
                                              max(1.25 E + 3 density E, (3n + 8) Bk)
                                            Model Stock: (2n + 2) Bk
                                            whole tensors (SVDs and boosting on M; SLERP on E)
                                              (n + 3) x the tensor
  merged      = P x e                     the gathered merged model in the eval dtype (e = 2,
                                          bf16); the rank's own part is merged in place into it
  activations = T x (V + 4 H + 2 I) x 4   T = batch_tokens; logits of one batch, hidden and MLP
              + T x S x A x 4             buffers, one layer's attention scores (S = 2048)
  runtime     = 1.5 GB on a GPU, 0.5 GB on a CPU (CUDA context, allocator; libraries)
Budgets: 90% of the device (80 GB GPU: 72 GB; a 256 GB CPU node, one rank: 230 GB).
GB = 1e9 bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    name: str
    params: int          # total parameters (config.json of the Hugging Face model)
    hidden: int
    intermediate: int
    layers: int
    heads: int
    vocab: int
    checkpoints: int     # K: checkpoints held resident
    configs: int         # planned configs of its job spec (baselines + merges)
    largest_subset: int  # n: the largest subset one merge reads
    methods: tuple       # (method, TIES density or None, largest subset of this method) of its job spec


# Parameter counts and shapes from the models' config.json (safetensors totals).
SYSTEMATIC = (("task_arithmetic", None, 12), ("ties", 0.1, 12), ("model_stock", None, 12), ("tsv_m", None, 12),
              ("iso_c", None, 12), ("task_arithmetic_sb", None, 12), ("ties_sb", 0.1, 12))
PIPELINE = (("linear", None, 2), ("slerp", None, 1), ("task_arithmetic", None, 2), ("ties", 0.5, 2),
            ("dare_ties", 0.5, 2))
MODELS = [
    Model("llama-3.2-3b-instruct", 3_212_749_824, 3072, 8192, 28, 24, 128_256, 12, 545, 12, SYSTEMATIC),
    Model("llama-3.1-8b-instruct", 8_030_261_248, 4096, 14336, 32, 32, 128_256, 12, 545, 12, SYSTEMATIC),
    Model("qwen3-4b", 4_022_468_096, 2560, 9728, 36, 32, 151_936, 12, 545, 12, SYSTEMATIC),
    Model("qwen3-8b", 8_190_735_360, 4096, 12288, 36, 32, 151_936, 12, 545, 12, SYSTEMATIC),
    Model("qwen2.5-7b (pipeline)", 7_615_616_512, 3584, 18944, 28, 28, 152_064, 3, 19, 2, PIPELINE),
]

GPU_BUDGET = 0.9 * 80e9
CPU_BUDGET = 0.9 * 256e9
BATCH_TOKENS = 8192
SEQ = 2048
FILE_BYTES = 2   # bf16 checkpoints
EVAL_BYTES = 2   # bf16 evaluation
RUNTIME = {"gpu": 1.5e9, "cpu": 0.5e9}
# Measured here (bench_merge_resident, 2 cores, float32 resident): task arithmetic ~0.58 s per
# merge of a 250M-parameter model. Merges are memory-bound, so time scales with P / g per rank.
TA_MERGE_S_PER_PARAM = 0.58 / 250e6


def activations(m: Model, batch_tokens: int = BATCH_TOKENS) -> float:
    return batch_tokens * (m.vocab + 4 * m.hidden + 2 * m.intermediate) * 4 + batch_tokens * SEQ * m.heads * 4


ROW_BLOCK = 1 << 20  # merge::kRowBlockElements
ELEMENTWISE = {"linear", "task_arithmetic", "dare_ties", "dare_linear"}
AVERAGED_OFF_SVD = {"tsv_m", "iso_c", "iso_cts", "task_arithmetic_sb"}  # row blocks except on SVD/boosted matrices


def beside_workspace(method: str, density, n: int, numel: int, row: int, svd_or_boosted: bool) -> int:
    """Float32 values one tensor's merge holds beside the workspace on a GPU (memory_plan.cpp,
    values_beside_workspace)."""
    whole = (n + 3) * numel
    if numel <= ROW_BLOCK:
        return whole
    block = min(numel, max(1, ROW_BLOCK // row) * row)
    if method in ELEMENTWISE or (method in AVERAGED_OFF_SVD and not svd_or_boosted):
        return (2 * n + 4) * block
    if method == "ties" or (method == "ties_sb" and not svd_or_boosted):
        k = math.ceil(min(1.0, 1.0 if density is None else density) * numel)
        return max(numel + numel // 4 + 3 * k, (3 * n + 8) * block)
    if method == "model_stock":
        return (2 * n + 2) * block
    return whole  # SVD merges and boosting on their matrices, SLERP


def workspace(m: Model) -> float:
    emb, mlp = m.vocab * m.hidden, m.intermediate * m.hidden
    beside = 0  # baselines are formed in the workspace: nothing beside it on a GPU
    for method, density, n in m.methods:
        for numel, svd in ((emb, False), (mlp, True)):
            beside = max(beside, beside_workspace(method, density, n, numel, m.hidden, svd))
    return 4 * (emb + beside)


def fixed(m: Model, device: str) -> float:
    """The part that does not shrink with g: merged model, workspace, activations, runtime."""
    return m.params * EVAL_BYTES + workspace(m) + activations(m) + RUNTIME[device]


def per_rank(m: Model, g: int, device: str = "gpu") -> float:
    """Predicted peak bytes on one rank of a group of g."""
    return (m.checkpoints + 1) * m.params * FILE_BYTES / g + fixed(m, device)


def min_group(m: Model, budget: float, device: str = "gpu") -> int | None:
    """Smallest g whose per-rank memory fits the budget (None: even the fixed part does not)."""
    for g in range(1, 4097):
        if per_rank(m, g, device) <= budget:
            return g
    return None


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
        gg = min_group(m, GPU_BUDGET, "gpu")
        gc = min_group(m, CPU_BUDGET, "cpu")
        use = pow2(gg)
        rows.append(f"| {m.name} | {m.params / 1e9:.2f}B | {m.checkpoints} | {m.largest_subset} | "
                    f"{gb(m.params * FILE_BYTES * (1 + m.checkpoints))} GB | {gb(fixed(m, 'gpu'))} GB | "
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
        g = pow2(min_group(m, GPU_BUDGET))
        groups = max(1, gpus // g)
        merge_s = TA_MERGE_S_PER_PARAM * m.params / g
        cells = " | ".join(f"{math.ceil(m.configs / groups) * t / 3600:.1f} h" for t in t_config_s)
        rows.append(f"| {m.name} | {m.configs} | {g} | {groups} | {merge_s:.1f} s | {cells} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    print("### Memory per rank\n")
    print(memory_table())
    print("### Wall time\n")
    print(walltime_table())
    return 0
