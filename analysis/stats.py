"""The studies' statistics as pure functions of DataFrames (no file access, unit-tested).

Inputs (the archive tables after analysis.reader, or hand-made frames in tests):
  configs:     id, kind ("base" | "single" | "merge"), method, params (JSON), n, sample, members
  results:     config_id, task, metric, value (, stderr)
  model_stats: config_id, l2_from_base
  probes:      config_id, probe, layer, f1_mean (, f1_std)

"Beats" is strict (>), so a merge equal to the base is not a success. Standard deviations are
sample standard deviations (ddof=1; NaN for a single value). Gains are in accuracy units
(0.01 = one point); relative gains are fractions of the reference.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import intervals as iv
from .intervals import RESAMPLES, SEED


# --------------------------------------------------------------------------------------------
# labels and per-config scores

def method_labels(configs: pd.DataFrame) -> pd.Series:
    """One label per config: "base", "single", or the method name, followed by the parameters
    that vary between that method's configs (e.g. "task_arithmetic[lambda=0.5]")."""
    labels = pd.Series(index=configs.index, dtype=object)
    params = {i: _params(p) for i, p in configs.get("params", pd.Series(dtype=object)).items()}
    for method, grp in configs[configs["kind"] == "merge"].groupby("method", sort=False):
        keys = sorted({k for i in grp.index for k in params.get(i, {})})
        varying = [k for k in keys if len({json.dumps(params[i].get(k), sort_keys=True)
                                           for i in grp.index}) > 1]
        for i in grp.index:
            p = params.get(i, {})
            labels[i] = method + ("[" + ",".join(f"{k}={_fmt(p.get(k))}" for k in varying) + "]"
                                  if varying else "")
    labels[configs["kind"] == "base"] = "base"
    labels[configs["kind"] == "single"] = "single"
    return labels


def _value(v: str):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v, v)


def parse_params(p) -> dict:
    """A config's parameters: canonical JSON ({"lambda":1.0}) as docs/formats.md describes, or
    the engine's "lambda=1,normalize=false" text; {} for none."""
    if isinstance(p, dict):
        return p
    if not isinstance(p, str) or not p.strip():
        return {}
    p = p.strip()
    if p.startswith("{"):
        try:
            return json.loads(p)
        except ValueError:
            return {}
    out = {}
    for part in p.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = _value(v.strip())
    return out


_params = parse_params


def _fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) < 1e15 else str(v)
    return str(v)


# Metrics where a smaller value is better (lm-eval's loglikelihood_rolling metrics). A scored
# generation metric is named "METRIC,FILTER" (lm-eval's key, e.g. exact_match,strict-match).
LOWER_IS_BETTER = ("word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity")


def higher_is_better(metric: str) -> bool:
    return metric.split(",")[0] not in LOWER_IS_BETTER


def benchmark_tasks(results: pd.DataFrame, metric: str = "acc") -> list:
    """The tasks that report `metric`, sorted."""
    r = results[results["metric"] == metric]
    return sorted(r["task"].unique().tolist())


def task_scores(results: pd.DataFrame, metric: str = "acc", tasks=None) -> pd.DataFrame:
    """Wide table: one row per config id, one column per task (value of `metric`)."""
    r = results[results["metric"] == metric]
    if tasks is not None:
        r = r[r["task"].isin(tasks)]
    return r.pivot_table(index="config_id", columns="task", values="value", aggfunc="mean")


def config_scores(configs: pd.DataFrame, results: pd.DataFrame, metric: str = "acc",
                  tasks=None) -> pd.DataFrame:
    """Per config: its label and the mean of `metric` over the tasks (only configs that have a
    value for every task, so that means are comparable). Index: config id."""
    wide = task_scores(results, metric, tasks)
    if tasks is None:
        tasks = list(wide.columns)
    wide = wide.reindex(columns=tasks)
    complete = wide.dropna()
    c = configs.set_index("id")
    out = pd.DataFrame(index=complete.index)
    out.index.name = "id"
    out["score"] = complete.mean(axis=1)
    lab = method_labels(configs)
    lab.index = configs["id"].values
    for col in ("kind", "method", "n", "sample", "members", "member_names"):
        if col in c:
            out[col] = c.loc[out.index, col].values
    out["label"] = lab.reindex(out.index).values
    return out


