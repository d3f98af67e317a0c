"""The job specs of the two studies: valid keys, methods and parameters that the engine's
registry knows, the study's grid, and plan sizes equal to the ones docs/sizing.md is computed
for (analysis/sizing.py reads them from the engine's shape-only `sweep --plan --json`)."""
import glob
import math
import pathlib
import re

import pytest

yaml = pytest.importorskip("yaml")  # Debian python3-yaml

from analysis import sizing  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOP_KEYS = {"name", "base", "checkpoints", "subsets", "methods", "eval", "output", "schedule"}


def registry():
    """method -> parameter names, read from the method objects in src/merge/methods/ (one class
    per method; plus weight/density)."""
    helpers = {"lambda": "lambda", "seed": "seed", "rescale": "rescale", "alpha": "alpha", "beta": "beta",
               "sb_order": "sb_order", "trim": "trim", "normalize": "normalize"}

    def params_in(text):
        names = set(re.findall(r'(?:num|flag|choice|integer)\("(\w+)"', text))
        return names | {v for k, v in helpers.items() if re.search(r"parts::" + k + r"\(", text)}

    svd_common = params_in((ROOT / "src/merge/methods/svd_methods.hpp").read_text())
    out = {}
    for path in sorted((ROOT / "src/merge/methods").glob("*.cpp")):
        for block in re.split(r"\nclass ", path.read_text())[1:]:
            m = re.search(r'i\.name = "(\w+)"', block) or re.search(r'svd_info\("(\w+)"', block)
            if not m:
                continue
            names = params_in(block) | (svd_common if "svd_info(" in block else set())
            out[m.group(1)] = names | {"weight", "density"}
    return out


def plan_size(spec):
    N = len(spec["checkpoints"])
    total = 1 + N
    for e in spec["methods"]:
        grid = 1
        for k, v in e.items():
            if k not in ("method", "sizes") and isinstance(v, list):
                grid *= len(v)
        sizes = e.get("sizes", spec["subsets"]["sizes"])
        total += grid * sum(min(spec["subsets"]["samples"], math.comb(N, n)) for n in sizes)
    return total


SPECS = sorted(glob.glob(str(ROOT / "jobs" / "*-study" / "*.yaml")))


def test_there_are_the_specs_of_both_studies():
    names = {pathlib.Path(p).name for p in SPECS}
    assert {"llama-3.2-3b-instruct.yaml", "llama-3.1-8b-instruct.yaml", "qwen3-4b.yaml",
            "qwen3-8b.yaml", "qwen2.5-7b.yaml"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: pathlib.Path(p).name)
def test_spec_uses_known_keys_methods_and_parameters(path):
    spec = yaml.safe_load(open(path))
    assert set(spec) <= TOP_KEYS
    reg = registry()
    assert len(reg) >= 12
    for e in spec["methods"]:
        assert e["method"] in reg, e
        unknown = set(e) - {"method", "sizes"} - reg[e["method"]]
        assert not unknown, f"{e['method']}: unknown parameters {unknown}"


@pytest.mark.parametrize("path", [p for p in SPECS if "systematic" in p], ids=lambda p: pathlib.Path(p).name)
def test_systematic_grid(path):
    spec = yaml.safe_load(open(path))
    assert spec["subsets"]["sizes"] == [2, 4, 6, 8, 10, 12] and spec["subsets"]["samples"] == 15
    assert len(spec["checkpoints"]) == 12 and len(spec["eval"]["tasks"]) == 16
    methods = {e["method"]: e for e in spec["methods"]}
    assert set(methods) == {"task_arithmetic", "ties", "model_stock", "tsv_m", "iso_c",
                            "task_arithmetic_sb", "ties_sb"}
    assert methods["ties"]["density"] == 0.1 and methods["ties_sb"]["beta"] == 0.2
    assert all(e.get("lambda", 1.0) == 1.0 for e in spec["methods"])
    # the study's task arithmetic averages the task vectors (alpha_i = 1/n); the engine's default
    # (mergekit's) sums them
    assert methods["task_arithmetic"]["normalize"] is True
    assert methods["task_arithmetic_sb"]["normalize"] is True


def test_sizing_uses_the_plan_sizes_of_the_specs():
    by_name = {m.name.split(" ")[0]: m for m in sizing.MODELS}
    for path in SPECS:
        stem = pathlib.Path(path).stem
        if stem not in by_name:
            continue
        spec = yaml.safe_load(open(path))
        assert plan_size(spec) == by_name[stem].configs, stem
        assert len(spec["checkpoints"]) == by_name[stem].checkpoints
        # the methods whose workspace the model takes: each method, its TIES density, its largest subset
        methods = []
        for e in spec["methods"]:
            sizes = e.get("sizes", spec["subsets"]["sizes"])
            density = e.get("density") if e["method"] in ("ties", "ties_sb", "dare_ties") else None
            methods.append((e["method"], density, min(max(sizes), len(spec["checkpoints"]))))
        assert tuple(methods) == by_name[stem].methods, stem


def engine_or_skip():
    try:
        return sizing.engine()
    except RuntimeError as e:
        pytest.skip(str(e))


# Parameter counts published with the models (their safetensors totals).
PUBLISHED = {"llama-3.2-3b-instruct": 3_212_749_824, "llama-3.1-8b-instruct": 8_030_261_248,
             "qwen3-4b": 4_022_468_096, "qwen3-8b": 8_190_735_360, "qwen2.5-7b (pipeline)": 7_615_616_512}


def test_sizing_plans_the_published_models_shapes():
    """The engine's shape-only plan (config.json alone) has the models' parameters: exactly for
    Llama; for Qwen less the tensors the architecture table leaves out (Qwen3's q/k norms, 2 x 128
    per layer; Qwen2.5's q/k/v biases, 4608 per layer), a few in 10^5."""
    engine_or_skip()
    left_out = {"qwen3-4b": 36 * 256, "qwen3-8b": 36 * 256, "qwen2.5-7b (pipeline)": 28 * 4608}
    for m in sizing.MODELS:
        assert sizing.params(m) + left_out.get(m.name, 0) == PUBLISHED[m.name], m.name


def test_sizing_reads_the_engines_plan():
    """Per rank at g is the engine's --plan --json peak; the smallest group fits and the one below it does not."""
    engine_or_skip()
    llama8b = next(m for m in sizing.MODELS if m.name == "llama-3.1-8b-instruct")
    g = sizing.min_group(llama8b)
    assert sizing.per_rank(llama8b, g) <= 72e9 < sizing.per_rank(llama8b, g - 1)
    assert sizing.plan(llama8b, g)["memory"]["fits"] and not sizing.plan(llama8b, g - 1)["memory"]["fits"]


def test_sizing_doc_shows_what_the_model_computes():
    engine_or_skip()
    doc = (ROOT / "docs" / "sizing.md").read_text()
    assert sizing.memory_table() in doc
    assert sizing.walltime_table() in doc
