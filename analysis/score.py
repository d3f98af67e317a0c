"""`python3 -m analysis score ARCHIVE`: lm-eval's own scoring of the generations in an archive.

The engine stores each generate_until item's response (lm-eval's decoded text cut at the first
`until` string) in /generations (docs/formats.md, "Format version 2"). This applies, per config
and task, the task's own filters (regex, take_first, ...), `process_results` and aggregation
functions, all lm-eval's code, to those responses, exactly as lm_eval/evaluator.py does after its
model ran, and appends the metrics as /results rows (metric `METRIC,FILTER`) in one more commit.

Only the scoring needs lm-eval (run with an interpreter that has it); `--check` does not.
Writing takes the archive's lock file (src/archive/lock_file.cpp: flock on ARCHIVE.lock), so it
never runs beside a sweep writing the same archive.
"""
from __future__ import annotations

import collections
import errno
import fcntl
import hashlib
import math
import os
import socket
import sys
import time

import h5py
import numpy as np

from .reader import SUPPORTED_VERSIONS, ArchiveError, _column, _committed_counts, _open

RESULT_WIDTHS = {"task": 128, "metric": 64}  # str[N] of /results (docs/formats.md)
LOCK_WAIT_S = 2.0                            # as a mergesweep writer retries


class ScoreError(Exception):
    """A step of scoring that cannot go on; the message names the file and what is wrong."""


def _committed(f, name, counts, cols):
    n = counts.get(name, 0)
    if name not in f:
        return {c: [] for c in cols}
    return {c: _column(f[name][c], n) for c in cols}


def read_state(path):
    """Committed /tasks, scored (config, task) pairs and /generations of the archive at `path`."""
    with _open(path) as f:
        version = f.attrs.get("format_version")
        if version is None or str(int(version)) not in SUPPORTED_VERSIONS:
            raise ArchiveError(f"{path}: format_version: {version!r}; analysis score reads archive versions "
                               f"{', '.join(SUPPORTED_VERSIONS)}")
        counts, commits = _committed_counts(f)
        tasks = _committed(f, "tasks", counts, ("name", "kind", "path", "sha256"))
        results = _committed(f, "results", counts, ("config_id", "task"))
        gens = _committed(f, "generations", counts, ("config_id", "task", "item", "text_begin", "text_bytes"))
        n_text = counts.get("generation_text", 0)
        text = np.asarray(f["generation_text/byte"][:n_text], np.uint8) if n_text else np.zeros(0, np.uint8)
    scored = {(int(c), t) for c, t in zip(results["config_id"], results["task"])}
    return {"counts": counts, "commits": commits, "tasks": tasks, "scored": scored, "gens": gens, "text": text}


def lacking(state):
    """{(config_id, task): [(item, response bytes)]} of every config and task with generations
    and no /results row."""
    g, text = state["gens"], state["text"]
    out = collections.defaultdict(list)
    for c, t, item, b, n in zip(g["config_id"], g["task"], g["item"], g["text_begin"], g["text_bytes"]):
        key = (int(c), t)
        if key not in state["scored"]:
            out[key].append((int(item), bytes(text[int(b):int(b) + int(n)])))
    return dict(out)


def check(path):
    """`--check`: lists configs lacking scores; 1 when there are any."""
    todo = lacking(read_state(path))
    for (c, t), items in sorted(todo.items()):
        print(f"{path}: config {c} task {t}: {len(items)} generations, no scores")
    print(f"{path}: {len(todo)} config/task pairs lack scores" if todo else f"{path}: every generation is scored")
    return 1 if todo else 0


def _import_lm_eval():
    try:
        import lm_eval  # noqa: F401
        from lm_eval.tasks import TaskManager  # noqa: F401
    except ImportError as e:
        raise ScoreError(f"analysis score needs lm-eval (lm_eval 0.4.x with transformers) in this interpreter "
                         f"({sys.executable}): {e}; run it with that venv's python, e.g. "
                         f"`/path/to/venv/bin/python -m analysis score ARCHIVE`") from None


def _resolve_pack(archive, path, pack_dir):
    for p in (path, os.path.join(os.path.dirname(os.path.abspath(archive)), path),
              os.path.join(pack_dir, os.path.basename(path)) if pack_dir else None):
        if p and os.path.isfile(p):
            return p
    raise ScoreError(f"{archive}: /tasks/path: task pack {path} not found (also looked beside the archive"
                     f"{' and in ' + pack_dir if pack_dir else ''}; pass --pack-dir)")


