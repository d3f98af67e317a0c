"""Statistics with hand-computed answers (inputs in frames.py)."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import stats
from analysis.tests.frames import study


@pytest.fixture
def s():
    configs, results, l2, probes, timings = study()
    scores = stats.config_scores(configs, results, "acc")
    return configs, results, l2, probes, scores


def test_config_scores_are_means_over_tasks_of_the_chosen_metric(s):
    configs, results, l2, probes, scores = s
    assert scores.loc[1, "score"] == pytest.approx(0.5)
    assert scores.loc[10, "score"] == pytest.approx(0.7)
    assert scores.loc[4, "score"] == pytest.approx(0.4)
    assert list(scores.loc[[1, 2, 10, 20], "label"]) == ["base", "single", "task_arithmetic", "ties"]


def test_config_missing_a_task_is_left_out():
    configs, results, *_ = study()
    results = results[~((results["config_id"] == 11) & (results["task"] == "B"))]
    scores = stats.config_scores(configs, results, "acc")
    assert 11 not in scores.index and 10 in scores.index


def test_systematic_table(s):
    *_, scores = s
    t = stats.systematic_table(scores).set_index("method")
    ta, ties = t.loc["task_arithmetic"], t.loc["ties"]
    assert ta["configs"] == 2 and ta["n"] == 2
    assert ta["share_beats_base"] == pytest.approx(0.5)      # .7 > .5; .5 is not > .5
    assert ta["gain_base_mean"] == pytest.approx(0.1)        # (.2 + 0) / 2
    assert ta["gain_base_std"] == pytest.approx(math.sqrt(0.02))
    assert ta["gain_best_mean"] == pytest.approx(0.0)        # .7-.6, .5-.6
    assert ta["share_beats_best"] == pytest.approx(0.5)
    assert ta["acc_mean"] == pytest.approx(0.6)
    assert ties["share_beats_base"] == pytest.approx(0.5)    # .3 no, .6 yes
    assert ties["gain_base_mean"] == pytest.approx(-0.05)
    assert ties["gain_best_mean"] == pytest.approx(-0.15)    # .3-.6, .6-.6
    assert ties["share_beats_best"] == pytest.approx(0.0)    # equal is not constructive
    assert ties["rel_gain_best_mean"] == pytest.approx((-0.3 / 0.6 + 0) / 2)


def test_systematic_table_with_l2(s):
    configs, results, l2, probes, scores = s
    t = stats.systematic_table(scores, l2.set_index("config_id")["l2_from_base"]).set_index("method")
    assert t.loc["ties", "l2_mean"] == pytest.approx(16.5)
    assert t.loc["task_arithmetic", "l2_std"] == pytest.approx(math.sqrt(0.5))


def test_per_task_table(s):
    configs, results, *_ = s
    t = stats.per_task_table(configs, results, "acc").set_index(["method", "task"])
    a = t.loc[("task_arithmetic", "A")]
    assert a["acc_mean"] == pytest.approx(0.65)
    assert a["gain_base_mean"] == pytest.approx(0.15)
    assert a["share_beats_base"] == pytest.approx(0.5)
    b = t.loc[("ties", "B")]
    assert b["gain_base_mean"] == pytest.approx(-0.05)


def test_labels_name_the_parameters_that_vary():
    configs = pd.DataFrame({"id": [1, 2, 3], "kind": ["merge"] * 3,
                            "method": ["task_arithmetic", "task_arithmetic", "ties"],
                            "params": [json.dumps({"lambda": 0.5, "normalize": False}),
                                       json.dumps({"lambda": 1.0, "normalize": False}),
                                       json.dumps({"density": 0.1})]})
    assert list(stats.method_labels(configs)) == [
        "task_arithmetic[lambda=0.5]", "task_arithmetic[lambda=1]", "ties"]


def test_logistic_fit_binary_predictor_closed_form():
    # x=0: 3 of 4 succeed; x=1: 1 of 4. MLE: a = logit(.75) = ln 3, b = logit(.25) - logit(.75)
    x = [0, 0, 0, 0, 1, 1, 1, 1]
    y = [1, 1, 1, 0, 1, 0, 0, 0]
    f = stats.logistic_fit(x, y)
    assert f["converged"] and not f["separated"]
    assert f["a"] == pytest.approx(math.log(3), abs=1e-8)
    assert f["b"] == pytest.approx(-2 * math.log(3), abs=1e-8)
    # Var(b) = 1/(n0 p0 q0) + 1/(n1 p1 q1) = 2 / (4 * 3/16)
    assert f["se_b"] == pytest.approx(math.sqrt(2 / 0.75), rel=1e-6)
    assert f["p_b"] == pytest.approx(2 * sps.norm.sf(2 * math.log(3) / math.sqrt(2 / 0.75)), rel=1e-6)


def test_logistic_fit_reports_separation():
    f = stats.logistic_fit([1, 2, 3, 10, 11, 12], [1, 1, 1, 0, 0, 0])
    assert f["separated"] and math.isnan(f["b"])


def test_auc_counts_ties_as_half():
    assert stats.auc([3, 2, 1, 1], [1, 0, 1, 0]) == pytest.approx(0.625)
    assert stats.auc([1, 2], [1, 1]) != stats.auc([1, 2], [1, 1])  # NaN without negatives


def test_best_threshold():
    t, acc = stats.best_threshold([1, 2, 3, 4], [1, 1, 0, 0])
    assert t == pytest.approx(2.5) and acc == 1.0
    t, acc = stats.best_threshold([1, 2, 3, 4], [1, 0, 1, 0])
    assert acc == pytest.approx(0.75)


def test_l2_success(s):
    configs, results, l2, probes, scores = s
    g = stats.merge_gains(scores)
    g["l2"] = l2.set_index("config_id")["l2_from_base"].reindex(g.index)
    r = stats.l2_success(g)
    # merges (l2, gain): (1, .2 success), (2, 0), (30, -.2), (3, .1 success)
    assert r["merges"] == 4 and r["successes"] == 2
    assert r["spearman_rho"] == pytest.approx(sps.spearmanr([1, 2, 30, 3], [.2, 0, -.2, .1])[0])
    # ranks of L2 (1,2,4,3) vs gain (4,2,1,3): d = (-3,0,3,0), rho = 1 - 6*18/(4*15)
    assert r["spearman_rho"] == pytest.approx(-0.8)
    # AUC of -L2: positives {-1, -3}, negatives {-2, -30}: (-1>-2, -1>-30, -3<-2, -3>-30) = 3/4
    assert r["auc_low_l2"] == pytest.approx(0.75)


def test_correlation_known_values():
    c = stats.correlation([1, 2, 3, 4], [1, 2, 3, 5])
    r = 6.5 / math.sqrt(5 * 8.75)
    assert c["pearson_r"] == pytest.approx(r)
    tstat = r * math.sqrt(2) / math.sqrt(1 - r * r)
    assert c["pearson_p"] == pytest.approx(2 * sps.t.sf(tstat, 2))
    assert c["spearman_rho"] == pytest.approx(1.0)
    assert stats.correlation([1, 2, 3, 4], [4, 3, 2, 1])["spearman_rho"] == pytest.approx(-1.0)
    assert math.isnan(stats.correlation([1, 1, 1], [1, 2, 3])["pearson_r"])
    assert stats.correlation([1, 2], [2, 1])["n"] == 2


def test_probe_correlations_per_probe_and_layer(s):
    configs, results, l2, probes, scores = s
    c = stats.probe_correlations(scores, probes, stats.task_scores(results, "acc"))
    m = c[(c["benchmark"] == "mean") & (c["probe"] == "syntax")].set_index("layer")
    assert m.loc[0, "spearman_rho"] == pytest.approx(1.0)
    assert m.loc[1, "spearman_rho"] == pytest.approx(-1.0)
    assert m.loc[0, "pearson_r"] == pytest.approx(1.0)
    assert m.loc[0, "n"] == 8
    allp = c[(c["benchmark"] == "mean") & (c["probe"] == "(all probes)")]
    assert sorted(allp["layer"]) == [0, 1]
    assert set(c["benchmark"]) == {"mean", "A", "B"}


def test_between_parents(s):
    configs, results, l2, probes, scores = s
    t = stats.between_parents(scores, probes, layer=0).set_index("method")
    # ta: .7 above (.5,.6); .5 within (.6,.4). ties: .3 below; .6 within (.6 = max)
    assert t.loc["task_arithmetic", "acc_above_parents"] == pytest.approx(0.5)
    assert t.loc["task_arithmetic", "acc_within_parents"] == pytest.approx(0.5)
    assert t.loc["ties", "acc_below_parents"] == pytest.approx(0.5)
    assert t.loc["ties", "acc_above_parents"] == pytest.approx(0.0)
    # at layer 0 the F1 equals the score, so the shares agree
    assert t.loc["ties", "f1_below_parents"] == pytest.approx(0.5)


def test_params_in_both_spellings():
    assert stats.parse_params('{"lambda": 0.5, "trim": "global"}') == {"lambda": 0.5, "trim": "global"}
    assert stats.parse_params("lambda=0.5,normalize=false,trim=per_tensor,k=3") == {
        "lambda": 0.5, "normalize": False, "trim": "per_tensor", "k": 3}
    assert stats.parse_params("") == {} and stats.parse_params(None) == {}
    configs = pd.DataFrame({"id": [1, 2], "kind": ["merge"] * 2, "method": ["task_arithmetic"] * 2,
                            "params": ["lambda=0.5,normalize=false", "lambda=1,normalize=false"]})
    assert list(stats.method_labels(configs)) == ["task_arithmetic[lambda=0.5]", "task_arithmetic[lambda=1]"]
