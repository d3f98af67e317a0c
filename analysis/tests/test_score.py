"""`python3 -m analysis score` against lm-eval's own numbers (tests/fixtures/lmeval_gen_*: made by
lm-eval 0.4.13 with trained tiny models), on archives holding lm-eval's own responses.

The archive is built with h5py to docs/formats.md (gen_archive.py) until the engine's writer
stores generations. Scoring needs lm-eval: those tests run `analysis score` with the interpreter
named by MS_LMEVAL_PYTHON (or this one, if it has lm_eval), and are skipped without one; listing
(--check) and the lock refusal run everywhere."""
import fcntl
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis.reader import _committed_counts, read_archive
from analysis.tests import gen_archive

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
TASKS = ("ms_gen_arith", "ms_gen_reverse")


def lm_eval_python():
    exe = os.environ.get("MS_LMEVAL_PYTHON")
    if exe:
        return exe
    try:
        import lm_eval  # noqa: F401
        return sys.executable
    except ImportError:
        return None


def lm_eval_hf_python():
    """An interpreter with lm-eval's HF backend (torch, transformers), which the exporter needs:
    MS_LMEVAL_HF_PYTHON, else the lm-eval interpreter when it has them (the test setup's lm-eval
    venv has no torch: scoring needs none)."""
    exe = os.environ.get("MS_LMEVAL_HF_PYTHON") or lm_eval_python()
    if exe is None:
        return None
    probe = subprocess.run([exe, "-c", "import torch, transformers, lm_eval"], capture_output=True)
    return exe if probe.returncode == 0 else None


def expected(kind):
    with open(FIX / f"lmeval_gen_{kind}" / "expected.json", encoding="utf-8") as f:
        return json.load(f)


def include_dir(tmp_path):
    """The fixture's task YAMLs with absolute data paths (HF datasets resolves data_files against
    the working directory), with utils.py beside them for `!function`."""
    d = tmp_path / "tasks"
    if d.exists():
        return d
    d.mkdir()
    src = FIX / "lmeval_gen"
    for name in TASKS:
        text = (src / f"{name}.yaml").read_text()
        for data in ("arith_train", "arith_test", "reverse_test"):
            text = text.replace(f" {data}.jsonl", f" {src / (data + '.jsonl')}")
        (d / f"{name}.yaml").write_text(text)
    shutil.copy(src / "utils.py", d)
    return d


def make_archive(tmp_path, kind, configs):
    exp = expected(kind)
    packs = {t: FIX / f"lmeval_gen_{kind}" / f"{t}.h5" for t in TASKS}
    body = [(cid, {t: [resp(it) for it in exp["tasks"][t]["items"]] for t in TASKS}) for cid, resp in configs]
    path = tmp_path / f"{kind}.h5"
    gen_archive.build(path, packs, body)
    return path


