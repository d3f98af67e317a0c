#!/usr/bin/env python3
"""Bad sweep archives for `mergesweep archive`: tests/bad-inputs/inputs/archive/ and
cases-archive.json (same schema as cases.json; test_cli runs every case).

Needs h5py (run with the project's interpreter, .venv/bin/python of the checkout). Files marked [h5py] below are written by h5py
following docs/formats.md ("Sweep archive") independently of the C++ writer, so the cases also
check that the documented layout is what the reader accepts:
  not_hdf5.h5                 plain text                                  (no HDF5 signature)
  truncated.h5        [h5py]  a complete archive cut to half its size
  plain_hdf5.h5       [h5py]  an HDF5 file without the archive attributes
  missing_group.h5    [h5py]  an archive without /results
  wrong_version.h5    [h5py]  format_version 99
  vlen_strings.h5     [h5py]  /results/task as variable-length strings (the format is fixed-length)
  no_commit.h5        [h5py]  tables present, /commits empty
  plan_a.h5, plan_b.h5 [h5py] complete archives of two different plans (merge refused)
  duplicate_ids.h5    [h5py]  two committed /configs rows with one config id   (verify: exit 1)
  orphan_results.h5   [h5py]  a committed /results row naming no config         (verify: exit 1)
"""
import hashlib
import json
import os
import shutil

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
IN = os.path.join(HERE, "inputs", "archive")
CASES = []

S = lambda n: h5py.string_dtype("utf-8", n)  # fixed-length UTF-8, as the format stores strings
TABLES = {
    "checkpoints": [("model", "<i4"), ("name", S(256)), ("path", S(4096)), ("sha256", S(64)), ("bytes", "<u8")],
    "tasks": [("name", S(256)), ("kind", S(16)), ("path", S(4096)), ("sha256", S(64)), ("items", "<i8")],
    "specs": [("start_time", S(32)), ("spec_hash", S(64)), ("plan_hash", S(64)), ("version", S(64)),
              ("git_revision", S(64)), ("host", S(256)), ("ranks", "<i4"), ("group_size", "<i4"),
              ("spec_text", S(65536))],
    "configs": [("config_id", "<u8"), ("kind", S(16)), ("method", S(64)), ("params", S(1024)), ("n", "<i4"),
                ("sample", "<i4"), ("members", S(1024))],
    "results": [("config_id", "<u8"), ("task", S(128)), ("metric", S(64)), ("value", "<f8"), ("stderr", "<f8"),
                ("n", "<i8")],
    "model_stats": [("config_id", "<u8"), ("l2_from_base", "<f8"), ("cos_mean", "<f8"), ("cos_min", "<f8"),
                    ("cos_max", "<f8")] + [("l2_" + k, "<f8") for k in
                                           ["embed", "lm_head", "attn", "mlp", "norm", "other"]],
    "probes": [("config_id", "<u8"), ("probe", S(128)), ("layer", "<i4"), ("f1_mean", "<f8"), ("f1_std", "<f8"),
               ("seeds", "<i4")],
    "timings": [("config_id", "<u8"), ("merge_s", "<f8"), ("eval_s", "<f8"), ("probe_s", "<f8"), ("total_s", "<f8"),
                ("group", "<i4")],
}


def rows(plan, ids):
    sha = lambda s: hashlib.sha256(s.encode()).hexdigest()
    spec = f"name: bad-{plan}\n"
    t = {
        "checkpoints": {"model": [0, 1, 2], "name": ["base", "ft-1", "ft-2"],
                        "path": [f"/m/{m}/model.safetensors" for m in ("base", "ft-1", "ft-2")],
                        "sha256": [sha(m) for m in ("base", "ft-1", "ft-2")], "bytes": [10, 10, 10]},
        "tasks": {"name": ["t0"], "kind": ["task"], "path": ["/t/t0.h5"], "sha256": [sha("t0")], "items": [5]},
        "specs": {"start_time": ["2026-11-23T10:00:00Z"], "spec_hash": [sha(spec)], "plan_hash": [plan],
                  "version": ["0.1.0"], "git_revision": ["h5py"], "host": ["h5py"], "ranks": [1], "group_size": [1],
                  "spec_text": [spec]},
        "configs": {"config_id": list(ids), "kind": ["merge"] * len(ids), "method": ["task_arithmetic"] * len(ids),
                    "params": ['{"lambda":1.0}'] * len(ids), "n": [2] * len(ids), "sample": list(range(len(ids))),
                    "members": ["1,2"] * len(ids)},
        "results": {"config_id": list(ids), "task": ["t0"] * len(ids), "metric": ["acc"] * len(ids),
                    "value": [0.5] * len(ids), "stderr": [0.1] * len(ids), "n": [5] * len(ids)},
        "model_stats": {c: [] for c, _ in TABLES["model_stats"]},
        "probes": {c: [] for c, _ in TABLES["probes"]},
        "timings": {"config_id": list(ids), "merge_s": [0.1] * len(ids), "eval_s": [0.1] * len(ids),
                    "probe_s": [0.0] * len(ids), "total_s": [0.2] * len(ids), "group": [0] * len(ids)},
    }
    return spec, t