def _sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TaskManagers:
    """lm-eval's TaskManager, built once: the --include-path tasks alone first (indexing lm-eval's
    own ~15k task YAMLs takes seconds), all tasks when the name is not among them."""

    def __init__(self, include_path):
        self.include_path, self._local, self._all = include_path, None, None

    def find(self, name):
        from lm_eval.tasks import TaskManager

        if self.include_path:
            if self._local is None:
                self._local = TaskManager(include_path=self.include_path, include_defaults=False)
            if name in self._local.all_tasks:
                return self._local
        if self._all is None:
            self._all = TaskManager(include_path=self.include_path) if self.include_path else TaskManager()
        return self._all if name in self._all.all_tasks else None

class TaskScorer:
    """lm-eval's task behind one generate_until pack: its docs by the pack's doc_id, its filters,
    process_results and aggregation (lm_eval/evaluator.py after the model ran)."""

    def __init__(self, pack_path, managers, bootstrap_iters):
        with h5py.File(pack_path, "r") as p:
            a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in p.attrs.items()}
            if a.get("output_type") != "generate_until":
                raise ScoreError(f"{pack_path}: attribute output_type: {a.get('output_type')!r}, not generate_until")
            if "doc_id" not in p:
                raise ScoreError(f"{pack_path}: doc_id: missing; scoring needs the documents behind the items")
            self.doc_ids = [int(d) for d in p["doc_id"][:]]
        self.source_task = str(a.get("source_task", ""))
        self.task = self._load(self.source_task, managers, pack_path)
        docs = self.task.eval_docs
        if self.doc_ids and max(self.doc_ids) >= len(docs):
            raise ScoreError(f"{pack_path}: doc_id {max(self.doc_ids)}: lm-eval task {self.source_task} has "
                             f"{len(docs)} documents (another version of the task's data?)")
        self.docs = [docs[d] for d in self.doc_ids]
        self.bootstrap_iters = bootstrap_iters

    @staticmethod
    def _load(name, managers, pack_path):
        from lm_eval.tasks import get_task_dict

        tm = managers.find(name)
        if tm is None:
            hint = "" if managers.include_path else "; a local YAML task needs --include-path DIR"
            raise ScoreError(f"{pack_path}: source_task {name!r}: not an lm-eval task here{hint}")
        (_, task), = get_task_dict([name], tm).items()
        if task.OUTPUT_TYPE != "generate_until":
            raise ScoreError(f"{pack_path}: lm-eval task {name} is {task.OUTPUT_TYPE}, the pack generate_until")
        return task


    def score(self, responses):
        """[(metric 'NAME,FILTER', value, stderr, n)] for one config: responses[item] is the text
        of the pack's item (the items a config generated: all, or the first N under eval.limit)."""
        from lm_eval.api.instance import Instance
        from lm_eval.evaluator_utils import _compute_task_aggregations

        task = self.task
        insts = [Instance(request_type="generate_until", doc=self.docs[i], arguments=("", {}), idx=0,
                          metadata=(task.config.task, self.doc_ids[i], 1)) for i in sorted(responses)]
        for inst, i in zip(insts, sorted(responses)):
            inst.resps.append(responses[i])
        for f in task._filters:
            f.apply(insts)
        raw = collections.defaultdict(list)
        for key in insts[0].filtered_resps:
            for inst in insts:
                for metric, value in task.process_results(inst.doc, [inst.filtered_resps[key]]).items():
                    raw[(metric, key)].append(value)
        agg, _ = _compute_task_aggregations(task, raw, self.bootstrap_iters)
        rows = []
        for (metric, key), items in raw.items():
            value, stderr = agg[f"{metric},{key}"], agg.get(f"{metric}_stderr,{key}", "N/A")
            rows.append((f"{metric},{key}", float(value),
                         math.nan if stderr in ("N/A", None) else float(stderr), len(items)))
        return rows


def compute(archive, todo, state, include_path, pack_dir, bootstrap_iters):
    """/results rows [(config_id, task, metric, value, stderr, n)] for every (config, task) in todo."""
    tasks = state["tasks"]
    pack_of = {n: (p, s) for n, k, p, s in zip(tasks["name"], tasks["kind"], tasks["path"], tasks["sha256"])
               if k == "task"}
    rows, scorers, managers = [], {}, TaskManagers(include_path)
    for (config, task), items in sorted(todo.items()):
        if task not in scorers:
            if task not in pack_of:
                raise ScoreError(f"{archive}: /generations names task {task!r}, which /tasks does not list")
            recorded, sha = pack_of[task]
            path = _resolve_pack(archive, recorded, pack_dir)
            if sha and _sha256(path) != sha:
                raise ScoreError(f"{path}: sha256 differs from the archive's /tasks row for {task}: "
                                 "not the pack the sweep ran")
            scorers[task] = TaskScorer(path, managers, bootstrap_iters)
        s = scorers[task]
        responses = {i: text.decode("utf-8", "replace") for i, text in items}
        if len(responses) != len(items) or not all(0 <= i < len(s.doc_ids) for i in responses):
            raise ScoreError(f"{archive}: /generations: config {config} task {task}: items repeated or outside "
                             f"the pack's {len(s.doc_ids)} items")
        for metric, value, stderr, n in s.score(responses):
            rows.append((config, task, metric, value, stderr, n))
    return rows


