"""`python3 -m analysis findings`: on hand-computable frames, and end to end on an archive the
engine makes in the test (the tiny testbed, a spec with every method the findings name, a real
`mergesweep sweep`), its numbers recomputed from `mergesweep archive export` (the engine's own
flattening of the archive). The tiny family is too small to show the studies' effects, so the
test checks that each row is measured correctly, not which way it comes out.

The end-to-end part skips, saying why, while the engine is not built (MS_BUILD)."""
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import findings
from analysis.verdict import decide
from analysis.reader import Archive

from .frames import study

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _frames_archive():
    c, r, l2, p, t = study()
    return Archive(path="frames", tables={"configs": c, "results": r, "model_stats": l2, "probes": p,
                                          "timings": t})


def test_pipeline_rows_on_hand_computed_frames():
    tab = findings.findings(_frames_archive()).set_index("finding")
    rows = {k[:30]: v for k, v in tab.iterrows()}
    # TA {1,2} = .7 above its parents .5/.6; TA {2,3} .5 and TIES {2,3} .6 within [.4, .6]; TIES {1,2} .3 below
    between = next(v for k, v in rows.items() if k.startswith("behaviour (benchmark"))
    assert "50% of 4 merges between their parents, 25% above both" in between["measured"]
    assert between["reproduced"] == "noise"  # 50% is not "most", but 4 merges cannot rule it out
    assert "Wilson 95% [15%, 85%]" in between["measured"] and between["p_adjust"] == "Holm"
    above = next(v for k, v in rows.items() if k.startswith("merged models' probe F1"))
    # layer 0 F1 = accuracy, layer 1 F1 = 1 - accuracy: TA {1,2} (.7 > .6) and TIES {1,2} (.7 > .5)
    assert above["measured"].startswith("2 of 4 merges") and "+0.200" in above["measured"]
    assert above["reproduced"] == "yes"
    corr = next(v for k, v in rows.items() if k.startswith("behaviour and probed"))
    assert "Spearman rho = -1.00" in corr["measured"] and corr["reproduced"] == "no"  # interval far below -0.5
    simple = next(v for k, v in rows.items() if k.startswith("simpler methods"))
    assert simple["reproduced"] == "n/a"  # no linear or slerp merges
    # one subset size: no systematic row can be tested, so none is printed
    assert not (tab["study"] == "systematic").any()


def test_method_table_on_hand_computed_frames():
    scores, _, probes = findings.study_frames(_frames_archive())
    mt = findings.method_table(scores, probes).set_index("method")
    assert mt.loc["task_arithmetic", "acc_mean"] == pytest.approx(0.6)
    assert mt.loc["ties", "acc_between_parents"] == pytest.approx(0.5)
    assert mt.loc["ties", "f1_last_mean"] == pytest.approx((0.7 + 0.4) / 2)  # layer 1 = 1 - acc


def _synthetic_gains(samples):
    """TA gains rise with n and beat the best single at n >= 4 in 3 of 4 subsets; TIES falls with
    n and is below TA; `samples` subsets per size."""
    rows = []
    for n, ta, ties in ((2, 0.00, 0.00), (4, 0.05, -0.05), (6, 0.08, -0.10), (8, 0.10, -0.20)):
        for s in range(samples):
            rows.append({"method": "task_arithmetic", "n": n, "gain_base": ta + 0.001 * s, "params": "{}",
                         "beats_base": float(ta + 0.001 * s > 0), "beats_best": float(n >= 4 and s % 4 < 3),
                         "l2": 1.0 + s % 4})
            rows.append({"method": "ties", "n": n, "gain_base": ties - 0.001 * s, "params": "{}",
                         "beats_base": float(ties - 0.001 * s > 0), "beats_best": 0.0, "l2": 10.0 * n + s})
    return pd.DataFrame(rows)


def _decided(gains):
    tab = decide(findings.systematic_findings(gains))
    return {r["finding"][:40]: r for _, r in tab.iterrows()}


