"""An analyst's view of a sweep archive: h5py + pandas read every table of an archive written by
the C++ writer, following docs/formats.md ("Sweep archive"), and the CSV export reads back.

The archive is made by `mergesweep archive merge` (the C++ Writer) from a small archive written
here with h5py, so the test also checks that the documented layout round-trips. Skips without the
mergesweep binary (MS_BUILD) or h5py."""
import importlib.util
import pathlib
import subprocess

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pd = pytest.importorskip("pandas")

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLES = ["checkpoints", "tasks", "specs", "configs", "results", "model_stats", "probes", "timings"]


def load(path):
    """The reader of docs/formats.md, verbatim in spirit: last complete commit, then every column."""
    with h5py.File(path, "r", swmr=True) as f:
        seq = f["commits/seq"][:]
        counts = {t: f["commits/" + t][:] for t in TABLES}
        for i in range(len(seq) - 1, -1, -1):
            row = {t: int(counts[t][i]) for t in TABLES if i < len(counts[t])}
            if seq[i] == i + 1 and len(row) == len(TABLES) and all(
                    0 <= row[t] <= min(d.shape[0] for d in f[t].values()) for t in TABLES):
                break
        else:
            raise RuntimeError("no complete commit")
        out = {}
        for t in TABLES:
            cols = f[t].attrs["columns"].split(",")
            out[t] = pd.DataFrame({c: (f[t][c].asstr()[: row[t]] if f[t][c].dtype.kind == "S"
                                       else f[t][c][: row[t]]) for c in cols})
        return dict(f.attrs), out


@pytest.fixture()
def source(tmp_path):
    """A small archive with every table non-empty, written by h5py with the bad-input generator's schema."""
    spec = importlib.util.spec_from_file_location("gen", ROOT / "tests/bad-inputs/make_bad_inputs_archive.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.IN = str(tmp_path)
    big = np.uint64(2**64 - 5)  # config ids use all 64 bits

    def fill(t):
        ids = list(t["configs"]["config_id"])
        t["configs"]["config_id"][0] = big
        t["results"]["config_id"][0] = big
        t["timings"]["config_id"][0] = big
        ids[0] = big
        t["model_stats"] = {"config_id": ids[:2], "l2_from_base": [1.0, 2.0], "cos_mean": [0.1, 0.2],
                            "cos_min": [0.0, 0.1], "cos_max": [0.3, 0.4], "l2_embed": [np.nan, 0.5],
                            "l2_lm_head": [np.nan] * 2, "l2_attn": [0.7, 0.8], "l2_mlp": [0.9, 1.0],
                            "l2_norm": [np.nan] * 2, "l2_other": [np.nan] * 2}
        t["probes"] = {"config_id": ids, "probe": ["pos"] * 3, "layer": [0, 1, 2], "f1_mean": [0.5, 0.6, 0.7],
                       "f1_std": [0.01] * 3, "seeds": [5] * 3}
    gen.archive("src.h5", edit=fill)
    return tmp_path / "src.h5", big


def test_h5py_and_pandas_read_every_table(cli, source, tmp_path):
    src, big = source
    out = tmp_path / "cpp.h5"
    subprocess.run([cli, "archive", "merge", str(src), "--out", str(out)], check=True, capture_output=True)
    attrs, t = load(out)
    assert attrs["format_version"] == 1 and attrs["plan_hash"] == "plan-A"
    assert isinstance(attrs["spec_text"], str)
    assert {k: len(v) for k, v in t.items()} == {"checkpoints": 3, "tasks": 1, "specs": 1, "configs": 3,
                                                 "results": 3, "model_stats": 2, "probes": 3, "timings": 3}
    assert t["configs"]["config_id"].dtype == np.uint64
    assert t["configs"]["config_id"].iloc[0] == big
    assert list(t["configs"]["members"]) == ["1,2"] * 3
    assert t["checkpoints"]["sha256"].str.len().eq(64).all()
    tidy = t["results"].merge(t["configs"], on="config_id", suffixes=("", "_config"))
    assert len(tidy) == 3 and set(tidy["method"]) == {"task_arithmetic"}
    stats = t["model_stats"].set_index("config_id")
    assert np.isnan(stats.loc[big, "l2_embed"]) and stats["l2_attn"].tolist() == [0.7, 0.8]
    assert t["probes"]["layer"].tolist() == [0, 1, 2]
    # Same data as the h5py-written source.
    _, s = load(src)
    for name in TABLES:
        if name == "specs":
            continue
        pd.testing.assert_frame_equal(t[name].reset_index(drop=True), s[name].reset_index(drop=True),
                                      check_dtype=False)


def test_csv_export_reads_back_with_pandas(cli, source, tmp_path):
    src, big = source
    subprocess.run([cli, "archive", "export", str(src), "--out", str(tmp_path / "csv")], check=True,
                   capture_output=True)
    res = pd.read_csv(tmp_path / "csv/results.csv", dtype={"config_id": "uint64", "members": str})
    assert len(res) == 3 and res["config_id"].iloc[0] == big
    assert list(res.columns) == ["config_id", "kind", "method", "params", "n", "sample", "members", "task",
                                 "metric", "value", "stderr", "items"]
    assert res["params"].iloc[0] == '{"lambda":1.0}'
    ms = pd.read_csv(tmp_path / "csv/model_stats.csv")
    assert ms["l2_embed"].isna().iloc[0] and ms["l2_embed"].iloc[1] == 0.5
