"""`analysis.load(ARCHIVE)`: tidy frames of an archive written by the test generator
(gen_archive.build_study, the documented layout), checked against what was written."""
import pathlib
import re

import numpy as np
import pytest

import analysis
from analysis import stats

from .gen_archive import FAILED_CONFIG, build_study

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "study.h5"
    n = build_study(path, samples=3, sizes=(2, 4), checkpoints=5, tasks=2, probes=2, layers=2)
    return analysis.load(path), n


def test_frames_are_tidy_and_complete(frames):
    f, n = frames
    assert len(f.configs) == n == 1 + 5 + 3 * 2 * 3
    assert f.configs["config_id"].is_unique and f.configs["config_id"].dtype == np.uint64
    assert {"label", "param_lambda", "param_density", "members"} <= set(f.configs.columns)
    assert set(f.configs.loc[f.configs["kind"] == "merge", "label"]) == {
        "task_arithmetic[lambda=0.5]", "task_arithmetic[lambda=1]", "ties"}
    assert len(f.results) == n * 2 * 2  # 2 tasks x (acc, acc_norm)
    assert list(f.results.columns[:4]) == ["config_id", "task", "metric", "value"] and "items" in f.results
    assert not f.results.duplicated(["config_id", "task", "metric"]).any()
    assert len(f.probes) == n * 2 * 2 and len(f.model_stats) == n and len(f.timings) == n
    assert set(f.results["config_id"]) == set(f.configs["config_id"])


def test_items_and_failures(frames):
    f, _ = frames
    assert f.items.empty and f.item_docs.empty  # a format-3 archive: no per-item rows (test_paired.py has them)
    assert list(f.failures["config_id"]) == [FAILED_CONFIG]
    assert list(f.failed_not_done()["config_id"]) == [FAILED_CONFIG]
    assert dict(f)["configs"] is f.configs


def test_worked_example_of_the_docs(frames, capsys):
    """docs/analysis.md's example, as written there, on the generated archive."""
    f, _ = frames
    doc = (ROOT / "docs" / "analysis.md").read_text()
    code = re.search(r"Worked example:.*?```python\n(.*?)```", doc, re.S).group(1)
    ns = {}
    exec(code.replace('"runs/demo.h5"', repr(f.path)), ns)
    table = ns["table"]
    assert len(table) == 6 and table["subsets"].tolist() == [3] * 6
    assert ((table["lo"] <= table["k"] / table["subsets"]) & (table["k"] / table["subsets"] <= table["hi"])).all()
    scores = stats.config_scores(f.configs.rename(columns={"config_id": "id"}), f.results, "acc")
    want = stats.systematic_table(scores).set_index(["method", "n"])
    got = table.set_index(["label", "n"])
    for key, r in got.iterrows():
        assert r["k"] / r["subsets"] == pytest.approx(want.loc[key, "share_beats_base"])
        assert r["lo"] == pytest.approx(want.loc[key, "share_beats_base_lo"])