# --------------------------------------------------------------------------------------------
# the systematic study

def merge_gains(scores: pd.DataFrame, higher: bool = True) -> pd.DataFrame:
    """Merges only, with gain over the base and over the best single checkpoint of the subset.
    With higher=False (perplexities) the best is the lowest and a gain is a decrease."""
    sign = 1.0 if higher else -1.0
    best = max if higher else min
    base = scores.loc[scores["kind"] == "base", "score"]
    base = float(base.iloc[0]) if len(base) else math.nan
    single = {int(m[0]): s for m, s in zip(scores.loc[scores["kind"] == "single", "members"],
                                           scores.loc[scores["kind"] == "single", "score"])}
    m = scores[scores["kind"] == "merge"].copy()
    m["base_score"] = base
    m["best_single"] = [best((single.get(int(k), math.nan) for k in mem), default=math.nan)
                        if all(int(k) in single for k in mem) else math.nan
                        for mem in m["members"]]
    m["gain_base"] = sign * (m["score"] - base)
    m["gain_best"] = sign * (m["score"] - m["best_single"])
    m["rel_gain_best"] = m["gain_best"] / m["best_single"].abs()
    m["beats_base"] = np.nan if math.isnan(base) else (sign * m["score"] > sign * base).astype(float)
    m["beats_best"] = (sign * m["score"] > sign * m["best_single"]).astype(float).where(m["best_single"].notna())
    return m


def _std(x):
    x = pd.Series(x).dropna()
    return float(x.std(ddof=1)) if len(x) > 1 else math.nan


def systematic_table(scores: pd.DataFrame, l2: pd.Series | None = None, higher: bool = True,
                     seed: int = SEED, resamples: int = RESAMPLES, p_adjust: str = "holm") -> pd.DataFrame:
    """Per method label and subset size n: configs, share beating the base, mean ± std gain over
    the base, mean ± std gain over the best single checkpoint of the subset (and the share with
    constructive interference: beating it), mean ± std accuracy, and mean ± std L2 from the base
    when `l2` (indexed by config id) is given. higher=False: gains are decreases (perplexities).

    Intervals (module intervals): `share_*_lo/_hi` Wilson, `*_lo/_hi` of the mean gains and
    accuracy a bootstrap over the subsets (`bootstrap_seed`, `bootstrap_resamples`), all at
    `ci_level`. `gain_*_p`: Wilcoxon signed-rank p of "the gain is centred on 0" over the subsets,
    `gain_*_p_adj` adjusted over every p of the table by `p_adjust` (Holm or Benjamini-Hochberg)."""
    m = merge_gains(scores, higher)
    if l2 is not None:
        m["l2"] = l2.reindex(m.index)
    rows = []
    for (label, n), g in m.groupby(["label", "n"], sort=True):
        row = {
            "method": label, "n": int(n), "configs": len(g),
            **iv.share_cols(g["beats_base"], "share_beats_base"),
            "gain_base_mean": g["gain_base"].mean(), "gain_base_std": _std(g["gain_base"]),
            **iv.mean_cols(g["gain_base"], "gain_base", seed, resamples),
            "gain_base_p": iv.signed_rank_p(g["gain_base"]),
            "gain_best_mean": g["gain_best"].mean(), "gain_best_std": _std(g["gain_best"]),
            **iv.mean_cols(g["gain_best"], "gain_best", seed, resamples),
            "gain_best_p": iv.signed_rank_p(g["gain_best"]),
            "rel_gain_best_mean": g["rel_gain_best"].mean(),
            **iv.share_cols(g["beats_best"], "share_beats_best"),
            "acc_mean": g["score"].mean(), "acc_std": _std(g["score"]),
            **iv.mean_cols(g["score"], "acc", seed, resamples),
        }
        if l2 is not None:
            row["l2_mean"] = g["l2"].mean()
            row["l2_std"] = _std(g["l2"])
        rows.append(row)
    tab = pd.DataFrame(rows)
    if len(tab):
        adj = iv.adjust(np.concatenate([tab["gain_base_p"], tab["gain_best_p"]]), p_adjust)
        tab["gain_base_p_adj"], tab["gain_best_p_adj"] = adj[:len(tab)], adj[len(tab):]
        tab["p_adjust"] = iv.adjust_name(p_adjust)
        tab["ci_level"] = iv.LEVEL
        tab["bootstrap_seed"] = seed
        tab["bootstrap_resamples"] = resamples
    return tab