def archive(name, plan="plan-A", ids=(11, 12, 13), version=1, drop=None, vlen=None, commit=True, edit=None):
    """A complete archive per docs/formats.md, written by h5py, with one optional defect."""
    spec, t = rows(plan, [np.uint64(i) for i in ids])
    if edit:
        edit(t)
    path = os.path.join(IN, name)
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["format_version"] = np.int64(version)
        for k, v in {"mergesweep_version": "0.1.0", "git_revision": "h5py", "spec_text": spec,
                     "spec_hash": hashlib.sha256(spec.encode()).hexdigest(), "plan_hash": plan, "host": "h5py",
                     "start_time": "2026-11-23T10:00:00Z"}.items():
            f.attrs[k] = v
        f.attrs["ranks"] = np.int64(1)
        f.attrs["group_size"] = np.int64(1)
        for table, cols in TABLES.items():
            if table == drop:
                continue
            g = f.create_group(table)
            g.attrs["columns"] = ",".join(c for c, _ in cols)
            for c, dt in cols:
                if (table, c) == vlen:
                    dt = h5py.string_dtype("utf-8")
                data = np.array(t[table][c], dtype=dt)
                # gzip keeps the committed fixtures small (the C++ writer does not compress; readers
                # accept any chunking and filter HDF5 can decode).
                g.create_dataset(c, data=data, maxshape=(None,), chunks=(max(1, min(64, 4096 // data.itemsize)),),
                                 compression="gzip")
        g = f.create_group("commits")
        names = ["seq", "time"] + list(TABLES)
        g.attrs["columns"] = ",".join(names)
        for c in names:
            if not commit:
                v = []
            elif c == "seq":
                v = [1]
            elif c == "time":
                v = [1.7e9]
            else:
                v = [len(t[c][TABLES[c][0][0]])]
            g.create_dataset(c, data=np.array(v, dtype="<f8" if c == "time" else "<i8"), maxshape=(None,), chunks=(64,))
    return "inputs/archive/" + name


def case(name, args, expect, exit_code=1, absent=()):
    CASES.append({"name": "archive_" + name, "args": args, "exit": exit_code, "expect": expect, "absent": list(absent)})


def main():
    shutil.rmtree(IN, ignore_errors=True)
    os.makedirs(IN)

    p = "inputs/archive/not_hdf5.h5"
    with open(os.path.join(HERE, p), "w") as f:
        f.write("runs/demo.h5 is not this: plain text\n")
    case("not_hdf5", f"archive info {p}", [p, "not an HDF5 file"])

    full = archive("truncated.h5")
    size = os.path.getsize(os.path.join(HERE, full))
    with open(os.path.join(HERE, full), "r+b") as f:
        f.truncate(size // 2)
    case("truncated", f"archive verify {full}", [full, "cannot open the HDF5 file"])

    p = "inputs/archive/plain_hdf5.h5"
    with h5py.File(os.path.join(HERE, p), "w") as f:
        f["x"] = np.arange(3)
    case("plain_hdf5", f"archive info {p}", [p, "format_version", "not a mergesweep archive"])

    p = archive("missing_group.h5", drop="results")
    case("missing_group", f"archive verify {p}", [p, "/results", "missing group"])

    p = archive("wrong_version.h5", version=99)
    case("wrong_format_version", f"archive info {p}", [p, "format version 99 is not supported"])

    p = archive("vlen_strings.h5", vlen=("results", "task"))
    case("vlen_strings", f"archive export {p} --out {{tmp}}/x", [p, "/results/task", "fixed-length"],
         absent=["{tmp}/x/results.csv"])

    p = archive("no_commit.h5", commit=False)
    case("no_commit", f"archive info {p}", [p, "/commits", "no complete commit"])

    a = archive("plan_a.h5", plan="plan-A")
    b = archive("plan_b.h5", plan="plan-B", ids=(13, 14))
    case("merge_different_plans", f"archive merge {a} {b} --out {{tmp}}/m.h5", [a, b, "different plan"],
         absent=["{tmp}/m.h5"])
    case("merge_onto_existing", f"archive merge {a} --out {b}", [b, "already exists"])

    def dup(t):
        t["configs"]["config_id"][2] = t["configs"]["config_id"][0]
        t["results"]["config_id"][2] = t["configs"]["config_id"][0]
        t["timings"]["config_id"][2] = t["configs"]["config_id"][0]
    p = archive("duplicate_ids.h5", edit=dup)
    case("duplicate_ids", f"archive verify {p}", [p, "duplicate config id"])

    def orphan(t):
        t["results"]["config_id"][1] = np.uint64(999)
    p = archive("orphan_results.h5", edit=orphan)
    case("orphan_results", f"archive verify {p}", [p, "/results: 1 committed rows reference configs",
                                                   "first: config 999"])

    case("export_bad_format", f"archive export {a} --out {{tmp}}/x --format xlsx", ["--format", "not csv or parquet"],
         absent=["{tmp}/x"])
    case("unknown_command", f"archive frobnicate {a}", ["unknown command 'frobnicate'"], exit_code=2)
    case("missing_file", "archive info inputs/archive/none.h5", ["inputs/archive/none.h5", "no such file"])

    # archive model / archive top (docs/archive.md)
    case("model_bad_config_id", f"archive model {a} xyz {{tmp}}/m", ["CONFIG_ID", "'xyz' is not a config id"],
         absent=["{tmp}/m"])
    case("model_unknown_config", f"archive model {a} 00000000000003e7 {{tmp}}/m", [a, "00000000000003e7",
                                                                                   "no such config"],
         absent=["{tmp}/m"])
    case("model_params_not_canonical", f"archive model {a} b {{tmp}}/m", [a, "/configs/params",
                                                                          "is not name=value"],
         absent=["{tmp}/m"])
    case("model_missing_out", f"archive model {a} b", ["expected OUT"], exit_code=2)
    case("top_unknown_task", f"archive top {a} --task nope", [a, "no scores for task 'nope'", "t0"])
    case("top_no_task", f"archive top {a}", ["--task"], exit_code=2)

    with open(os.path.join(HERE, "cases-archive.json"), "w") as f:
        json.dump({"cases": CASES}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
