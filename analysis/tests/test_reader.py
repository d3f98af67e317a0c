"""The reader on archives written by h5py to the documented layout (docs/formats.md) by the
archive module's own bad-input generator (tests/bad-inputs/make_bad_inputs_archive.py), and its
committed-rows rule: rows past the last complete /commits row are invisible."""
import pathlib
import shutil

import h5py
import numpy as np
import pytest

from analysis.reader import ArchiveError, read_archive

ARCH = pathlib.Path(__file__).resolve().parents[2] / "tests" / "bad-inputs" / "inputs" / "archive"


def need(name):
    p = ARCH / name
    if not p.exists():
        pytest.skip(f"{p} not generated")
    return p


def test_reads_a_complete_archive():
    a = read_archive(need("plan_a.h5"))
    assert a.n_configs == 3 and a.commits == 1
    assert list(a.configs["members"]) == [(1, 2)] * 3
    names = dict(zip(a.table("checkpoints")["model"], a.table("checkpoints")["name"]))
    assert list(a.configs["member_names"]) == [f"{names[1]},{names[2]}"] * 3  # by name, from /checkpoints

    assert set(a.results.columns) >= {"config_id", "task", "metric", "value", "stderr", "items"}
    assert a.attributes["format_version"] == 1


def test_member_names_fall_back_to_numbers():
    import pandas as pd
    from analysis.reader import member_names, model_names
    names = model_names(pd.DataFrame({"model": [0, 1, 1, 2], "name": ["base", "ft-a", "ft-a", "ft-b"]}))
    assert names == {0: "base", 1: "ft-a", 2: "ft-b"}
    assert member_names((1, 2, 3), names) == "ft-a,ft-b,3"
    assert member_names((1,), model_names(None)) == "1"


@pytest.mark.parametrize("name,msg", [("truncated.h5", "cannot open as an HDF5 file"),
                                      ("plain_hdf5.h5", "not a mergesweep archive"),
                                      ("wrong_version.h5", "version 99 is not supported"),
                                      ("missing_group.h5", "/results: table missing")])
def test_bad_archives_are_refused_with_the_reason(name, msg):
    with pytest.raises(ArchiveError, match=msg):
        read_archive(need(name))


def test_no_commit_means_nothing_committed():
    a = read_archive(need("no_commit.h5"))
    assert a.n_configs == 0 and a.commits == 0


def _append(ds, value):
    ds.resize((ds.shape[0] + 1,))
    ds[-1] = value


def test_only_committed_rows_are_read(tmp_path):
    p = tmp_path / "a.h5"
    shutil.copy(need("plan_a.h5"), p)
    with h5py.File(p, "a") as f:
        # a fourth config written but not committed (a batch in flight, or a kill)
        for col, ds in f["configs"].items():
            _append(ds, {"config_id": 99, "kind": "merge", "method": "ties", "params": "{}", "n": 2,
                         "sample": 3, "members": "1,2"}[col])
    assert read_archive(p).n_configs == 3
    with h5py.File(p, "a") as f:
        # a commit row whose seq is wrong (half-written) is not trusted either
        c = f["commits"]
        n = c["seq"].shape[0]
        for col, ds in c.items():
            _append(ds, {"seq": 0, "time": 0.0}.get(col, 0) if col in ("seq", "time") else ds[n - 1])
        c["configs"][-1] = 4
    assert read_archive(p).n_configs == 3
    with h5py.File(p, "a") as f:
        f["commits"]["seq"][-1] = f["commits"]["seq"].shape[0]
    a = read_archive(p)
    assert a.n_configs == 4 and a.commits == 2 and 99 in set(a.configs["id"])
    with h5py.File(p, "a") as f:
        # a commit that claims more rows than a table holds is ignored (falls back to the one before)
        c = f["commits"]
        for col, ds in c.items():
            _append(ds, ds[-1])
        c["seq"][-1] = c["seq"].shape[0]
        c["configs"][-1] = 10
    assert read_archive(p).n_configs == 4