def test_systematic_rows_on_synthetic_gains():
    out = _decided(_synthetic_gains(20))
    con = next(v for k, v in out.items() if k.startswith("Task Arithmetic beats the best"))
    assert con["reproduced"] == "yes" and "best 75% at n=4" in con["measured"] and con["p_adj"] < 0.05
    grow = next(v for k, v in out.items() if k.startswith("Task Arithmetic's mean gain"))
    assert grow["reproduced"] == "yes"
    ties = next(v for k, v in out.items() if k.startswith("ties:"))
    assert ties["reproduced"] == "yes" and "below task_arithmetic at 2 of 2 sizes" in ties["measured"]
    tsv = next(v for k, v in out.items() if k.startswith("tsv_m:"))
    assert tsv["reproduced"] == "n/a"
    l2 = next(v for k, v in out.items() if k.startswith("L2 distance"))
    # 79 TA merges beat the base (L2 1-4); 81 do not: 80 TIES (L2 >= 20) and TA n=2 s=0 (L2 1, tied
    # with the 19 winners at L2 1): AUC = (79 * 80 + 19 * 0.5) / (79 * 81)
    assert l2["reproduced"] == "yes" and f"AUC = {(79 * 80 + 9.5) / (79 * 81):.3f} (79 of 160 merges" in l2["measured"]
    assert l2["ci_low"] >= 0.8 and not any(r["warning"] for r in out.values())


def test_too_few_subsets_are_noise_with_a_warning():
    out = _decided(_synthetic_gains(4))
    con = next(v for k, v in out.items() if k.startswith("Task Arithmetic beats the best"))
    # 3 of 4 at n = 4: above 30%, but the exact binomial p (0.08, x3 sizes) cannot tell it from noise
    assert con["reproduced"] == "noise" and "3/4 = 75% [30%, 95%]" in con["measured"]
    assert "only 4 subsets per size at n=4, 6, 8" in con["warning"]


# ---------------------------------------------------------------------------------------------
# the case: TA at lambda 0.5 and 1.0, 3 samples per size; TIES only at n = 2 and 4

def _two_lambda_archive():
    """base .5; six single checkpoints at .41 ... .46; TA lambda 0.5 beats the base once (n=2,
    sample 0: .55) and otherwise scores .45; TA lambda 1 scores .40 - .01 n; TIES (n = 2, 4) .44.
    One task A; one probe whose F1 equals the accuracy."""
    cfg = [(1, "base", "", "{}", 0, 0, ())] + [(1 + k, "single", "none", "{}", 1, 0, (k,)) for k in range(1, 7)]
    acc = {1: 0.5, **{1 + k: 0.40 + 0.01 * k for k in range(1, 7)}}
    cid = 100
    for method, lam, sizes in (("task_arithmetic", 0.5, (2, 4, 6)), ("task_arithmetic", 1.0, (2, 4, 6)),
                               ("ties", 1.0, (2, 4))):
        for n in sizes:
            for s in range(3):
                cid += 1
                cfg.append((cid, "merge", method, json.dumps({"lambda": lam}), n, s,
                            tuple((s + j) % 6 + 1 for j in range(n))))
                acc[cid] = {0.5: 0.55 if (n, s) == (2, 0) else 0.45, 1.0: 0.40 - 0.01 * n}[lam] \
                    if method == "task_arithmetic" else 0.44
    configs = pd.DataFrame(cfg, columns=["id", "kind", "method", "params", "n", "sample", "members"])
    configs["id"] = configs["id"].astype("uint64")
    ids = pd.Series(list(acc), dtype="uint64")
    results = pd.DataFrame({"config_id": ids, "task": "A", "metric": "acc", "value": list(acc.values())})
    probes = pd.DataFrame({"config_id": ids, "probe": "p", "layer": 0, "f1_mean": list(acc.values()),
                           "f1_std": 0.0, "seeds": 1})
    return Archive(path="two-lambda", tables={"configs": configs, "results": results, "probes": probes})


def test_each_lambda_is_its_own_point():
    tab = findings.findings(_two_lambda_archive())
    beats = tab[tab["finding"].str.startswith("Task Arithmetic improves over the base")].set_index("point")
    assert set(beats.index) == {"task_arithmetic[lambda=0.5]", "task_arithmetic[lambda=1]"}
    half, one = beats.loc["task_arithmetic[lambda=0.5]"], beats.loc["task_arithmetic[lambda=1]"]
    assert half["measured"].startswith("1 of 9 merges beat the base (11%") and "n=2: 1/3" in half["measured"]
    assert one["measured"].startswith("0 of 9 merges beat the base (0%")
    # both shares' Wilson intervals end below 50%: "no", each naming its point
    assert half["reproduced"] == one["reproduced"] == "no"
    assert "only 3 subsets per size at n=2, 4, 6" in half["warning"]
    grows = tab[tab["finding"].str.startswith("Task Arithmetic's mean gain")]
    assert len(grows) == 2


