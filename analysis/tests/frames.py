"""A tiny hand-computable study as DataFrames (not an archive): base, 3 single checkpoints and
2 merges each of task_arithmetic and ties at n=2, two tasks A and B. Mean accuracies:
  base .5; singles 1: .5, 2: .6, 3: .4
  task_arithmetic {1,2}: .7   {2,3}: .5
  ties            {1,2}: .3   {2,3}: .6
"""
import json

import pandas as pd


def study():
    configs = pd.DataFrame([
        (1, "base", "", "{}", 0, 0, ()),
        (2, "single", "none", "{}", 1, 0, (1,)),
        (3, "single", "none", "{}", 1, 0, (2,)),
        (4, "single", "none", "{}", 1, 0, (3,)),
        (10, "merge", "task_arithmetic", json.dumps({"lambda": 1.0}), 2, 0, (1, 2)),
        (11, "merge", "task_arithmetic", json.dumps({"lambda": 1.0}), 2, 1, (2, 3)),
        (20, "merge", "ties", json.dumps({"lambda": 1.0, "density": 0.1}), 2, 0, (1, 2)),
        (21, "merge", "ties", json.dumps({"lambda": 1.0, "density": 0.1}), 2, 1, (2, 3)),
    ], columns=["id", "kind", "method", "params", "n", "sample", "members"])
    acc = {1: (.5, .5), 2: (.6, .4), 3: (.7, .5), 4: (.4, .4),
           10: (.8, .6), 11: (.5, .5), 20: (.3, .3), 21: (.6, .6)}
    rows = []
    for cid, (a, b) in acc.items():
        rows.append((cid, "A", "acc", a, 0.01))
        rows.append((cid, "B", "acc", b, 0.01))
        rows.append((cid, "A", "acc_norm", 0.0, 0.0))  # another metric: must be ignored
    results = pd.DataFrame(rows, columns=["config_id", "task", "metric", "value", "stderr"])
    l2 = pd.DataFrame({"config_id": [10, 11, 20, 21], "l2_from_base": [1.0, 2.0, 30.0, 3.0]})
    # probe F1 at layer 0 rises with the mean accuracy, at layer 1 it falls
    order = {1: .5, 2: .5, 3: .6, 4: .4, 10: .7, 11: .5, 20: .3, 21: .6}
    prow = []
    for cid, s in order.items():
        prow.append((cid, "syntax", 0, s, 0.0, 5))
        prow.append((cid, "syntax", 1, 1 - s, 0.0, 5))
    probes = pd.DataFrame(prow, columns=["config_id", "probe", "layer", "f1_mean", "f1_std", "seeds"])
    timings = pd.DataFrame({"config_id": list(acc), "merge_s": 1.0, "eval_s": 2.0, "probe_s": 0.5,
                            "total_s": 3.5, "group": 0})
    for d in (configs,):
        d["id"] = d["id"].astype("uint64")
    for d in (results, l2, probes, timings):
        d["config_id"] = d["config_id"].astype("uint64")
    return configs, results, l2, probes, timings