def per_task_table(configs: pd.DataFrame, results: pd.DataFrame, metric: str = "acc",
                   tasks=None) -> pd.DataFrame:
    """Per method label, n and task: mean ± std accuracy, mean gain over the base on that task,
    share of subsets beating the base on that task with its Wilson interval (for a lower-is-better
    metric, gain is the decrease and beating means lower)."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    wide = task_scores(results, metric, tasks)
    lab = method_labels(configs)
    lab.index = configs["id"].values
    kind = configs.set_index("id")["kind"]
    n = configs.set_index("id")["n"]
    base_ids = [i for i in wide.index if kind.get(i) == "base"]
    base = wide.loc[base_ids[0]] if base_ids else pd.Series(np.nan, index=wide.columns)
    merges = wide[[kind.get(i) == "merge" for i in wide.index]]
    rows = []
    for task in wide.columns:
        col = merges[task].dropna()
        df = pd.DataFrame({"acc": col, "label": lab.reindex(col.index).values,
                           "n": n.reindex(col.index).values})
        for (label, nn), g in df.groupby(["label", "n"], sort=True):
            gain = sign * (g["acc"] - base[task])
            rows.append({"method": label, "n": int(nn), "task": task, "configs": len(g),
                         "acc_mean": g["acc"].mean(), "acc_std": _std(g["acc"]),
                         "base": base[task], "gain_base_mean": gain.mean(),
                         **iv.share_cols((sign * g["acc"] > sign * base[task]).astype(float)
                                         if not math.isnan(base[task]) else [], "share_beats_base")})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# L2 from the base as a predictor of success

def logistic_fit(x, y, max_iter: int = 100, tol: float = 1e-10) -> dict:
    """Maximum-likelihood logistic regression y ~ a + b x (statsmodels Logit, Newton steps).

    Returns a, b, their standard errors (inverse observed information), the Wald p-value of b,
    and `separated` when a threshold on x splits y perfectly (the MLE does not exist then; a and
    b are NaN)."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationError

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    out = {"n": int(len(x)), "a": math.nan, "b": math.nan, "se_a": math.nan, "se_b": math.nan,
           "p_b": math.nan, "separated": False, "converged": False}
    if len(x) < 3 or y.min() == y.max() or x.min() == x.max():
        return out
    pos, neg = x[y == 1], x[y == 0]
    if pos.max() < neg.min() or neg.max() < pos.min():
        out["separated"] = True
        return out
    try:
        fit = sm.Logit(y, sm.add_constant(x, has_constant="add")).fit(
            method="newton", maxiter=max_iter, tol=tol, disp=0, warn_convergence=False)
    except PerfectSeparationError:  # quasi-separation: fitted probabilities reach 0 or 1
        out["separated"] = True
        return out
    (a, b), (se_a, se_b) = fit.params, fit.bse
    out.update(a=float(a), b=float(b), se_a=float(se_a), se_b=float(se_b), p_b=float(fit.pvalues[1]),
               converged=bool(fit.mle_retvals.get("converged", False)))
    return out