def test_untestable_is_na_with_the_reason():
    tab = findings.findings(_two_lambda_archive())
    ties = tab[tab["finding"].str.startswith("ties:")].iloc[0]
    assert ties["reproduced"] == "n/a"
    assert "no size n >= 6 shared with task_arithmetic" in ties["measured"]
    assert ties["point"].startswith("ties")


def test_text_names_points_intervals_and_noise():
    text = findings.findings_text(_two_lambda_archive())
    assert "tests: task_arithmetic[lambda=0.5]" in text and "tests: task_arithmetic[lambda=1]" in text
    assert "verdict: not distinguishable from noise" in text  # constructive interference: 0 of 3, [0%, 56%]
    assert "Holm-adjusted" in text and "bootstrap seed 0" in text
    assert "warning: only 3 subsets per size" in text
    bh = findings.findings(_two_lambda_archive(), p_adjust="bh")
    assert set(bh["p_adjust"]) == {"Benjamini-Hochberg"}


def test_method_table_keeps_lambdas_apart():
    scores, _, probes = findings.study_frames(_two_lambda_archive())
    mt = findings.method_table(scores, probes).set_index("point")
    assert mt.loc["task_arithmetic[lambda=0.5]", "merges"] == 9
    assert mt.loc["task_arithmetic[lambda=1]", "merges"] == 9
    assert mt.loc["task_arithmetic[lambda=1]", "acc_mean"] == pytest.approx(0.36)
    assert set(mt["method"]) == {"task_arithmetic", "ties"}


def _ties_vs_thin_ta_archive():
    """The issue's TA (lambda 0.5 and 1.0, 3 samples per size, n = 2, 4, 6) and TIES with 6
    samples at the same sizes, falling with n (.47 - .01 n): TIES is compared with each TA point
    at n = 6, where each TA point has only 3 subsets."""
    a = _two_lambda_archive()
    configs, results = a.configs, a.results
    configs = configs[configs["method"] != "ties"]
    results = results[results["config_id"].isin(configs["id"])]
    cfg, acc, cid = [], [], 500
    for n in (2, 4, 6):
        for s in range(6):
            cid += 1
            cfg.append((cid, "merge", "ties", json.dumps({"lambda": 1.0}), n, s, tuple((s + j) % 6 + 1 for j in range(n))))
            acc.append(0.47 - 0.01 * n)
    extra = pd.DataFrame(cfg, columns=configs.columns)
    extra["id"] = extra["id"].astype("uint64")
    configs = pd.concat([configs, extra], ignore_index=True)
    results = pd.concat([results, pd.DataFrame({"config_id": extra["id"], "task": "A", "metric": "acc",
                                                "value": acc})], ignore_index=True)
    return Archive(path="thin-ta", tables={"configs": configs, "results": results})


def test_a_comparison_warns_about_the_few_subsets_of_the_point_it_compares_with():
    tab = findings.findings(_ties_vs_thin_ta_archive())
    ties = tab[tab["finding"].str.startswith("ties:")]
    assert len(ties) == 1 and ties["point"].iloc[0].startswith("ties")
    row_ = ties.iloc[0]
    assert row_["reproduced"] != "n/a"  # n = 6 is shared with both TA points
    assert "below task_arithmetic[lambda=0.5]" in row_["measured"]
    assert "below task_arithmetic[lambda=1]" in row_["measured"]
    # TIES itself has 6 per size (enough); each TA point it is compared with has 3 at n = 6
    assert "only 6" not in row_["warning"]
    assert "only 3 task_arithmetic[lambda=0.5] subsets per size at n=6" in row_["warning"]
    assert "only 3 task_arithmetic[lambda=1] subsets per size at n=6" in row_["warning"]


def test_pooled_pipeline_findings_say_which_points_hold():
    tab = findings.findings(_two_lambda_archive())
    between = tab[tab["finding"].str.startswith("behaviour (benchmark")].iloc[0]
    assert between["point"].startswith("all merges")
    # per point, the merges between their parents (method table: 5/9, 0/9, 4/6)
    assert ("per point: task_arithmetic[lambda=0.5] 5/9, task_arithmetic[lambda=1] 0/9, ties 4/6; "
            "holds at: task_arithmetic[lambda=0.5], ties") in between["measured"]
    scores, _, probes = findings.study_frames(_two_lambda_archive())
    mt = findings.method_table(scores, probes).set_index("point")
    assert mt.loc["task_arithmetic[lambda=0.5]", "acc_between_parents"] == pytest.approx(5 / 9)
    assert mt.loc["ties", "acc_between_parents"] == pytest.approx(4 / 6)
    surpass = tab[tab["finding"].str.startswith("merged models' probe F1")].iloc[0]
    assert "per point: " in surpass["measured"] and "holds at: " in surpass["measured"]
    l2 = tab[tab["finding"].str.startswith("L2 distance")].iloc[0]
    assert l2["reproduced"] == "n/a" and "no model_stats.l2_from_base" in l2["measured"]


