"""Paired statistics over items (analysis/paired.py) checked against the references called
directly: scipy.stats.bootstrap (paired=True, percentile) for the interval and statsmodels'
mcnemar(exact=True) for the test, on synthetic outcomes and on two models of an archive the engine
makes in the test (the testbed's tiny family; skipped while `mergesweep` is not built, MS_BUILD).
The engine-made archive also shows /results equal to what its per-item rows add up to."""
import os
import pathlib
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar

import analysis
import analysis.api
import analysis.reader
from analysis import paired

ROOT = pathlib.Path(__file__).resolve().parents[2]


def scipy_interval(a, b, seed, resamples=2000, level=0.95):
    r = sps.bootstrap((np.asarray(a, float), np.asarray(b, float)),
                      lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), paired=True, vectorized=True,
                      n_resamples=resamples, confidence_level=level, method="percentile",
                      random_state=np.random.default_rng(seed))
    return r.confidence_interval.low, r.confidence_interval.high


def statsmodels_mcnemar(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    return mcnemar(table, exact=True).pvalue


def test_one_task_matches_scipy_and_statsmodels_on_synthetic_outcomes():
    rng = np.random.default_rng(5)
    for n, seed in ((37, 0), (500, 11), (1200, 123)):
        a = (rng.random(n) < 0.62).astype(float)
        b = np.where(rng.random(n) < 0.8, a, 1 - a)  # mostly agrees: a paired design
        est, lo, hi = paired.bootstrap_gains({"t": (a - b)[:, None]}, seed=seed)
        want = scipy_interval(a, b, seed)
        assert est[0] == pytest.approx(a.mean() - b.mean(), abs=1e-15)
        assert (lo[0], hi[0]) == pytest.approx(want, abs=1e-12)
        assert paired.mcnemar_exact(a, b)[2] == pytest.approx(statsmodels_mcnemar(a, b), rel=1e-12, abs=1e-300)
    assert paired.mcnemar_exact([1, 0], [1, 0]) == (0, 0, 1.0)  # no discordant item


def _cli():
    exe = pathlib.Path(os.environ.get("MS_BUILD", ROOT / "build")) / "bin" / "mergesweep"
    if not exe.exists():
        pytest.skip(f"mergesweep is not built at {exe} (set MS_BUILD)")
    r = subprocess.run([str(exe), "archive", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"`mergesweep archive` is not available in {exe}")
    return str(exe)


@pytest.fixture(scope="module")
def engine_archive(tmp_path_factory):
    exe = _cli()
    d = tmp_path_factory.mktemp("paired")
    subprocess.run(["bash", str(ROOT / "tests/slurm/make_study.sh"), exe, str(d), "2", "3"], check=True,
                   capture_output=True)
    archive = d / "study.h5"
    r = subprocess.run([exe, "sweep", str(d / "study.yaml"), "--output", str(archive), "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if int(analysis.reader.read_archive(str(archive)).attributes.get("format_version", 0)) < 4:
        pytest.skip("the engine at MS_BUILD writes no per-item rows (format version < 4)")
    return exe, archive


def test_results_are_the_sums_of_the_engine_made_items(engine_archive):
    exe, archive = engine_archive
    f = analysis.load(archive)
    assert not f.items.empty
    for metric in ("acc", "acc_norm", "acc_bytes", "exact_match"):
        sums = f.items.groupby(["config_id", "task"], observed=True)[metric].agg(["sum", "count"]).reset_index()
        res = f.results[f.results["metric"] == metric].merge(sums, on=["config_id", "task"])
        assert len(res) == len(f.results[f.results["metric"] == metric]) > 0
        assert (res["value"] == res["sum"] / res["count"]).all(), metric
        assert (res["items"] == res["count"]).all()
    assert subprocess.run([exe, "archive", "verify", str(archive)], capture_output=True).returncode == 0


def test_two_engine_models_match_scipy_and_statsmodels(engine_archive):
    _, archive = engine_archive
    f = analysis.load(archive)
    task = sorted(f.items["task"].unique())[0]
    one = analysis.api.Frames(path=f.path, configs=f.configs, items=f.items[f.items["task"] == task])
    gains, tests = paired.paired_gains(one, seed=7)
    assert len(gains) == 6 and (gains["seed"] == 7).all() and (gains["resamples"] == 2000).all()
    base = f.configs.loc[f.configs["kind"] == "base", "config_id"].iloc[0]
    items = one.items.pivot(index="item", columns="config_id", values="acc")
    for _, g in gains.iterrows():
        merge, best = items[g["config_id"]].to_numpy(), items[g["best_id"]].to_numpy()
        assert g["gain_base"] == pytest.approx(merge.mean() - items[base].mean(), abs=1e-15)
        assert (g["gain_base_lo"], g["gain_base_hi"]) == pytest.approx(
            scipy_interval(merge, items[base].to_numpy(), 7), abs=1e-12)
        assert (g["gain_best_lo"], g["gain_best_hi"]) == pytest.approx(scipy_interval(merge, best, 7), abs=1e-12)
        for ref, other in (("base", items[base]), ("best_single", items[g["best_id"]])):
            row = tests[(tests["config_id"] == g["config_id"]) & (tests["reference"] == ref)].iloc[0]
            assert row["p"] == pytest.approx(statsmodels_mcnemar(merge, other.to_numpy()), rel=1e-12)
    assert (tests["p_adj"] >= tests["p"]).all() and (tests["p_adjust"] == "Holm").all()
    # every task at once: the same resamples for every config, one row per merge
    all_gains, all_tests = paired.paired_gains(f, seed=7)
    assert len(all_gains) == 6 and len(all_tests) == 6 * 2 * f.items["task"].nunique()
    assert ((all_gains["gain_base_lo"] <= all_gains["gain_base"]) & (all_gains["gain_base"] <= all_gains["gain_base_hi"])).all()


def test_best_single_is_the_highest_scoring_member():
    configs = pd.DataFrame({"config_id": np.array([1, 2, 3, 4, 5], np.uint64),
                            "kind": ["base", "single", "single", "single", "merge"],
                            "members": [(), (1,), (2,), (3,), (1, 3)]})
    scores = pd.Series({1: 0.5, 2: 0.6, 3: 0.9, 4: 0.6, 5: 0.7})
    r = paired.references(configs, scores)
    assert r.to_dict("records") == [{"config_id": 5, "base_id": 1, "best_id": 2}]  # tie 0.6: checkpoint 1