def auc_test(score, y) -> tuple[float, float]:
    """Area under the ROC curve of `score` for the binary label y and its two-sided p-value, from
    the Mann-Whitney U of the positives' scores against the negatives' (scipy): AUC = U / (n+ n-),
    the probability that a random positive scores above a random negative, ties counting one
    half; the p-value tests AUC = 0.5. NaN, NaN without both classes."""
    score = np.asarray(score, float)
    y = np.asarray(y, float)
    pos, neg = score[y == 1], score[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan, math.nan
    if np.ptp(score[(y == 1) | (y == 0)]) == 0:  # all tied: U = n+ n- / 2 and no test
        return 0.5, 1.0
    u = sps.mannwhitneyu(pos, neg, alternative="two-sided")
    return float(u.statistic / (len(pos) * len(neg))), float(u.pvalue)


def auc(score, y) -> float:
    """Area under the ROC curve (auc_test without the p-value)."""
    return auc_test(score, y)[0]


def best_threshold(x, y) -> tuple[float, float]:
    """The threshold t maximizing the accuracy of "success iff x < t" and that accuracy; t is the
    midpoint between consecutive sorted x values."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    best_t, best_acc = math.nan, -1.0
    cands = np.concatenate([[xs[0] - 1], (xs[1:] + xs[:-1]) / 2, [xs[-1] + 1]]) if len(xs) else []
    for t in cands:
        acc = float(np.mean((xs < t) == (ys == 1)))
        if acc > best_acc:
            best_t, best_acc = float(t), acc
    return best_t, best_acc


def l2_success(gains: pd.DataFrame, seed: int = SEED, resamples: int = RESAMPLES) -> dict:
    """How well the L2 distance from the base predicts success, over all merges (columns l2,
    gain_base, beats_base): Spearman of L2 vs gain, logistic regression of success on log10 L2,
    the AUC of -L2 for success (with the Mann-Whitney p-value of AUC = 0.5 and a stratified
    bootstrap interval, auc_lo/auc_hi, seeded), and the best L2 threshold."""
    d = gains.dropna(subset=["l2", "gain_base", "beats_base"])
    d = d[d["l2"] > 0]
    out = {"merges": int(len(d)), "successes": int(d["beats_base"].sum()) if len(d) else 0,
           "l2_min": float(d["l2"].min()) if len(d) else math.nan,
           "l2_max": float(d["l2"].max()) if len(d) else math.nan}
    if len(d) >= 3 and d["l2"].nunique() > 1 and d["gain_base"].nunique() > 1:
        rho, p = sps.spearmanr(d["l2"], d["gain_base"])
        out.update(spearman_rho=float(rho), spearman_p=float(p))
    else:
        out.update(spearman_rho=math.nan, spearman_p=math.nan)
    fit = logistic_fit(np.log10(d["l2"]), d["beats_base"]) if len(d) else logistic_fit([], [])
    out.update({f"logit_{k}": v for k, v in fit.items() if k != "n"})
    if fit["b"] == fit["b"] and fit["b"] != 0:
        out["l2_at_half"] = float(10 ** (-fit["a"] / fit["b"]))
    else:
        out["l2_at_half"] = math.nan
    out["auc_low_l2"], out["auc_p"] = (auc_test(-d["l2"].to_numpy(), d["beats_base"].to_numpy())
                                       if len(d) else (math.nan, math.nan))
    out["auc_lo"], out["auc_hi"] = (iv.auc_bootstrap(-d["l2"].to_numpy(), d["beats_base"].to_numpy(), seed, resamples)
                                    if len(d) else (math.nan, math.nan))
    t, acc = best_threshold(d["l2"], d["beats_base"]) if len(d) else (math.nan, math.nan)
    out["threshold_l2"], out["threshold_accuracy"] = t, acc
    return out


# --------------------------------------------------------------------------------------------
# the pipeline study: behaviour vs internals

def correlation(x, y) -> dict:
    """Pearson r and Spearman rho with their two-sided p-values (NaN below 3 points or for a
    constant input)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    out = {"n": int(len(x)), "pearson_r": math.nan, "pearson_p": math.nan,
           "spearman_rho": math.nan, "spearman_p": math.nan}
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    r, p = sps.pearsonr(x, y)
    rho, ps = sps.spearmanr(x, y)
    out.update(pearson_r=float(r), pearson_p=float(p), spearman_rho=float(rho), spearman_p=float(ps))
    return out


def probe_correlations(scores: pd.DataFrame, probes: pd.DataFrame,
                       task_wide: pd.DataFrame | None = None) -> pd.DataFrame:
    """Benchmark accuracy vs probe macro-F1 across configs (base, singles and merges), for every
    probe task and layer, plus "(all probes)" = the mean F1 over probes at that layer. The
    benchmark is the mean over tasks ("mean"), and each task of `task_wide` when given."""
    if probes is None or len(probes) == 0:
        return pd.DataFrame()
    benches = {"mean": scores["score"]}
    if task_wide is not None:
        for t in task_wide.columns:
            benches[t] = task_wide[t]
    per = probes.groupby(["probe", "layer", "config_id"])["f1_mean"].mean()
    allp = probes.groupby(["layer", "config_id"])["f1_mean"].mean()
    rows = []
    for bench, acc in benches.items():
        for (probe, layer), s in per.groupby(level=[0, 1]):
            f1 = s.droplevel([0, 1])
            a = acc.reindex(f1.index)
            rows.append({"benchmark": bench, "probe": probe, "layer": int(layer),
                         **correlation(a.values, f1.values)})
        for layer, s in allp.groupby(level=0):
            f1 = s.droplevel(0)
            a = acc.reindex(f1.index)
            rows.append({"benchmark": bench, "probe": "(all probes)", "layer": int(layer),
                         **correlation(a.values, f1.values)})
    return pd.DataFrame(rows)


def between_parents(scores: pd.DataFrame, probes: pd.DataFrame | None = None,
                    layer=None) -> pd.DataFrame:
    """Per merge method label: share of merges whose benchmark score lies within [min, max] of
    its parents (the single checkpoints of the subset), above both, below both; and, with probes,
    the same for the mean probe F1 at `layer` (default: the last layer)."""
    single = {int(m[0]): s for m, s in zip(scores.loc[scores["kind"] == "single", "members"],
                                           scores.loc[scores["kind"] == "single", "score"])}
    f1 = None
    if probes is not None and len(probes):
        L = probes["layer"].max() if layer is None else layer
        f1 = probes[probes["layer"] == L].groupby("config_id")["f1_mean"].mean()
        sid = {int(m[0]): i for i, m in zip(scores.index[scores["kind"] == "single"],
                                            scores.loc[scores["kind"] == "single", "members"])}
    rows = []
    for label, g in scores[scores["kind"] == "merge"].groupby("label", sort=True):
        rec = {"method": label, "configs": len(g)}
        for what, get_par, get_self in (
                ("acc", lambda k: single.get(int(k), math.nan), lambda i: g.loc[i, "score"]),
                ("f1", (lambda k: f1.get(sid.get(int(k)), math.nan)) if f1 is not None else None,
                 (lambda i: f1.get(i, math.nan)) if f1 is not None else None)):
            if get_par is None:
                continue
            above = below = within = 0
            total = 0
            for i, mem in zip(g.index, g["members"]):
                par = [get_par(k) for k in mem]
                v = get_self(i)
                if any(math.isnan(p) for p in par) or math.isnan(v):
                    continue
                total += 1
                if v > max(par):
                    above += 1
                elif v < min(par):
                    below += 1
                else:
                    within += 1
            rec[f"{what}_above_parents"] = above / total if total else math.nan
            rec[f"{what}_within_parents"] = within / total if total else math.nan
            rec[f"{what}_below_parents"] = below / total if total else math.nan
        rows.append(rec)
    return pd.DataFrame(rows)