def test_every_row_names_its_point_and_every_na_its_reason():
    for archive in (_two_lambda_archive(), _ties_vs_thin_ta_archive(), _frames_archive()):
        tab = findings.findings(archive)
        assert tab["point"].astype(bool).all(), tab[["finding", "point"]]
        na = tab[tab["reproduced"] == "n/a"]
        assert na["measured"].str.startswith("not testable here: ").all()
        assert (na["measured"].str.len() > len("not testable here: ")).all()


# ---------------------------------------------------------------------------------------------
# end to end

SPEC = """name: findings-test
base: tb/base
checkpoints: tb/ft-*
subsets: {sizes: [2, 4, 6], samples: 4, seed: 5}
methods:
  - {method: task_arithmetic, lambda: 1.0, normalize: true}
  - {method: ties, density: 0.1, lambda: 1.0}
  - {method: tsv_m}
  - {method: iso_c}
  - {method: linear, sizes: [2]}
  - {method: slerp, t: 0.5, sizes: [1]}
eval:
  tasks: [tb/tasks/*.h5]
  probes: {packs: [tb/probes/*.h5], layers: all, seeds: 1}
output: study.h5
"""


def _cli():
    exe = pathlib.Path(os.environ.get("MS_BUILD", ROOT / "build")) / "bin" / "mergesweep"
    if not exe.exists():
        pytest.skip(f"mergesweep is not built at {exe} (set MS_BUILD)")
    return str(exe)


