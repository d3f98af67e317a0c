#!/usr/bin/env python3
"""Scores a full testbed family and a few merges of it with the mergesweep CLI (a script, not a
unit test: it needs a trained family, minutes of CPU).

    python3 tests/testbed/merge_study.py TESTBED_DIR WORK_DIR [--cli build/bin/mergesweep]

Prints (markdown) the accuracy matrix of base + fine-tunes on every task pack, checks that each
fine-tune beats the base on its emphasised families, checks that testbed.json's accuracies equal
`mergesweep eval`'s (exit 1 otherwise), and scores the merges in MERGES (task arithmetic and TIES
of all 12 fine-tunes, task arithmetic of the moderate ones and of small groups). Merges and eval JSON
stay in WORK_DIR (reused when present)."""
import argparse
import json
import pathlib
import subprocess
import sys

ALL = [f"ft-{k:02d}" for k in range(12)]
GENERAL = ALL[:9]  # whole-mixture fine-tunes with an emphasis (ft-09..11 are the narrow, high-lr ones)
MERGES = {  # name: (method, top-level parameters, per-model parameters, members)
    "ta_all_l1.0": ("task_arithmetic", {"lambda": 1.0}, {}, ALL),
    "ta_all_l0.3": ("task_arithmetic", {"lambda": 0.3}, {}, ALL),
    "ties_all_d0.2_l1.0": ("ties", {"lambda": 1.0}, {"density": 0.2}, ALL),
    "ties_all_d0.2_l0.3": ("ties", {"lambda": 0.3}, {"density": 0.2}, ALL),
    "ta_general9_mean": ("task_arithmetic", {"lambda": 1.0, "normalize": "true"}, {}, GENERAL),
    "ta_all_mean": ("task_arithmetic", {"lambda": 1.0, "normalize": "true"}, {}, ALL),
    "ta_instruct+math_mean": ("task_arithmetic", {"lambda": 1.0, "normalize": "true"}, {}, ["ft-00", "ft-01"]),
}


def run(cmd, quiet=False):
    subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.DEVNULL if quiet else None)


def evaluate(cli, model, tasks, out):
    if not out.exists():
        run([cli, "eval", model, "--tasks", *tasks, "--json", out, "--quiet"], quiet=True)
    res = json.loads(out.read_text())["results"]
    return {name.removeprefix("testbed_"): r["acc"] for name, r in res.items()}


def merge(cli, tb, fts, name, method, params, model_params, work):
    out = work / name
    if out.exists():
        return out
    lines = [f"merge_method: {method}", f"base_model: {tb / 'base'}", "dtype: float32", "models:"]
    for ft in fts:
        lines.append(f"  - model: {tb / ft}")
        if model_params:
            lines.append("    parameters: {" + ", ".join(f"{k}: {v}" for k, v in model_params.items()) + "}")
    if params:
        lines.append("parameters: {" + ", ".join(f"{k}: {v}" for k, v in params.items()) + "}")
    cfg = work / f"{name}.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    run([cli, "merge", cfg, out, "--quiet"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("testbed", type=pathlib.Path)
    ap.add_argument("work", type=pathlib.Path)
    ap.add_argument("--cli", default="build/bin/mergesweep")
    a = ap.parse_args()
    tb, work = a.testbed.resolve(), a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    meta = json.loads((tb / "testbed.json").read_text())
    fams = [f["name"] for f in meta["families"]]
    tasks = [tb / f["task_pack"] for f in meta["families"]]
    fts = [f["name"] for f in meta["fine_tunes"]]

    rows = {m: evaluate(a.cli, tb / m, tasks, work / f"eval-{m}.json") for m in ["base", *fts]}
    for name, (method, params, mp, members) in MERGES.items():
        rows[name] = evaluate(a.cli, merge(a.cli, tb, members, name, method, params, mp, work), tasks,
                              work / f"eval-{name}.json")

    print("| model | emphasis | " + " | ".join(fams) + " | mean |")
    print("|---|---|" + "---:|" * (len(fams) + 1))
    emph = {f["name"]: "+".join(f["families"]) for f in meta["fine_tunes"]}
    for m, r in rows.items():
        mean = sum(r[f] for f in fams) / len(fams)
        print(f"| {m} | {emph.get(m, '')} | " + " | ".join(f"{r[f]:.3f}" for f in fams) + f" | {mean:.3f} |")

    failures = []
    for ft in meta["fine_tunes"]:
        for f in ft["families"]:
            gain = rows[ft["name"]][f] - rows["base"][f]
            if gain <= 0:
                failures.append(f"{ft['name']} does not beat the base on {f} ({gain:+.3f})")
    # The testbed's own scorer (testbed.json) and `mergesweep eval` must agree.
    for m in ["base", *fts]:
        for f in fams:
            if abs(meta["accuracy"][m][f] - rows[m][f]) > 1e-9:
                failures.append(f"{m}/{f}: testbed.json says {meta['accuracy'][m][f]}, eval says {rows[m][f]}")
    print("\n" + ("\n".join(failures) if failures else "every fine-tune beats the base on its families"))
    return 1 if any("testbed.json" in f for f in failures) else 0


if __name__ == "__main__":
    sys.exit(main())
