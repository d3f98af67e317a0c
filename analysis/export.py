"""`python3 -m analysis export ARCHIVE --out DIR [--format csv|parquet]`: tidy tables.

results.<ext>: one row per (config, task, metric): the config's kind, method, parameters (JSON),
  n, sample, members ("1,4,7"), then task, metric, value, stderr, items. Probe scores are rows
  too: task "probe:<name>", metric "macro_f1", with their layer (empty for benchmark rows) and
  the std over seeds in `stderr`.
configs.<ext>: one row per config: id, kind, method, n, sample, members, one param_<name> column
  per parameter, L2 and cosine statistics, timings.
Parquet needs pyarrow (not a Debian dependency of this project); CSV always works.
"""
from __future__ import annotations

import os

import pandas as pd

from .reader import expand_params, read_archive


def _members_text(m):
    return ",".join(map(str, m)) if isinstance(m, (tuple, list)) else str(m)


def tidy_results(configs: pd.DataFrame, results: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("id", "kind", "method", "params", "n", "sample", "members") if c in configs]
    c = configs[keys].rename(columns={"id": "config_id"}).copy()
    if "members" in c:
        c["members"] = c["members"].map(_members_text)
    parts = []
    if len(results):
        r = results.copy()
        r["layer"] = pd.NA
        parts.append(r)
    if probes is not None and len(probes):
        p = pd.DataFrame({"config_id": probes["config_id"], "task": "probe:" + probes["probe"].astype(str),
                          "metric": "macro_f1", "value": probes["f1_mean"],
                          "stderr": probes.get("f1_std"), "layer": probes["layer"]})
        parts.append(p)
    if not parts:
        return pd.DataFrame(columns=list(c.columns) + ["task", "metric", "value", "stderr", "layer"])
    rows = pd.concat(parts, ignore_index=True)
    out = c.merge(rows, on="config_id", how="inner")
    out["config_id"] = out["config_id"].map(lambda v: f"{int(v):016x}")
    order = ["config_id", "kind", "method", "params", "n", "sample", "members", "task", "metric", "value",
             "stderr", "items", "layer"]
    return out[[c for c in order if c in out] + [c for c in out if c not in order]]


def config_table(archive) -> pd.DataFrame:
    c = expand_params(archive.configs).rename(columns={"id": "config_id"})
    if "members" in c:
        c["members"] = c["members"].map(_members_text)
    for t in (archive.model_stats, archive.timings):
        if len(t):
            c = c.merge(t.groupby("config_id").first().reset_index(), on="config_id", how="left")
    c["config_id"] = c["config_id"].map(lambda v: f"{int(v):016x}")
    return c


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
        return True
    except ImportError:
        return False


def run(archive_path: str, out: str, fmt: str = "csv", quiet: bool = False) -> list:
    if fmt == "parquet" and not parquet_available():
        raise RuntimeError("--format parquet needs pyarrow (pip install pyarrow); use --format csv")
    a = read_archive(archive_path)
    if not quiet:
        print(a.summary())
    os.makedirs(out, exist_ok=True)
    written = []
    for name, df in (("results", tidy_results(a.configs, a.results, a.probes)), ("configs", config_table(a))):
        path = os.path.join(out, f"{name}.{fmt}")
        if fmt == "parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
        written.append(path)
        if not quiet:
            print(f"export: {path} ({len(df)} rows)")
    return written
