"""Reads a sweep archive (HDF5, docs/formats.md) into pandas DataFrames, committed rows only.

Layout read here: one group per table (/configs, /results, /model_stats, /probes, /timings,
/checkpoints, /tasks; format version 2 adds /generations with the flat /generation_tokens and
/generation_text, version 3 /failures, version 4 the per-item outcomes /item_runs with the flat /items and
/item_docs, version 5 /fingerprints), one 1-D dataset per column, and /commits, a table whose last row holds the
committed row count of every other table. Rows at or beyond that count belong to a batch still
being written (or lost in a kill) and are ignored, so an archive can be read while a sweep runs.

The file is opened with SWMR when it allows (the engine writes with SWMR), else read-only without
file locking, so that a reader never blocks, or is blocked by, the writer.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

TABLES = ("checkpoints", "tasks", "specs", "configs", "results", "model_stats", "probes", "timings",
          "generations", "generation_tokens", "generation_text",  # these three: version 2
          "failures",  # version 3
          "item_runs", "items", "item_docs",  # version 4
          "fingerprints")  # version 5

# Runs of these flat tables belong to /generations and /item_runs rows; they are read into them.
_FLAT = ("generation_tokens", "generation_text", "items", "item_docs")

SUPPORTED_VERSIONS = ("1", "2", "3", "4", "5")

# /items/outcome bits (docs/formats.md, format version 4)
OUTCOME_BITS = {"acc": 1, "acc_norm": 2, "acc_bytes": 4, "exact_match": 8}

FAILURE_COLUMNS = ("config_id", "kind", "method", "params", "n", "sample", "members", "failure", "message", "group",
                   "session", "time")

SCORE_COMMAND = "python3 -m analysis score"


class ArchiveError(Exception):
    """An archive that cannot be read; the message names the file and what is wrong."""


@dataclass
class Archive:
    path: str
    attributes: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)  # name -> DataFrame (committed rows)
    commits: int = 0                            # number of committed batches

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    @property
    def configs(self) -> pd.DataFrame:
        return self.table("configs")

    @property
    def results(self) -> pd.DataFrame:
        return self.table("results")

    @property
    def model_stats(self) -> pd.DataFrame:
        return self.table("model_stats")

    @property
    def probes(self) -> pd.DataFrame:
        return self.table("probes")

    @property
    def timings(self) -> pd.DataFrame:
        return self.table("timings")

    @property
    def generations(self) -> pd.DataFrame:
        """One row per config, generate_until task and item: config_id, task, item, stop,
        tokens (int32 array), text (the response's exact bytes), response (text decoded as
        UTF-8, invalid bytes as U+FFFD). Empty for a version-1 archive."""
        return self.table("generations")

    @property
    def failures(self) -> pd.DataFrame:
        """Failed attempts, one row each: the config's columns (config_id, kind, method, params, n,
        sample, members), failure (error, oom, torch, exception), message, group, session (the
        /specs row of the run that recorded it), time. A config that failed is not in `configs`
        until a later run of the sweep succeeds with it. Empty (with these columns) before format
        version 3."""
        f = self.table("failures")
        if not len(f.columns):
            f = pd.DataFrame({c: pd.Series(dtype="uint64" if c == "config_id" else object) for c in FAILURE_COLUMNS})
        return f

    def failed_not_done(self) -> pd.DataFrame:
        """The last failure of each config that failed and is still not in `configs`."""
        f = self.failures
        if not len(f):
            return f
        done = set(self.configs["id"]) if "id" in self.configs else set()
        return f[~f["config_id"].isin(done)].drop_duplicates("config_id", keep="last")

    def unscored(self) -> pd.DataFrame:
        """Per generate_until task: configs with generations and how many of them have no
        /results row for the task yet (they await `python3 -m analysis score ARCHIVE`)."""
        return unscored_configs(self.generations, self.results)

    @property
    def n_configs(self) -> int:
        return len(self.configs)

    def summary(self) -> str:
        c = self.configs
        kinds = c["kind"].value_counts().to_dict() if "kind" in c else {}
        parts = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        planned = self.attributes.get("planned_configs")
        of = f" of {planned} planned" if planned not in (None, "") else ""
        text = (f"{self.path}: {self.n_configs} configs committed{of} ({parts or 'none'}), "
                f"{len(self.results)} results, {len(self.probes)} probe rows, {self.commits} commits")
        failed = self.failed_not_done()
        if len(failed):
            text += (f"\n{self.path}: {len(failed)} configs failed and are not done "
                     f"({len(self.failures)} failed attempts recorded); rerunning the sweep retries them")
        return text + unscored_text(self)


def unscored_configs(generations: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """task, configs (with generations), unscored (of those, without a /results row for the task)."""
    cols = ["task", "configs", "unscored"]
    if generations is None or not len(generations):
        return pd.DataFrame(columns=cols)
    gen = generations[["task", "config_id"]].drop_duplicates()
    if results is not None and len(results):
        scored = results[["task", "config_id"]].drop_duplicates().assign(_scored=True)
        gen = gen.merge(scored, on=["task", "config_id"], how="left")
    else:
        gen = gen.assign(_scored=False)
    gen["_scored"] = gen["_scored"].fillna(False).astype(bool)
    out = gen.groupby("task").agg(configs=("config_id", "size"), scored=("_scored", "sum")).reset_index()
    out["unscored"] = out["configs"] - out["scored"].astype(int)
    return out[cols]


def unscored_text(archive: "Archive") -> str:
    """A line per generate_until task whose generations lack scores, with the command to run."""
    u = archive.unscored()
    u = u[u["unscored"] > 0]
    if not len(u):
        return ""
    lines = [f"\n{archive.path}: generations lack scores: " +
             ", ".join(f"{r.task} {r.unscored} of {r.configs} configs" for r in u.itertuples()),
             f"score them with: {SCORE_COMMAND} {archive.path}"]
    return "\n".join(lines)


def _decode(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def _column(ds, n: int):
    """The first n values of a 1-D dataset as a list or array, strings decoded."""
    data = ds[:n] if ds.shape and ds.shape[0] >= n else ds[()]
    data = data[:n]
    if data.dtype.kind in ("S", "O", "U"):
        out = [_decode(v) for v in data]
        # variable-length integer arrays (members) come back as numpy arrays
        return [list(map(int, v)) if isinstance(v, np.ndarray) else v for v in out]
    if data.dtype.names:  # compound: not expected, flatten to tuples
        return [tuple(r) for r in data]
    return np.asarray(data)


def _attr(v):
    v = _decode(v)
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (np.integer, np.floating)):
        v = v.item()
    return v


def _open(path: str):
    import h5py

    if not os.path.exists(path):
        raise ArchiveError(f"{path}: no such file")
    errors = []
    for kwargs in ({"swmr": True}, {"locking": False}, {}):
        try:
            return h5py.File(path, "r", **kwargs)
        except (OSError, TypeError, ValueError) as e:  # not SWMR-capable, or locked, or old h5py
            errors.append(str(e))
    raise ArchiveError(f"{path}: cannot open as an HDF5 file ({errors[0]})")


def _refresh(ds):
    if hasattr(ds, "refresh"):
        try:
            ds.refresh()  # SWMR: see rows appended since the file was opened
        except Exception:  # refresh needs SWMR mode; harmless otherwise
            pass
    return ds


def _committed_counts(f) -> tuple[dict, int]:
    """Row count per table from the last complete /commits row, as the engine's reader does
    (src/archive/format.cpp, last_commit): scanning backwards, a row counts when its `seq` equals
    its 1-based row number and no count exceeds the length of that table's datasets.
    Returns ({table: rows}, commits) or ({}, 0) when nothing is committed yet."""
    if "commits" not in f:
        raise ArchiveError(f"{f.filename}: /commits: missing (not a mergesweep archive?)")
    g = f["commits"]
    cols = {name: _refresh(ds) for name, ds in g.items()}
    if "seq" not in cols:
        raise ArchiveError(f"{f.filename}: /commits/seq: missing (not a mergesweep archive?)")
    n = min(ds.shape[0] for ds in cols.values())
    if n == 0:
        return {}, 0
    data = {name: np.asarray(ds[:n]) for name, ds in cols.items()}
    tables = [t for t in cols if t not in ("seq", "time")]
    lengths = {}
    for t in tables:
        if t not in f or not hasattr(f[t], "items"):
            raise ArchiveError(f"{f.filename}: /{t}: table missing (named in /commits)")
        ls = [_refresh(ds).shape[0] for ds in f[t].values() if hasattr(ds, "shape")]
        lengths[t] = min(ls) if ls else 0
    for i in range(n - 1, -1, -1):
        if int(data["seq"][i]) != i + 1:
            continue
        counts = {t: int(data[t][i]) for t in tables}
        if all(0 <= counts[t] <= lengths[t] for t in tables):
            return counts, i + 1
    return {}, 0


def read_archive(path: str) -> Archive:
    """Everything committed in the archive at `path`."""
    path = str(path)
    with _open(path) as f:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        if "format_version" not in attrs:
            raise ArchiveError(f"{path}: format_version: root attribute missing: not a mergesweep archive")
        if str(attrs["format_version"]) not in SUPPORTED_VERSIONS:
            raise ArchiveError(f"{path}: format_version: archive format version {attrs['format_version']} "
                               f"is not supported (this reader reads {', '.join(SUPPORTED_VERSIONS)})")
        counts, ncommits = _committed_counts(f)
        tables = {}
        for name, obj in f.items():
            if name == "commits" or name in _FLAT or not hasattr(obj, "items"):
                continue
            n = counts.get(name, 0)
            cols = {}
            for col, ds in obj.items():
                if not hasattr(ds, "shape") or len(ds.shape) != 1:
                    continue
                _refresh(ds)
                if ds.shape[0] < n:
                    raise ArchiveError(f"{path}: /{name}/{col}: {ds.shape[0]} rows, "
                                       f"but /commits says {n} are committed")
                cols[col] = _column(ds, n)
            tables[name] = pd.DataFrame(cols)
        if "generations" in tables:
            tables["generations"] = _with_runs(f, tables["generations"], counts, path)
        if "item_runs" in tables:
            runs = tables.pop("item_runs")
            tables["items"] = _item_rows(f, runs, counts, path)
            tables["item_docs"] = _doc_rows(f, runs, counts, path)
    return Archive(path=path, attributes=attrs, tables=_normalize(tables), commits=ncommits)


def _with_runs(f, gen: pd.DataFrame, counts: dict, path: str) -> pd.DataFrame:
    """/generations rows with their ids and response bytes cut from the flat tables."""
    tok = np.asarray(_refresh(f["generation_tokens/token"])[: counts.get("generation_tokens", 0)])
    txt = np.asarray(_refresh(f["generation_text/byte"])[: counts.get("generation_text", 0)]).tobytes()
    tokens, text = [], []
    for tb, nt, xb, nx in zip(gen.get("tokens_begin", []), gen.get("n_tokens", []),
                              gen.get("text_begin", []), gen.get("text_bytes", [])):
        if tb < 0 or nt < 0 or tb + nt > len(tok) or xb < 0 or nx < 0 or xb + nx > len(txt):
            raise ArchiveError(f"{path}: /generations: a row's tokens [{tb}, +{nt}) or text [{xb}, +{nx}) lie "
                               f"outside the committed /generation_tokens ({len(tok)}) or /generation_text ({len(txt)})")
        tokens.append(tok[tb:tb + nt].astype(np.int32))
        text.append(txt[xb:xb + nx])
    gen = gen.drop(columns=[c for c in ("tokens_begin", "text_begin") if c in gen])
    gen["tokens"] = tokens
    gen["text"] = text
    gen["response"] = [b.decode("utf-8", "replace") for b in text]
    return gen


def _run_index(runs: pd.DataFrame, kind: str, available: int, path: str):
    """(config ids, tasks, row index into the flat table, position in the run) of every row of the
    runs of `kind`, in run order."""
    r = runs[runs["kind"] == kind]
    begin = r["begin"].to_numpy(np.int64)
    count = r["count"].to_numpy(np.int64)
    bad = (begin < 0) | (count < 0) | (begin + count > available)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ArchiveError(f"{path}: /item_runs: a row's rows [{begin[i]}, +{count[i]}) lie outside the "
                           f"{available} committed rows of {'/items' if kind == 'choice' else '/item_docs'}")
    total = int(count.sum())
    pos = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    rows = np.repeat(begin, count) + pos
    cid = np.repeat(r["config_id"].to_numpy(np.uint64), count)
    task = pd.Categorical(np.repeat(r["task"].to_numpy(object), count))
    return cid, task, rows, pos


def _flat(f, table: str, counts: dict) -> dict:
    n = counts.get(table, 0)
    return {c: np.asarray(_refresh(ds)[:n]) for c, ds in f[table].items()} if table in f else {}


def _item_rows(f, runs: pd.DataFrame, counts: dict, path: str) -> pd.DataFrame:
    """One row per config, multiple_choice task and item: the outcome bits as 0/1 columns."""
    cols = _flat(f, "items", counts)
    n = len(cols.get("outcome", []))
    cid, task, rows, pos = _run_index(runs, "choice", n, path)
    out = pd.DataFrame({"config_id": cid, "task": task, "item": pos.astype(np.int32)})
    outcome = cols["outcome"][rows] if n else np.zeros(0, np.uint8)
    for name, bit in OUTCOME_BITS.items():
        out[name] = ((outcome & bit) != 0).astype(np.uint8)
    out["chosen"] = cols["chosen"][rows] if n else np.zeros(0, np.int32)
    out["gold_loglik"] = cols["gold_loglik"][rows] if n else np.zeros(0, np.float32)
    return out


def _doc_rows(f, runs: pd.DataFrame, counts: dict, path: str) -> pd.DataFrame:
    """One row per config, loglikelihood_rolling task and document."""
    cols = _flat(f, "item_docs", counts)
    n = len(cols.get("loglik", []))
    cid, task, rows, pos = _run_index(runs, "rolling", n, path)
    out = pd.DataFrame({"config_id": cid, "task": task, "doc": pos})
    for c in ("loglik", "tokens", "words", "bytes"):
        out[c] = cols[c][rows] if n else np.zeros(0)
    return out


def _members(v):
    if isinstance(v, list):
        return tuple(int(x) for x in v)
    if isinstance(v, str):
        s = v.strip()
        if not s:
            return ()
        if s.startswith("["):
            return tuple(int(x) for x in json.loads(s))
        return tuple(int(x) for x in s.replace(";", ",").split(",") if x.strip())
    if isinstance(v, (int, np.integer)):
        return (int(v),)
    return tuple(v)


def model_names(checkpoints: pd.DataFrame) -> dict:
    """Model number (0 = base, k = checkpoint k) -> its short name, from /checkpoints (one row per
    file; the spec's `name:` or the folder's name). Empty when the table has no names."""
    if checkpoints is None or not {"model", "name"} <= set(checkpoints.columns):
        return {}
    names = {}
    for m, n in zip(checkpoints["model"], checkpoints["name"]):
        names.setdefault(int(m), str(n))
    return names


def member_names(members, names: dict) -> str:
    """Members by name joined with commas, as `archive export` writes member_names; a member
    without a name shows its number."""
    return ",".join(names.get(int(k)) or str(int(k)) for k in members)


def _normalize(tables: dict) -> dict:
    """Common column names and types whatever the writer's small spelling choices."""
    t = dict(tables)
    names = model_names(t.get("checkpoints"))
    c = t.get("configs")
    if c is not None and len(c.columns):
        c = c.rename(columns={"config_id": "id"})
        if "members" in c:
            c["members"] = [_members(v) for v in c["members"]]
            c["member_names"] = [member_names(m, names) for m in c["members"]]
        if "params" not in c:
            c["params"] = "{}"
        c["params"] = c["params"].fillna("")
        t["configs"] = c
    for name in ("results", "model_stats", "probes", "timings"):
        d = t.get(name)
        if d is not None and len(d.columns):
            d = d.rename(columns={"config": "config_id", "id": "config_id", "stderr_": "stderr"})
            if name == "results" and "n" in d:
                d = d.rename(columns={"n": "items"})  # items scored, not the subset size
            t[name] = d
    f = t.get("failures")
    if f is not None and "members" in f:
        f["members"] = [_members(v) for v in f["members"]]
        f["member_names"] = [member_names(m, names) for m in f["members"]]
    for name in ("results", "model_stats", "probes", "timings", "generations", "failures"):
        d = t.get(name)
        if d is not None and "config_id" in d:
            d["config_id"] = d["config_id"].astype("uint64")
    if c is not None and "id" in c:
        t["configs"]["id"] = t["configs"]["id"].astype("uint64")
    return t


def expand_params(configs: pd.DataFrame) -> pd.DataFrame:
    """configs with one column per method parameter (from the canonical JSON in `params`)."""
    from .stats import parse_params

    rows = [parse_params(p) for p in configs.get("params", pd.Series([], dtype=object))]
    params = pd.DataFrame(rows, index=configs.index)
    params.columns = [f"param_{k}" for k in params.columns]
    return pd.concat([configs, params], axis=1)