def score(*args, exe=None):
    return subprocess.run([exe or sys.executable, "-m", "analysis", "score", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


def results(path):
    with h5py.File(path, "r") as f:
        counts, commits = _committed_counts(f)
        n = counts["results"]
        r = f["results"]
        rows = list(zip(r["config_id"][:n], r["task"].asstr()[:n], r["metric"].asstr()[:n], r["value"][:n],
                        r["stderr"][:n], r["n"][:n]))
    return rows, commits


LM_RESP = (17, lambda it: it["resp"])                  # lm-eval's own generated strings
TARGET_RESP = (99, lambda it: " " + it["target"])       # the gold answers (every metric 1)


def test_check_lists_configs_lacking_scores(tmp_path):
    a = make_archive(tmp_path, "bpe", [LM_RESP])
    r = score(a, "--check")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "config 17 task ms_gen_arith: 30 generations, no scores" in r.stdout
    assert "config 17 task ms_gen_reverse" in r.stdout


def test_a_held_lock_is_refused(tmp_path):
    a = make_archive(tmp_path, "bpe", [LM_RESP])
    with open(str(a) + ".lock", "w") as lock:
        lock.write("pid 4242 on elsewhere\n")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = score(a, "--include-path", include_dir(tmp_path))
    assert r.returncode == 1
    assert "another process is writing this archive (pid 4242 on elsewhere" in r.stderr
    assert results(a)[0] == []


@pytest.mark.parametrize("kind", ["bpe", "spm"])
def test_scores_equal_lm_eval(tmp_path, kind):
    exe = lm_eval_python()
    if exe is None:
        pytest.skip("no interpreter with lm-eval (set MS_LMEVAL_PYTHON)")
    a = make_archive(tmp_path, kind, [LM_RESP, TARGET_RESP])
    _, commits0 = results(a)
    r = score(a, "--include-path", include_dir(tmp_path), exe=exe)
    assert r.returncode == 0, r.stderr
    rows, commits = results(a)
    assert commits == commits0 + 1
    # The commit the scores add carries the other tables' counts over: the failure history stays.
    assert list(read_archive(str(a)).failures["config_id"]) == [gen_archive.FAILED_CONFIG]
    exp = expected(kind)["tasks"]
    got = {(c, t, m): (v, s, n) for c, t, m, v, s, n in rows}
    for task in TASKS:
        want = {k: v for k, v in exp[task]["metrics"].items() if "_stderr," not in k}
        assert {m for c, t, m in got if c == 17 and t == task} == set(want)
        for metric, value in want.items():
            v, s, n = got[(17, task, metric)]
            name, filt = metric.split(",")
            se = exp[task]["metrics"][f"{name}_stderr,{filt}"]
            assert v == pytest.approx(value, abs=1e-12), (task, metric)
            assert (math.isnan(s) and se == "N/A") or s == pytest.approx(se, abs=1e-12), (task, metric)
            assert n == exp[task]["n"]
            # the gold answers score 1 on every metric of these two tasks
            assert got[(99, task, metric)][0] == 1.0, (task, metric)
    again = score(a, "--include-path", include_dir(tmp_path), exe=exe)
    assert again.returncode == 0 and "nothing to score" in again.stdout
    assert results(a) == (rows, commits)  # idempotent: no new rows, no new commit
    assert score(a, "--check").returncode == 0


@pytest.mark.parametrize("kind", ["bpe", "spm"])
def test_scores_of_a_config_added_later(tmp_path, kind):
    """A resumed sweep adds configs after a scoring: only those are scored, in a new commit."""
    exe = lm_eval_python()
    if exe is None:
        pytest.skip("no interpreter with lm-eval (set MS_LMEVAL_PYTHON)")
    a = make_archive(tmp_path, kind, [LM_RESP])
    inc = include_dir(tmp_path)
    assert score(a, "--include-path", inc, exe=exe).returncode == 0
    first, _ = results(a)
    exp = expected(kind)["tasks"]
    with h5py.File(a, "a") as f:
        gen_archive.add_config(f, 5, {t: [it["resp"] for it in exp[t]["items"]] for t in TASKS})
        gen_archive._commit(f)
    assert score(a, "--check").returncode == 1
    assert score(a, "--include-path", inc, exe=exe).returncode == 0
    rows, _ = results(a)
    assert rows[:len(first)] == first
    assert sorted((t, m, v, n) for c, t, m, v, s, n in rows[len(first):]) == \
        sorted((t, m, v, n) for c, t, m, v, s, n in first)
    assert {c for c, *_ in rows[len(first):]} == {5}


def test_local_task_without_include_path_is_a_clear_error(tmp_path):
    exe = lm_eval_python()
    if exe is None:
        pytest.skip("no interpreter with lm-eval (set MS_LMEVAL_PYTHON)")
    a = make_archive(tmp_path, "bpe", [LM_RESP])
    r = score(a, exe=exe)
    assert r.returncode == 1
    assert "source_task 'ms_gen_arith': not an lm-eval task here; a local YAML task needs --include-path" in r.stderr


def test_without_lm_eval_the_message_says_so(tmp_path):
    try:
        import lm_eval  # noqa: F401
        pytest.skip("this interpreter has lm-eval")
    except ImportError:
        pass
    a = make_archive(tmp_path, "bpe", [LM_RESP])
    r = score(a)
    assert r.returncode == 1 and "analysis score needs lm-eval" in r.stderr


def test_generation_table_is_the_documented_layout(tmp_path):
    a = make_archive(tmp_path, "bpe", [LM_RESP])
    with h5py.File(a, "r") as f:
        counts, commits = _committed_counts(f)
        g = f["generations"]
        assert g.attrs["columns"] == "config_id,task,item,stop,tokens_begin,n_tokens,text_begin,text_bytes"
        text = f["generation_text/byte"][:counts["generation_text"]]
        b, n = int(g["text_begin"][3]), int(g["text_bytes"][3])
        item = int(g["item"][3])
    assert bytes(np.asarray(text[b:b + n], np.uint8)).decode() == \
        expected("bpe")["tasks"]["ms_gen_arith"]["items"][item]["resp"]
