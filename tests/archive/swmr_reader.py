"""Reads a mergesweep archive with h5py (SWMR) while a writer appends, as an analyst would, and
checks every committed snapshot: usage: swmr_reader.py ARCHIVE READS RESULTS_PER_CONFIG.
Exit 0 after READS consistent snapshots with data, 1 on an inconsistency, 2 on timeout."""
import sys
import time

import h5py
import numpy as np

TABLES = ["checkpoints", "tasks", "specs", "configs", "results", "model_stats", "probes", "timings",
          "generations", "generation_tokens", "generation_text"]


def generations_of(i):
    """tests/archive/archive_fixture.cpp: how many generations config i has."""
    return 0 if i % 3 == 1 else i % 5


def committed(f):
    """Row counts of the last complete commit (docs/formats.md: the commit protocol)."""
    seq = f["commits/seq"][:]
    counts = {t: f["commits/" + t][:] for t in TABLES}
    for i in range(len(seq) - 1, -1, -1):
        if seq[i] != i + 1:
            continue
        row = {t: int(counts[t][i]) if i < len(counts[t]) else -1 for t in TABLES}
        if all(0 <= row[t] <= min(d.shape[0] for d in f[t].values()) for t in TABLES):
            return row
    return None


def snapshot(path, per):
    with h5py.File(path, "r", swmr=True) as f:
        c = committed(f)
        if c is None:
            return 0
        ids = f["configs/config_id"][: c["configs"]]
        samples = f["configs/sample"][: c["configs"]]
        if len(np.unique(ids)) != len(ids):
            raise AssertionError("duplicate config ids")
        if not np.array_equal(samples, np.arange(len(ids))):
            raise AssertionError("configs not 0..n-1")
        res = f["results/config_id"][: c["results"]]
        if len(res) != per * len(ids) or not np.isin(res, ids).all():
            raise AssertionError(f"results {len(res)} for {len(ids)} configs")
        tim = f["timings/config_id"][: c["timings"]]
        if not np.array_equal(np.sort(tim), np.sort(ids)):
            raise AssertionError("timings do not match configs")
        tasks = f["results/task"].asstr()[: c["results"]]
        if len(tasks) and not all(t.startswith("task_") for t in tasks):
            raise AssertionError("bad task names")
        check_generations(f, c, ids, samples)
        return len(ids)


def check_generations(f, c, ids, samples):
    """Every committed config has all its generations, each run inside the committed flat tables,
    and a generation's text is the fixture's (item 1 empty, item 0 with a NUL byte)."""
    g = {k: f["generations/" + k][: c["generations"]] for k in
         ("config_id", "item", "tokens_begin", "n_tokens", "text_begin", "text_bytes")}
    want = sum(generations_of(int(s)) for s in samples)
    if len(g["config_id"]) != want or not np.isin(g["config_id"], ids).all():
        raise AssertionError(f"{len(g['config_id'])} generations for configs that have {want}")
    tok_n, txt_n = c["generation_tokens"], c["generation_text"]
    if len(g["config_id"]) and ((g["tokens_begin"] + g["n_tokens"]).max() > tok_n or
                                (g["text_begin"] + g["text_bytes"]).max() > txt_n):
        raise AssertionError("a generation's run lies past the committed flat tables")
    text = f["generation_text/byte"][:txt_n].tobytes()
    for item, b, n in zip(g["item"], g["text_begin"], g["text_bytes"]):
        t = text[b:b + n]
        if (item == 1 and n != 0) or (item == 0 and (b"\0\xff\xfe" not in t or not t.startswith(b"ans "))):
            raise AssertionError(f"generation text of item {item} is {t[:20]!r}")


def main():
    path, reads, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    good, deadline = 0, time.time() + 60
    while good < reads and time.time() < deadline:
        try:
            n = snapshot(path, per)
        except AssertionError as e:
            print("inconsistent:", e, file=sys.stderr)
            return 1
        except (OSError, KeyError):
            time.sleep(0.005)  # not created yet, or being reopened by the writer
            continue
        good += n > 0
    return 0 if good >= reads else 2


if __name__ == "__main__":
    sys.exit(main())
