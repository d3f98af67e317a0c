"""A format-version-3 archive with generations and one failed attempt, written with h5py to docs/formats.md ("Sweep
archive" and "Format version 2"): one group per table, one chunked extendible 1-D dataset per
column, the `columns` attribute, fixed-length NUL-padded strings, /commits rows. Used until the
engine's own writer stores generations; the layout is the documented one, column for column."""
import hashlib
import time

import h5py
import numpy as np

STR = {"checkpoints": {"name": 256, "path": 4096, "sha256": 64},
       "tasks": {"name": 256, "kind": 16, "path": 4096, "sha256": 64},
       "specs": {"start_time": 32, "spec_hash": 64, "plan_hash": 64, "version": 64, "git_revision": 64,
                 "host": 256, "spec_text": 65536},
       "configs": {"kind": 16, "method": 64, "params": 1024, "members": 1024},
       "results": {"task": 128, "metric": 64},
       "probes": {"probe": 128},
       "generations": {"task": 128, "stop": 16},
       "failures": {"kind": 16, "method": 64, "params": 1024, "members": 1024, "failure": 16, "message": 1024}}
NUM = {"checkpoints": [("model", "i4"), ("bytes", "u8")],
       "tasks": [("items", "i8")],
       "specs": [("ranks", "i4"), ("group_size", "i4")],
       "configs": [("config_id", "u8"), ("n", "i4"), ("sample", "i4")],
       "results": [("config_id", "u8"), ("value", "f8"), ("stderr", "f8"), ("n", "i8")],
       "model_stats": [("config_id", "u8")] + [(c, "f8") for c in (
           "l2_from_base", "cos_mean", "cos_min", "cos_max", "l2_embed", "l2_lm_head", "l2_attn", "l2_mlp",
           "l2_norm", "l2_other")],
       "probes": [("config_id", "u8"), ("layer", "i4"), ("f1_mean", "f8"), ("f1_std", "f8"), ("seeds", "i4")],
       "timings": [("config_id", "u8"), ("merge_s", "f8"), ("eval_s", "f8"), ("probe_s", "f8"), ("total_s", "f8"),
                   ("group", "i4")],
       "generations": [("config_id", "u8"), ("item", "i8"), ("tokens_begin", "i8"), ("n_tokens", "i4"),
                       ("text_begin", "i8"), ("text_bytes", "i4")],
       "generation_tokens": [("token", "i4")],
       "generation_text": [("byte", "u1")],
       "failures": [("config_id", "u8"), ("n", "i4"), ("sample", "i4"), ("group", "i4"), ("session", "i4"),
                    ("time", "f8")]}
ORDER = {"checkpoints": "model,name,path,sha256,bytes", "tasks": "name,kind,path,sha256,items",
         "specs": "start_time,spec_hash,plan_hash,version,git_revision,host,ranks,group_size,spec_text",
         "configs": "config_id,kind,method,params,n,sample,members",
         "results": "config_id,task,metric,value,stderr,n",
         "model_stats": "config_id,l2_from_base,cos_mean,cos_min,cos_max,l2_embed,l2_lm_head,l2_attn,l2_mlp,"
                        "l2_norm,l2_other",
         "probes": "config_id,probe,layer,f1_mean,f1_std,seeds",
         "timings": "config_id,merge_s,eval_s,probe_s,total_s,group",
         "generations": "config_id,task,item,stop,tokens_begin,n_tokens,text_begin,text_bytes",
         "generation_tokens": "token", "generation_text": "byte",
         "failures": "config_id,kind,method,params,n,sample,members,failure,message,group,session,time"}
TABLES = list(ORDER)
FAILED_CONFIG = 4242  # the one /failures row build() writes


def _dtype(table, col):
    if col in STR.get(table, {}):
        return np.dtype(f"S{STR[table][col]}")
    return np.dtype(dict(NUM[table])[col])


