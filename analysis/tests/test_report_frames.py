"""The report built from hand-made frames (the archive-reading path is covered by
test_end_to_end.py on an engine-made archive)."""
import os

import pandas as pd
import pytest

from analysis import report
from analysis.reader import Archive
from analysis.tests.frames import study


def _archive():
    configs, results, l2, probes, timings = study()
    return Archive(path="(frames)", attributes={"version": "test"},
                   tables={"configs": configs, "results": results, "model_stats": l2,
                           "probes": probes, "timings": timings}, commits=1)


def test_report_writes_tables_figures_and_links(tmp_path):
    path = report.build_report(_archive(), str(tmp_path))
    md = open(path).read()
    assert "**8 configs committed**" in md
    for fig in ("accuracy_vs_n", "gain_best_vs_n", "share_beats_base_vs_n", "l2_vs_gain",
                "probe_corr_spearman_rho", "probe_corr_pearson_r"):
        assert f"(figures/{fig}.png)" in md
        assert os.path.getsize(tmp_path / "figures" / f"{fig}.png") > 1000
    sysd = pd.read_csv(tmp_path / "tables" / "systematic.csv").set_index("method")
    assert sysd.loc["task_arithmetic", "share_beats_base"] == pytest.approx(0.5)
    assert sysd.loc["ties", "gain_best_mean"] == pytest.approx(-0.15)
    assert "(tables/probe_correlations.csv)" in md and "(tables/per_task.csv)" in md


def test_report_tables_carry_intervals_seed_and_correction(tmp_path):
    report.build_report(_archive(), str(tmp_path), seed=5, resamples=500, p_adjust="bh")
    sysd = pd.read_csv(tmp_path / "tables" / "systematic.csv").set_index("method")
    ta = sysd.loc["task_arithmetic"]
    # 1 of 2 beats the base: Wilson 95% [0.095, 0.905]; gains .2 and 0: bootstrap means lie in [0, .2]
    assert ta["share_beats_base_lo"] == pytest.approx(0.0945, abs=1e-3)
    assert ta["share_beats_base_hi"] == pytest.approx(0.9055, abs=1e-3)
    assert 0.0 <= ta["gain_base_lo"] <= ta["gain_base_mean"] <= ta["gain_base_hi"] <= 0.2
    assert set(sysd["p_adjust"]) == {"Benjamini-Hochberg"}
    assert set(sysd["bootstrap_seed"]) == {5} and set(sysd["bootstrap_resamples"]) == {500}
    md = (tmp_path / "report.md").read_text()
    assert "seed 5" in md and "Benjamini-Hochberg-adjusted" in md and "**Warning**" in md
    l2 = pd.read_csv(tmp_path / "tables" / "l2_success.csv")
    assert {"auc_p", "auc_lo", "auc_hi"} <= set(l2.columns)


def test_report_on_an_archive_without_results(tmp_path):
    a = Archive(path="(empty)", tables={"configs": pd.DataFrame(), "results": pd.DataFrame()})
    md = open(report.build_report(a, str(tmp_path))).read()
    assert "No committed results yet" in md




def _archive_with_new_kinds():
    """The study with a rolling task W (word_perplexity = 10 - 10 x accuracy of A and B: lower is
    better), a scored generation metric on G, and generations of G for configs 1, 2, 10 of which
    only 1 and 10 are scored."""
    configs, results, l2, probes, timings = study()
    acc = results[results["metric"] == "acc"]
    ppl = acc.assign(task="W", metric="word_perplexity", value=10 - 10 * acc["value"])
    em = acc[acc["task"] == "A"].assign(task="G", metric="exact_match,strict-match")
    em = em[em["config_id"].isin([1, 10])]
    gens = pd.DataFrame({"config_id": pd.Series([1, 1, 2, 10], dtype="uint64"), "task": "G", "item": [0, 1, 0, 0],
                         "stop": "until", "tokens": [[1]] * 4, "text": [b"4"] * 4, "response": ["4"] * 4})
    return Archive(path="(frames)", tables={"configs": configs, "results": pd.concat([results, ppl, em]),
                                            "model_stats": l2, "probes": probes, "timings": timings,
                                            "generations": gens}, commits=1)


def test_perplexities_rank_lower_is_better(tmp_path):
    path = report.build_report(_archive_with_new_kinds(), str(tmp_path), metric="word_perplexity")
    md = open(path).read()
    assert "lower is better" in md
    sysd = pd.read_csv(tmp_path / "tables" / "systematic.csv").set_index("method")
    # per task: base 5 and 5; task_arithmetic {1,2}: 2, 4 -> 3 (beats), {2,3}: 5 (ties the base)
    assert sysd.loc["task_arithmetic", "share_beats_base"] == pytest.approx(0.5)
    assert sysd.loc["task_arithmetic", "gain_base_mean"] == pytest.approx(1.0)
    # best single = the lowest: {1,2}: min(5, 4) = 4, {2,3}: min(4, 6) = 4; ties: 7 and 4
    assert sysd.loc["ties", "gain_best_mean"] == pytest.approx(-1.5)
    assert sysd.loc["ties", "gain_base_mean"] == pytest.approx(-0.5)
    metrics = pd.read_csv(tmp_path / "tables" / "metrics.csv")
    better = dict(zip(metrics["metric"], metrics["better"]))
    assert better["word_perplexity"] == "lower" and better["acc"] == "higher"
    assert better["exact_match,strict-match"] == "higher"


def test_scored_generation_metrics_are_metrics_and_unscored_configs_are_named(tmp_path):
    a = _archive_with_new_kinds()
    md = open(report.build_report(a, str(tmp_path), metric="exact_match,strict-match")).read()
    assert "Tasks (1): G." in md
    assert "1 lack scores" in md and "python3 -m analysis score (frames)" in md
    u = pd.read_csv(tmp_path / "tables" / "generation_scores.csv")
    assert u.to_dict("records") == [{"task": "G", "configs": 3, "unscored": 1}]
    ref = pd.read_csv(tmp_path / "tables" / "reference_models.csv")
    assert ref["score"].tolist() == pytest.approx([0.5])  # only the base is scored among base and singles
    assert "lack scores" in report.summary_text(a, "exact_match,strict-match")