@pytest.fixture(scope="module")
def engine_archive(tmp_path_factory):
    exe = _cli()
    d = tmp_path_factory.mktemp("findings")
    subprocess.run([exe, "testbed", "--preset", "tiny", "--out", str(d / "tb"), "--quiet"], check=True)
    (d / "study.yaml").write_text(SPEC)
    r = subprocess.run([exe, "sweep", str(d / "study.yaml"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ex = d / "export"
    r = subprocess.run([exe, "archive", "export", str(d / "study.h5"), "--out", str(ex)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return exe, d, ex


def _run_findings(d, out):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "analysis", "findings", str(d / "study.h5"), "--out", str(out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout, pd.read_csv(out / "study-findings.csv", keep_default_na=False)  # "n/a" is a value


def _engine_tables(ex):
    cfg = pd.read_csv(ex / "configs.csv")
    idcol = "config_id" if "config_id" in cfg else "id"
    cfg = cfg.rename(columns={idcol: "cid"})
    res = pd.read_csv(ex / "results.csv")
    acc = res[res["metric"] == "acc"].groupby("config_id")["value"].mean()
    cfg["acc"] = acc.reindex(cfg["cid"]).values
    cfg["members"] = [tuple(int(x) for x in re.findall(r"\d+", str(m))) for m in cfg["members"]]
    return cfg, res


def test_findings_from_an_engine_made_archive(engine_archive, tmp_path):
    exe, d, ex = engine_archive
    text, tab = _run_findings(d, tmp_path)
    assert set(tab["reproduced"]) <= {"yes", "no", "noise", "n/a"}
    assert set(tab["study"]) == {"systematic", "pipeline"}
    assert "testable findings reproduced" in text and "Behaviour vs internals per method" in text
    assert len(tab) == 11  # 7 systematic (TA x 3, TIES, TSV-M, Iso-C, L2) + 4 pipeline
    assert (tmp_path / "study-methods.csv").exists()

    cfg, _ = _engine_tables(ex)
    base = cfg.loc[cfg["kind"] == "base", "acc"].iloc[0]
    single = {m[0]: a for m, a in zip(cfg.loc[cfg["kind"] == "single", "members"],
                                      cfg.loc[cfg["kind"] == "single", "acc"])}
    ta = cfg[cfg["method"] == "task_arithmetic"].copy()
    ta["beats_best"] = [a > max(single[k] for k in m) for a, m in zip(ta["acc"], ta["members"])]
    share = ta[ta["n"] >= 4].groupby("n")["beats_best"].mean()
    row = tab[tab["finding"].str.startswith("Task Arithmetic beats the best")].iloc[0]
    assert row["measured"].startswith(f"best {share.max():.0%} at n={int(share.idxmax())}")
    assert row["reproduced"] in (("yes", "noise") if share.max() >= 0.30 else ("no", "noise"))
    assert "Wilson 95% [" in row["measured"] and row["p_adjust"] == "Holm"

    ties = cfg[cfg["method"] == "ties"]
    gain = (ties.groupby("n")["acc"].mean() - base)
    row = tab[tab["finding"].str.startswith("ties:")].iloc[0]
    for n, v in gain.items():
        assert f"n={int(n)}: {v:+.3f}" in row["measured"]

    merges = cfg[cfg["kind"] == "merge"]
    lin = merges[merges["method"] == "linear"]
    within = [min(single[k] for k in m) <= a <= max(single[k] for k in m) for a, m in zip(lin["acc"], lin["members"])]
    sl = merges[merges["method"] == "slerp"]
    within += [min(single[m[0]], base) <= a <= max(single[m[0]], base) for a, m in zip(sl["acc"], sl["members"])]
    other = merges[~merges["method"].isin(["linear", "slerp"])]
    within += [min(single[k] for k in m) <= a <= max(single[k] for k in m) for a, m in zip(other["acc"], other["members"])]
    row = tab[tab["finding"].str.startswith("behaviour (benchmark")].iloc[0]
    assert row["measured"].startswith(f"{np.mean(within):.0%} of {len(within)} merges between their parents")


def test_findings_l2_auc_matches_the_engine_export(engine_archive, tmp_path):
    exe, d, ex = engine_archive
    _, tab = _run_findings(d, tmp_path)
    cfg, _ = _engine_tables(ex)
    ms = pd.read_csv(ex / "model_stats.csv") if (ex / "model_stats.csv").exists() else None
    if ms is None or "l2_from_base" not in ms:
        pytest.skip("the engine's export has no model_stats.csv with l2_from_base")
    base = cfg.loc[cfg["kind"] == "base", "acc"].iloc[0]
    m = cfg[cfg["kind"] == "merge"].merge(ms.groupby("config_id")["l2_from_base"].mean().rename("l2"),
                                          left_on="cid", right_index=True)
    m = m[m["l2"] > 0]
    pos, neg = m.loc[m["acc"] > base, "l2"].to_numpy(), m.loc[m["acc"] <= base, "l2"].to_numpy()
    row = tab[tab["finding"].str.startswith("L2 distance")].iloc[0]
    if len(pos) == 0 or len(neg) == 0:
        assert row["reproduced"] == "n/a"
        return
    auc = ((pos[:, None] < neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert f"AUC = {auc:.3f}" in row["measured"]
    assert row["reproduced"] in (("yes", "noise") if auc >= 0.8 else ("no", "noise"))
    u = sps.mannwhitneyu(-pos, -neg, alternative="two-sided")
    assert float(row["p"]) == pytest.approx(u.pvalue, abs=1e-12)
    assert float(row["ci_low"]) <= auc <= float(row["ci_high"])
    assert not math.isnan(auc)


def test_pipeline_demo_spec_on_the_tiny_family(engine_archive, tmp_path):
    """jobs/pipeline-demo.yaml as shipped (paths pointed at the tiny family): it runs, and its
    archive gives the four pipeline rows, no systematic row, and the per-method table."""
    exe, d, _ = engine_archive
    spec = (ROOT / "jobs" / "pipeline-demo.yaml").read_text()
    spec = spec.replace("../cache/testbed", str(d / "tb")).replace("../runs/pipeline-demo.h5", "p.h5")
    (tmp_path / "p.yaml").write_text(spec)
    r = subprocess.run([exe, "sweep", str(tmp_path / "p.yaml"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "analysis", "findings", str(tmp_path / "p.h5"), "--out",
                        str(tmp_path / "f")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    tab = pd.read_csv(tmp_path / "f" / "p-findings.csv", keep_default_na=False)
    assert list(tab["study"]) == ["pipeline"] * 4
    mt = pd.read_csv(tmp_path / "f" / "p-methods.csv")
    assert set(mt["method"]) == {"linear", "slerp", "task_arithmetic", "ties", "dare_ties"}
    assert mt["point"].nunique() == 10  # 1 + 2 + 2 + 2 + 3 method points, never pooled
    assert mt["merges"].sum() == 30  # 3 pairs x 7 method points + 3 models x 3 t
    assert {"spearman_rho", "spearman_p", "f1_above_parents"} <= set(mt.columns)
