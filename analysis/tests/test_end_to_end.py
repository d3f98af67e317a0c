"""The report end to end, on an archive the engine itself makes in the test: the
testbed's tiny family (`mergesweep testbed --preset tiny`), a small spec
(tests/slurm/make_study.sh), `mergesweep sweep`, then `mergesweep report` (the C++ verb that runs
this package). The report's numbers are checked against the
archive as `mergesweep archive export` (the engine's own reader) flattens it.

Skips, saying why, while the engine's verbs are not built; scripts/test.sh builds them (MS_BUILD).
"""
import os
import pathlib
import re
import subprocess
import sys
import time

import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "slurm"))


def _cli():
    build = pathlib.Path(os.environ.get("MS_BUILD", ROOT / "build"))
    exe = build / "bin" / "mergesweep"
    if not exe.exists():
        pytest.skip(f"mergesweep is not built at {exe} (set MS_BUILD)")
    for verb in ("testbed", "sweep", "archive"):
        r = subprocess.run([str(exe), verb, "--help"], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"`mergesweep {verb}` is not available in {exe} yet: {r.stderr.strip()[:200]}")
    return str(exe)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MS_PYTHON"] = sys.executable
    return env


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    exe = _cli()
    d = tmp_path_factory.mktemp("e2e")
    subprocess.run(["bash", str(ROOT / "tests/slurm/make_study.sh"), exe, str(d), "2"], check=True,
                   capture_output=True)
    archive = d / "study.h5"
    # Read the archive while the sweep writes it: every read must succeed, counts only grow.
    proc = subprocess.Popen([exe, "sweep", str(d / "study.yaml"), "--output", str(archive), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    while proc.poll() is None:
        if archive.exists():
            r = subprocess.run([sys.executable, "-m", "analysis", "info", str(archive)],
                               capture_output=True, text=True, env=_env())
            if r.returncode == 0:
                seen.append(int(re.search(r"(\d+) configs committed", r.stdout).group(1)))
            elif "commits" not in r.stderr and "cannot open" not in r.stderr:
                seen.append(("error", r.stderr))
        time.sleep(0.3)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    return exe, d, archive, seen


def test_reading_while_the_sweep_writes(study):
    exe, d, archive, seen = study
    errors = [s for s in seen if isinstance(s, tuple)]
    assert not errors, errors[:1]
    assert seen == sorted(seen)


def test_report_from_an_engine_made_archive(study, tmp_path):
    exe, d, archive, _ = study
    from check_archive import planned
    want, ntasks = planned(str(d / "study.yaml"))
    out = tmp_path / "rep"
    r = subprocess.run([exe, "report", str(archive), "--out", str(out)], capture_output=True, text=True,
                       env=_env())
    assert r.returncode == 0, r.stderr
    assert f"{want} configs committed" in r.stdout
    md = (out / "report.md").read_text()
    assert f"**{want} configs committed**" in md
    for fig in ("accuracy_vs_n", "l2_vs_gain", "probe_corr_spearman_rho"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    sysd = pd.read_csv(out / "tables" / "systematic.csv")
    assert set(sysd["method"]) == {"task_arithmetic[lambda=0.5]", "task_arithmetic[lambda=1]", "ties"}
    assert sorted(set(sysd["n"])) == [2, 4, 6]
    assert sysd["share_beats_base"].between(0, 1).all()

    # Recompute one cell from the engine's own flattening of the archive.
    ex = tmp_path / "engine-export"
    r = subprocess.run([exe, "archive", "export", str(archive), "--out", str(ex)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = pd.read_csv(ex / "results.csv")
    cfg = pd.read_csv(ex / "configs.csv")
    idcol = "config_id" if "config_id" in cfg else "id"
    acc = res[res["metric"] == "acc"].groupby("config_id")["value"].mean()
    ties = cfg[(cfg["method"] == "ties") & (cfg["n"] == 4)][idcol]
    base = cfg[cfg["kind"] == "base"][idcol]
    mean_acc = acc.reindex(ties).mean()
    share = (acc.reindex(ties) > acc.reindex(base).iloc[0]).mean()
    row = sysd[(sysd["method"] == "ties") & (sysd["n"] == 4)].iloc[0]
    assert row["acc_mean"] == pytest.approx(mean_acc, abs=1e-9)
    assert row["share_beats_base"] == pytest.approx(share)
    assert row["configs"] == len(ties)

    corr = pd.read_csv(out / "tables" / "probe_correlations.csv")
    assert corr["layer"].nunique() >= 1 and "(all probes)" in set(corr["probe"])




def test_a_failed_config_is_reported_and_left_out_of_the_tables(study, tmp_path):
    """A config that fails (injected through the engine's test hook) is in /failures, not in
    /configs: the reader lists it as failed and not done, the report says so and names it."""
    exe, d, archive, _ = study
    from analysis.reader import read_archive
    done = read_archive(str(archive)).configs
    victim = int(done[(done["kind"] == "merge") & (done["method"] == "ties")]["id"].iloc[0])
    out = tmp_path / "failed.h5"
    env = dict(_env(), MS_TEST_FAIL_CONFIG=f"{victim:016x}:0:bad_alloc")
    r = subprocess.run([exe, "sweep", str(d / "study.yaml"), "--output", str(out), "--quiet"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1, r.stderr  # a failed config makes the run's status 1
    a = read_archive(str(out))
    assert len(a.configs) == len(done) - 1 and victim not in set(a.configs["id"])
    f = a.failed_not_done()
    assert list(f["config_id"]) == [victim]
    row = f.iloc[0]
    assert row["failure"] == "oom" and "memory allocation failed" in row["message"]
    assert row["method"] == "ties" and len(row["members"]) == row["n"] > 1
    assert "1 configs failed and are not done" in a.summary()
    rep = tmp_path / "rep"
    r = subprocess.run([exe, "report", str(out), "--out", str(rep)], capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    md = (rep / "report.md").read_text()
    assert "## Failed configs" in md and str(victim) in md