def _create(f, table, cols):
    g = f.create_group(table)
    g.attrs["columns"] = cols
    for c in cols.split(","):
        dt = _dtype(table, c)
        g.create_dataset(c, shape=(0,), maxshape=(None,), dtype=dt, chunks=(max(1, 4096 // dt.itemsize),))


def _append(f, table, rows):
    g = f[table]
    for c in g.attrs["columns"].split(","):
        ds = g[c]
        vals = [r[c] for r in rows]
        if ds.dtype.kind == "S":
            vals = [v.encode("utf-8") for v in vals]
        n = ds.shape[0]
        ds.resize((n + len(rows),))
        if rows:
            ds[n:] = np.array(vals, ds.dtype)


def _commit(f):
    counts = {t: f[t][ORDER[t].split(",")[0]].shape[0] for t in TABLES}
    c = f["commits"]
    seq = c["seq"].shape[0] + 1
    for name in c.attrs["columns"].split(","):
        v = seq if name == "seq" else time.time() if name == "time" else counts[name]
        ds = c[name]
        ds.resize((seq,))
        ds[seq - 1] = v
    f.flush()


def build(path, packs, configs):
    """packs: {task name: pack path}; configs: [(config_id, {task: [response str per item]})]."""
    with h5py.File(path, "w", libver="latest") as f:
        spec = "name: gen-test\n"
        for k, v in {"format_version": 3, "mergesweep_version": "test", "git_revision": "test", "spec_text": spec,
                     "spec_hash": hashlib.sha256(spec.encode()).hexdigest(), "plan_hash": "0" * 64, "host": "test",
                     "ranks": 1, "group_size": 1, "start_time": "2026-11-30T00:00:00Z"}.items():
            f.attrs[k] = np.int64(v) if isinstance(v, int) else v
        for t in TABLES:
            _create(f, t, ORDER[t])
        g = f.create_group("commits")
        g.attrs["columns"] = "seq,time," + ",".join(TABLES)
        for c in ["seq", "time"] + TABLES:
            g.create_dataset(c, shape=(0,), maxshape=(None,), dtype="f8" if c == "time" else "i8", chunks=(512,))
        _append(f, "checkpoints", [{"model": m, "name": f"m{m}", "path": f"/models/m{m}/model.safetensors",
                                    "sha256": "%064x" % m, "bytes": 1000} for m in range(3)])
        _append(f, "tasks", [{"name": n, "kind": "task", "path": str(p), "sha256": _sha(p), "items": _items(p)}
                             for n, p in packs.items()])
        _append(f, "specs", [{"start_time": "2026-11-30T00:00:00Z", "spec_hash": f.attrs["spec_hash"],
                              "plan_hash": "0" * 64, "version": "test", "git_revision": "test", "host": "test",
                              "ranks": 1, "group_size": 1, "spec_text": spec}])
        _commit(f)
        _append(f, "failures", [{"config_id": FAILED_CONFIG, "kind": "merge", "method": "ties", "params": "lambda=1",
                                 "n": 2, "sample": 1, "members": "1,2", "failure": "oom",
                                 "message": "merge on group rank 0: oom: out of memory", "group": 0, "session": 0,
                                 "time": 1.7e9}])
        _commit(f)
        for config_id, by_task in configs:
            add_config(f, config_id, by_task)
            _commit(f)


def add_config(f, config_id, by_task):
    _append(f, "configs", [{"config_id": config_id, "kind": "merge", "method": "task_arithmetic",
                            "params": "lambda=1", "n": 2, "sample": 0, "members": "1,2"}])
    _append(f, "timings", [{"config_id": config_id, "merge_s": 0.0, "eval_s": 1.0, "probe_s": 0.0, "total_s": 1.0,
                            "group": 0}])
    rows = []
    for task, responses in by_task.items():
        for item, text in enumerate(responses):
            b = text.encode("utf-8")
            rows.append({"config_id": config_id, "task": task, "item": item, "stop": "until", "tokens_begin":
                         f["generation_tokens/token"].shape[0], "n_tokens": 0,
                         "text_begin": f["generation_text/byte"].shape[0], "text_bytes": len(b)})
            _append(f, "generation_text", [{"byte": x} for x in b])
    _append(f, "generations", rows)


def _sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def _items(p):
    with h5py.File(p, "r") as f:
        return int(f["gold"].shape[0])


def build_study(path, samples=3, sizes=(2, 4, 6), checkpoints=12, tasks=4, probes=2, layers=3, seed=0,
                points=(("task_arithmetic", "lambda=0.5"), ("task_arithmetic", "lambda=1"), ("ties", "density=0.5"))):
    """A synthetic systematic study in the documented layout (no generations): base, one single
    per checkpoint, and `samples` merges per method point and size, each scored on `tasks` tasks
    (acc and acc_norm) with model_stats, probes at `layers` layers, timings, and one /failures row.
    Scores are random numbers (seeded) around .5 with a per-point trend in n: for the reader, the
    report and their timing, not for any finding. Returns the number of configs."""
    rng = np.random.default_rng(seed)
    cfgs = [(1, "base", "", "", 0, 0, ""), *[(2 + k, "single", "none", "", 1, 0, str(k)) for k in range(checkpoints)]]
    cid = 1000
    for j, (method, params) in enumerate(points):
        for n in sizes:
            for s in range(samples):
                cid += 1
                mem = ",".join(map(str, sorted(rng.choice(checkpoints, n, replace=False))))
                cfgs.append((cid, "merge", method, params, n, s, mem))
    with h5py.File(path, "w", libver="latest") as f:
        for k, v in {"format_version": 3, "mergesweep_version": "test", "spec_hash": "0" * 64,
                     "planned_configs": len(cfgs)}.items():
            f.attrs[k] = np.int64(v) if isinstance(v, int) else v
        for t in TABLES:
            _create(f, t, ORDER[t])
        g = f.create_group("commits")
        g.attrs["columns"] = "seq,time," + ",".join(TABLES)
        for c in ["seq", "time"] + TABLES:
            g.create_dataset(c, shape=(0,), maxshape=(None,), dtype="f8" if c == "time" else "i8", chunks=(512,))
        _append(f, "failures", [{"config_id": FAILED_CONFIG, "kind": "merge", "method": "ties", "params": "density=0.5",
                                 "n": 2, "sample": 99, "members": "0,1", "failure": "oom", "message": "out of memory",
                                 "group": 0, "session": 0, "time": 1.7e9}])
        for start in range(0, len(cfgs), 200):  # one commit per 200 configs, as a sweep's batches
            _study_batch(f, cfgs[start:start + 200], rng, tasks, probes, layers)
            _commit(f)
    return len(cfgs)


def _study_batch(f, cfgs, rng, tasks, probes, layers):
    rows = {t: [] for t in ("configs", "results", "model_stats", "probes", "timings")}
    for cid, kind, method, params, n, s, mem in cfgs:
        rows["configs"].append({"config_id": cid, "kind": kind, "method": method, "params": params, "n": n,
                                "sample": s, "members": mem})
        trend = {"ties": -0.01, "task_arithmetic": 0.004}.get(method, 0.0) * n
        for t in range(tasks):
            acc = float(np.clip(0.5 + trend + rng.normal(0, 0.02), 0, 1))
            for metric, v in (("acc", acc), ("acc_norm", acc - 0.01)):
                rows["results"].append({"config_id": cid, "task": f"task{t}", "metric": metric, "value": v,
                                        "stderr": 0.01, "n": 500})
        rows["model_stats"].append({"config_id": cid, **{c: float(rng.gamma(2.0, 0.5)) if kind == "merge" else 0.0
                                                         for c, _ in NUM["model_stats"][1:]}})
        for p in range(probes):
            for layer in range(layers):
                rows["probes"].append({"config_id": cid, "probe": f"probe{p}", "layer": layer,
                                       "f1_mean": float(rng.uniform(0.3, 0.9)), "f1_std": 0.0, "seeds": 1})
        rows["timings"].append({"config_id": cid, "merge_s": 1.0, "eval_s": 2.0, "probe_s": 0.5, "total_s": 3.5,
                                "group": 0})
    for t, r in rows.items():
        _append(f, t, r)
