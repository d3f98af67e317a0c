"""`mergesweep eval A B --tasks ...` against the reference tools, called directly here.

Two models of the tiny testbed (the base and a fine-tune) are compared on every multiple-choice
pack, and on one pack holding all their items (128: the tiny packs have 16 items each, too few for
a tight check). The per-item 0/1 vectors are read from eval's own --json "items" (the evaluator's
outcomes, the ones the archive's item tables hold), not recomputed. Then, per task and metric:
  - the difference equals mean(b - a) over those vectors (1e-12);
  - the exact McNemar p equals statsmodels' mcnemar(exact=True) on the 2x2 table (1e-12), and the
    discordant counts are the table's off-diagonal;
  - the paired interval agrees with scipy.stats.bootstrap(paired=True, method="percentile") on the
    same vectors within Monte-Carlo tolerance (below);
and the mean row's interval agrees with analysis.paired.bootstrap_gains (the definition analysis
reports, itself checked against scipy in analysis/tests/test_paired.py) within the same tolerance.

Tolerance. Both sides estimate the same percentile of the same bootstrap distribution (same data,
same resampling of items), from independent draws (eval: the counter RNG; scipy: numpy's PCG64).
The Monte-Carlo standard error of a percentile estimated from R resamples is
sqrt(q (1 - q) / R) / f(x_q); with the bootstrap distribution of a mean approximately normal with
sd s = std(d) / sqrt(n), f(x_q) = phi(z_q) / s. Two independent estimates differ by sqrt(2) times
that. The distribution lives on the lattice k / n (d is -1, 0 or 1), so an estimate can also sit
one lattice step away (seen: on the 128-item pack the 97.5% point of acc sits at cumulative
probability 0.975 of a lattice point, and both tools land on 3/128 or 4/128 depending on the seed).
Tolerance: 5 standard errors of the difference plus 1 / n; about 0.013 on the 128-item pack, under a
sixth of its interval's width (asserted). It is tight enough to matter: an unpaired bootstrap
(scipy, independent resamples of the two models) lies outside it, on the 128-item pack and on some
small task, so an engine that lost the pairing would fail here.
"""
import inspect
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
sps = pytest.importorskip("scipy.stats")
mcnemar = pytest.importorskip("statsmodels.stats.contingency_tables").mcnemar

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from analysis import intervals, paired  # noqa: E402

RESAMPLES = 20000  # more than the default 2000: a tighter Monte-Carlo tolerance
SEED = 11
ALL = "testbed_all"  # the pack of every item


def concat_packs(paths, out):
    """One multiple-choice pack (docs/formats.md, "Task packs") with the items of `paths` in order:
    offsets shifted past the items, choices and tokens before them."""
    parts = []
    for p in paths:
        with h5py.File(p, "r") as f:
            parts.append(({k: f[k][()] for k in f.keys()}, dict(f.attrs)))
    cat = {}
    for key, data in (("context_offsets", "context_tokens"), ("choice_offsets", "choice_chars"),
                      ("continuation_offsets", "continuation_tokens")):
        offs, shift = [np.zeros(1, np.int64)], 0
        for d, _ in parts:
            offs.append(d[key][1:] + shift)
            shift += len(d[data])
        cat[key] = np.concatenate(offs)
    for key in ("gold", "context_tokens", "continuation_tokens", "choice_chars", "choice_bytes"):
        cat[key] = np.concatenate([d[key] for d, _ in parts])
    with h5py.File(out, "w") as f:
        for k, v in parts[0][1].items():
            f.attrs[k] = v
        f.attrs["name"], f.attrs["source_task"] = ALL, "testbed/all"
        for k, v in cat.items():
            f[k] = v


