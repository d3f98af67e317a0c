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
    for fig in ("accuracy_vs_n", "gain_best_vs_n", "l2_vs_gain", "probe_corr_spearman_rho",
                "probe_corr_pearson_r"):
        assert f"(figures/{fig}.png)" in md
        assert os.path.getsize(tmp_path / "figures" / f"{fig}.png") > 1000
    sysd = pd.read_csv(tmp_path / "tables" / "systematic.csv").set_index("method")
    assert sysd.loc["task_arithmetic", "share_beats_base"] == pytest.approx(0.5)
    assert sysd.loc["ties", "gain_best_mean"] == pytest.approx(-0.15)
    assert "(tables/probe_correlations.csv)" in md and "(tables/per_task.csv)" in md


def test_report_on_an_archive_without_results(tmp_path):
    a = Archive(path="(empty)", tables={"configs": pd.DataFrame(), "results": pd.DataFrame()})
    md = open(report.build_report(a, str(tmp_path))).read()
    assert "No committed results yet" in md


