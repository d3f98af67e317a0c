#!/usr/bin/env python3
"""Bad sweep specs: writes tests/bad-inputs/inputs/sweep/*.yaml and cases-sweep.json (schema of
cases.json, see make_bad_inputs.py). The model folders are the merge cases' (inputs/merge/, made by
make_bad_inputs.py); spec paths are relative to the spec file. Stdlib only."""
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
IN = os.path.join(HERE, "inputs", "sweep")
CASES = []

GOOD = """name: bad
base: ../merge/base
checkpoints: [../merge/ft_a, ../merge/ft_b]
subsets: {sizes: [2], samples: 1, seed: 1}
methods:
  - {method: task_arithmetic, lambda: [0.5, 1.0]}
output: out.h5
"""


def spec(name, text, expect, exit_code=1, extra="--plan"):
    with open(os.path.join(IN, name + ".yaml"), "w") as f:
        f.write(text)
    rel = f"inputs/sweep/{name}.yaml"
    CASES.append({"name": "sweep_" + name, "args": f"sweep {rel} {extra}".strip(), "exit": exit_code,
                  "expect": expect, "absent": ["inputs/sweep/out.h5"]})


def main():
    shutil.rmtree(IN, ignore_errors=True)
    os.makedirs(IN)
    spec("unknown_key", GOOD + "sizez: 3\n", [".yaml", "unknown key 'sizez'", "line 8"])
    spec("unknown_nested_key", GOOD.replace("seed: 1}", "seed: 1, sample: 2}"), ["subsets.sample", "unknown key", "line 4"])
    spec("unknown_method", GOOD.replace("task_arithmetic", "frankenmerge"),
         ["methods[0].method", "unknown method 'frankenmerge'", "line 6"])
    spec("size_too_large", GOOD.replace("sizes: [2]", "sizes: [2, 3]"),
         ["sizes", "subset size 3 is larger than the number of checkpoints (2)"])
    spec("bad_parameter", GOOD.replace("[0.5, 1.0]", "[0.5, abc]"), ["lambda", "abc"])
    spec("unknown_parameter", GOOD.replace("lambda:", "lamda:"), ["lamda", "unknown key"])
    spec("density_out_of_range", GOOD.replace("{method: task_arithmetic, lambda: [0.5, 1.0]}",
                                              "{method: ties, density: 1.5}"), ["density", "1.5"])
    spec("slerp_subset_of_two", GOOD.replace("{method: task_arithmetic, lambda: [0.5, 1.0]}", "{method: slerp, t: 0.5}"),
         ["slerp", "at most 1 model", "give this entry its own 'sizes'"])
    spec("missing_output", GOOD.replace("output: out.h5\n", ""), ["output", "is required"])
    spec("invalid_yaml", GOOD.replace("sizes: [2]", "sizes: [2"), ["invalid YAML"])
    spec("missing_base", GOOD.replace("../merge/base", "../merge/nowhere"), ["base", "merge/nowhere", "not a model folder"])
    spec("glob_matches_nothing", GOOD.replace("[../merge/ft_a, ../merge/ft_b]", "'../merge/zz-*'"),
         ["checkpoints", "matches no file"])
    spec("checkpoint_shape_differs", GOOD.replace("../merge/ft_b", "../merge/ft_shape"),
         ["merge/ft_shape", "model.embed_tokens.weight", "shape [7, 4] differs from the base's [6, 4]", "checkpoints[1]"])
    spec("checkpoint_missing_tensor", GOOD.replace("../merge/ft_b", "../merge/ft_missing"),
         ["merge/ft_missing", "model.norm.weight", "missing"])
    spec("checkpoint_does_not_exist", GOOD.replace("../merge/ft_b", "../merge/ft_nowhere"),
         ["merge/ft_nowhere", "checkpoints[1]", "no such file or folder"])
    spec("checkpoint_hub_name_not_cached", GOOD.replace("../merge/ft_b", "no-such-org/no-such-model"),
         ["checkpoints: line", "no-such-org/no-such-model", "huggingface-cli download no-such-org/no-such-model"])
    spec("task_pack_missing", GOOD + "eval: {tasks: [no-such-pack.h5]}\n", ["eval.tasks", "no-such-pack.h5", "does not exist"])
    spec("probe_packs_required", GOOD + "eval: {probes: {layers: all}}\n", ["eval.probes.packs", "is required"])
    spec("bad_dtype", GOOD + "eval: {dtype: float8}\n", ["eval.dtype", "float8"])
    spec("duplicate_checkpoint", GOOD.replace("../merge/ft_b", "../merge/ft_a"), ["checkpoints", "twice"])
    spec("group_size_not_dividing", GOOD, ["--group-size", "multiple of the group size (3)"], extra="-g 3")
    spec("bad_device", GOOD + "schedule: {device: tpu}\n", ["schedule.device", "tpu"])
    spec("memory_does_not_fit", GOOD + "schedule: {memory_per_rank: 1MB}\n",
         ["schedule.group_size", "may use 1.00 MB", "schedule.memory_per_rank", "no group size fits"], extra="")
    spec("bad_slice", GOOD, ["--slice", "I/N"], exit_code=2, extra="--plan --slice 3/2")
    # Shape-only specs (checkpoints: {count: K}) plan; they do not run, and need a stored dtype.
    shape_only = GOOD.replace("[../merge/ft_a, ../merge/ft_b]", "{count: 2}")
    spec("shape_only_run", shape_only, ["checkpoints", "{count: 2} is a shape-only spec", "list their folders"], extra="")
    spec("shape_only_count_zero", shape_only.replace("count: 2", "count: 0"), ["checkpoints.count", "line 3"])
    os.makedirs(os.path.join(IN, "no_dtype"))
    with open(os.path.join(HERE, "inputs", "merge", "base", "config.json")) as f:
        cfg = json.load(f)
    del cfg["torch_dtype"]
    with open(os.path.join(IN, "no_dtype", "config.json"), "w") as f:
        json.dump(cfg, f)
    spec("shape_only_no_dtype", shape_only.replace("../merge/base", "no_dtype"),
         ["no_dtype/config.json", "torch_dtype: is not given", "stored dtype"])
    with open(os.path.join(HERE, "cases-sweep.json"), "w") as f:
        json.dump({"cases": CASES}, f, indent=1)
        f.write("\n")
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()