@pytest.fixture(scope="module")
def compared(cli, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    tb = tmp / "tb"
    subprocess.run([cli, "testbed", "--out", str(tb), "--preset", "tiny", "--seed", "5", "--quiet"], check=True)
    packs = sorted(str(p) for p in (tb / "tasks").glob("*.h5"))
    with h5py.File(packs[0], "r") as f:
        assert set(f.keys()) == {"gold", "context_tokens", "context_offsets", "choice_offsets", "choice_chars",
                                 "choice_bytes", "continuation_tokens", "continuation_offsets"}
    concat_packs(packs, tmp / "all.h5")
    packs.append(str(tmp / "all.h5"))
    out = tmp / "cmp.json"
    run = subprocess.run([cli, "eval", str(tb / "base"), str(tb / "ft-00"), "--tasks", *packs, "--quiet",
                          "--resamples", str(RESAMPLES), "--bootstrap-seed", str(SEED), "--json", str(out)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.read_text()), run.stdout


def scipy_bootstrap(a, b, paired_=True, seed=0):
    kw = {"rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state":
          np.random.default_rng(seed)}
    r = sps.bootstrap((np.asarray(a, float), np.asarray(b, float)),
                      lambda x, y, axis=-1: y.mean(axis=axis) - x.mean(axis=axis), paired=paired_, vectorized=True,
                      n_resamples=RESAMPLES, confidence_level=0.95, method="percentile", **kw)
    return r.confidence_interval.low, r.confidence_interval.high


def tolerance(sd_of_mean, n, level=0.95):
    q = (1 - level) / 2
    density = sps.norm.pdf(sps.norm.ppf(q)) / sd_of_mean
    se = math.sqrt(q * (1 - q) / RESAMPLES) / density
    return 5 * math.sqrt(2) * se + 1.0 / n


def rows_by(j):
    return {(r["task"], r["metric"]): r for r in j["paired"]["rows"]}


def test_defaults_are_analysis_definitions(cli):
    help_text = subprocess.run([cli, "eval", "--help"], capture_output=True, text=True, check=True).stdout
    assert f"--resamples arg (={intervals.RESAMPLES})" in help_text
    assert f"--bootstrap-seed arg (={intervals.SEED})" in help_text


def test_task_rows_match_scipy_and_statsmodels(compared):
    j, stdout = compared
    assert j["paired"]["seed"] == SEED and j["paired"]["resamples"] == RESAMPLES and j["paired"]["level"] == 0.95
    assert f"{RESAMPLES} resamples, seed {SEED}" in stdout
    rows = rows_by(j)
    unpaired_outside = 0
    checked = 0
    for task, metrics in j["items"].items():
        for metric in ("acc", "acc_norm"):
            a, b = (np.asarray(v, float) for v in metrics[metric])
            assert len(a) == len(b) == j["models"][0]["results"][task]["n"]
            assert a.mean() == pytest.approx(j["models"][0]["results"][task][metric], abs=1e-12)
            assert b.mean() == pytest.approx(j["models"][1]["results"][task][metric], abs=1e-12)
            r = rows[(task, metric)]
            d = b - a
            assert r["diff"] == pytest.approx(d.mean(), abs=1e-12)
            ab = a.astype(bool), b.astype(bool)
            table = [[int((ab[0] & ab[1]).sum()), int((ab[0] & ~ab[1]).sum())],
                     [int((~ab[0] & ab[1]).sum()), int((~ab[0] & ~ab[1]).sum())]]
            assert (r["only_model"], r["only_reference"]) == (table[1][0], table[0][1])
            assert r["mcnemar_p"] == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)
            if d.std() == 0:  # both models agree on every item: a zero interval, nothing to resample
                assert r["ci_low"] == r["ci_high"] == d[0]
                continue
            tol = tolerance(d.std() / math.sqrt(len(d)), len(d))
            lo, hi = scipy_bootstrap(a, b, seed=SEED)
            assert r["ci_low"] == pytest.approx(lo, abs=tol), (task, metric, tol)
            assert r["ci_high"] == pytest.approx(hi, abs=tol), (task, metric, tol)
            checked += 1
            ulo, uhi = scipy_bootstrap(a, b, paired_=False, seed=SEED)
            unpaired_outside += abs(ulo - r["ci_low"]) > tol or abs(uhi - r["ci_high"]) > tol
    assert checked >= 4
    assert unpaired_outside >= 1
    # the pack of every item: a check tighter than the interval, on discordant items enough for a real p
    for metric in ("acc", "acc_norm"):
        r = rows[(ALL, metric)]
        a, b = (np.asarray(v, float) for v in j["items"][ALL][metric])
        assert len(a) == 128 and r["only_model"] + r["only_reference"] >= 20
        tol = tolerance((b - a).std() / math.sqrt(len(a)), len(a))
        assert tol < (r["ci_high"] - r["ci_low"]) / 6
        ulo, uhi = scipy_bootstrap(a, b, paired_=False, seed=SEED)
        assert abs(ulo - r["ci_low"]) > tol or abs(uhi - r["ci_high"]) > tol


def test_mean_row_is_analysis_paired_bootstrap(compared):
    j, _ = compared
    rows = rows_by(j)
    for metric in ("acc", "acc_norm"):
        diffs = {t: (np.asarray(m[metric][1], float) - np.asarray(m[metric][0], float))[:, None]
                 for t, m in j["items"].items()}
        est, lo, hi = paired.bootstrap_gains(diffs, seed=SEED, resamples=RESAMPLES)
        r = rows[("mean", metric)]
        assert r["diff"] == pytest.approx(est[0], abs=1e-12)
        # sd of the mean over T tasks of independent per-task means; the lattice is 1 / (T n_min)
        sd = math.sqrt(sum(d.var() / len(d) for d in diffs.values())) / len(diffs)
        tol = tolerance(sd, len(diffs) * min(len(d) for d in diffs.values()))
        assert r["ci_low"] == pytest.approx(lo[0], abs=tol)
        assert r["ci_high"] == pytest.approx(hi[0], abs=tol)