class ArchiveLock:
    """The writer's lock (src/archive/lock_file.cpp): flock(LOCK_EX) on ARCHIVE.lock holding
    "pid N on HOST"; retried for 2 s; released by unlinking, then closing."""

    def __init__(self, archive):
        self.archive, self.path, self.fd = archive, archive + ".lock", -1

    def __enter__(self):
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                who = os.pread(fd, 255, 0).decode("utf-8", "replace").strip() or "holder unknown"
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise ScoreError(f"{self.archive}: lock: cannot lock {self.path}: {e.strerror}") from None
                if time.monotonic() >= deadline:
                    raise ScoreError(f"{self.archive}: lock: another process is writing this archive ({who}, lock "
                                     f"file {self.path} held); score it when that writer has finished") from None
                time.sleep(0.05)
                continue
            a, b = os.fstat(fd), os.stat(self.path) if os.path.exists(self.path) else None
            if b is not None and (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
                self.fd = fd
                return self
            os.close(fd)  # locked a file its holder had just unlinked: take the new one

    def __exit__(self, *exc):
        os.unlink(self.path)
        os.close(self.fd)
        self.fd = -1


def _put(ds, start, values):
    """Writes values at rows [start, start+len) of a 1-D extendible column (never shrinking it)."""
    end = start + len(values)
    if ds.shape[0] < end:
        ds.resize((end,))
    ds[start:end] = values


def append_results(archive, rows):
    """Appends rows to /results and one /commits row (docs/formats.md, "Commit protocol":
    columns, flush, commit row, flush). The caller holds the archive's lock."""
    for r in rows:
        for col, v in (("task", r[1]), ("metric", r[2])):
            if len(v.encode("utf-8")) > RESULT_WIDTHS[col]:
                raise ScoreError(f"{archive}: /results/{col}: {v!r} is longer than {RESULT_WIDTHS[col]} bytes")
    try:
        f = h5py.File(archive, "r+", locking=False)
    except OSError as e:
        raise ScoreError(f"{archive}: cannot open for writing ({e}); if a writer was killed, run "
                         "`mergesweep archive info ARCHIVE` first (it clears the stale mark)") from None
    with f:
        counts, commits = _committed_counts(f)
        if commits == 0:
            raise ScoreError(f"{archive}: /commits: no complete commit")
        start, res = counts["results"], f["results"]
        cols = {"config_id": np.array([r[0] for r in rows], np.uint64),
                "task": np.array([r[1].encode() for r in rows], res["task"].dtype),
                "metric": np.array([r[2].encode() for r in rows], res["metric"].dtype),
                "value": np.array([r[3] for r in rows], np.float64),
                "stderr": np.array([r[4] for r in rows], np.float64),
                "n": np.array([r[5] for r in rows], np.int64)}
        for name in res.attrs["columns"].split(","):
            _put(res[name], start, cols[name])
        f.flush()
        counts["results"] = start + len(rows)
        g = f["commits"]
        for name in g.attrs["columns"].split(","):
            v = commits + 1 if name == "seq" else time.time() if name == "time" else counts[name]
            _put(g[name], commits, np.array([v], g[name].dtype))
        f.flush()


def run(archive, include_path=None, pack_dir=None, bootstrap_iters=100000, quiet=False):
    """Scores every config and task lacking scores; the lock is held throughout, so no sweep
    writes the archive between reading the generations and committing their scores."""
    if not os.path.isfile(archive):
        raise ScoreError(f"{archive}: no such file")
    with ArchiveLock(archive):
        state = read_state(archive)
        todo = lacking(state)
        if not todo:
            print(f"{archive}: nothing to score (every generation already has scores)")
            return 0
        _import_lm_eval()
        t0 = time.time()
        rows = compute(archive, todo, state, include_path, pack_dir, bootstrap_iters)
        items = sum(len(v) for v in todo.values())
        append_results(archive, rows)
    if not quiet:
        print(f"{archive}: scored {len(todo)} config/task pairs ({items} items) in {time.time() - t0:.1f} s: "
              f"{len(rows)} /results rows in one commit")
    return 0


def main(args):
    try:
        if args.check:
            return check(args.archive)
        return run(args.archive, args.include_path, args.pack_dir, args.bootstrap_iters, args.quiet)
    except (ScoreError, ArchiveError) as e:
        print(f"mergesweep: error: {e}", file=sys.stderr)
        return 1
