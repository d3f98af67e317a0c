"""`python3 -m analysis findings ARCHIVE [ARCHIVE ...]`: each finding of the two studies as one
row (the claim, the number measured in the archive, reproduced yes/no), computed from the archive.

Findings of the systematic study (arXiv 2511.21437) need merges of several subset sizes n; those
of the pipeline study (arXiv 2509.19476) need probes and merges of two parents. A finding an
archive cannot test (no such method, no probes) is reported as "n/a" with the reason, never
guessed. The thresholds that turn a number into yes/no are the ones the studies' claims (and
issue 15's goals) state; they are listed in THRESHOLDS and printed with every row.

Parents of a merge: the single checkpoints of its subset; a one-model merge (SLERP of the base
with one checkpoint) has the base and that checkpoint as parents.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import stats
from .reader import Archive

THRESHOLDS = {
    "ta_beats_best_share": 0.30,     # share of subsets beating their best single, some n >= 4
    "ta_beats_best_min_n": 4,
    "degrading_below_ta_min_n": 6,   # TIES, TSV-M, Iso-C below TA at every n >= this
    "l2_auc": 0.8,                   # AUC of low L2 for "beats the base"
    "trend_p": 0.05,                 # p of the Spearman trend of gain vs n
    "between_parents_share": 0.5,    # "most merges" behave between their parents
    "weak_correlation": 0.5,         # |Spearman rho| below this is "weak"
}
DEGRADING = ("ties", "tsv_m", "iso_c", "task_arithmetic_sb", "ties_sb")
SIMPLE = ("linear", "slerp")
COMPLEX = ("ties", "dare_ties")

COLUMNS = ["study", "finding", "measured", "reproduced"]


def _row(study: str, finding: str, measured: str, ok) -> dict:
    rep = "n/a" if ok is None else ("yes" if ok else "no")
    return {"study": study, "finding": finding, "measured": measured, "reproduced": rep}


def _na(study: str, finding: str, why: str) -> dict:
    return _row(study, finding, f"not testable here: {why}", None)


# --------------------------------------------------------------------------------------------
# inputs

def study_frames(archive: Archive, metric: str = "acc"):
    """(scores, gains, probes) of an archive: per-config mean accuracy (stats.config_scores),
    merges with gains and L2 (stats.merge_gains), and the probe rows (may be empty)."""
    configs, results = archive.configs, archive.results
    tasks = stats.benchmark_tasks(results, metric) if len(results) else []
    if not tasks:
        return None, None, None
    scores = stats.config_scores(configs, results, metric, tasks)
    gains = stats.merge_gains(scores)
    gains["params"] = configs.set_index("id")["params"].reindex(gains.index).values
    ms = archive.model_stats
    if len(ms) and "l2_from_base" in ms:
        gains["l2"] = ms.groupby("config_id")["l2_from_base"].mean().reindex(gains.index)
    return scores, gains, archive.probes


def _trend(g: pd.DataFrame, col: str = "gain_base") -> tuple[float, float]:
    """Spearman rho and p of `col` against n over the configs of g (NaN when n does not vary)."""
    d = g.dropna(subset=[col])
    if d["n"].nunique() < 2 or d[col].nunique() < 2:
        return math.nan, math.nan
    rho, p = sps.spearmanr(d["n"].astype(float), d[col])
    return float(rho), float(p)


def _by_n(g: pd.DataFrame, col: str) -> pd.Series:
    return g.groupby("n")[col].mean().sort_index()


def _fmt_by_n(s: pd.Series, digits: int = 3, signed: bool = True) -> str:
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return ", ".join(f"n={int(n)}: {f.format(v)}" for n, v in s.items())


# --------------------------------------------------------------------------------------------
# the systematic study

def _ta(gains: pd.DataFrame) -> pd.DataFrame:
    """The study's Task Arithmetic: task_arithmetic merges; lambda 1 when the archive has several."""
    ta = gains[gains["method"] == "task_arithmetic"]
    if len(ta) and "params" in ta:
        lam = pd.Series([stats.parse_params(p).get("lambda", 1.0) for p in ta["params"]], index=ta.index)
        if lam.nunique() > 1 and (lam == 1.0).any():
            ta = ta[lam == 1.0]
    return ta


def _multi_size(g: pd.DataFrame) -> bool:
    return len(g) > 0 and g["n"].nunique() >= 2


def ta_constructive(gains: pd.DataFrame) -> dict:
    claim = (f"Task Arithmetic beats the best single checkpoint of its subset (constructive "
             f"interference) in >= {THRESHOLDS['ta_beats_best_share']:.0%} of subsets for some "
             f"n >= {THRESHOLDS['ta_beats_best_min_n']}")
    ta = _ta(gains)
    big = ta[ta["n"] >= THRESHOLDS["ta_beats_best_min_n"]]
    if len(big) == 0:
        return _na("systematic", claim, f"no task_arithmetic merge with n >= {THRESHOLDS['ta_beats_best_min_n']}")
    share = _by_n(big, "beats_best")
    best_n = int(share.idxmax())
    ok = bool(share.max() >= THRESHOLDS["ta_beats_best_share"])
    return _row("systematic", claim,
                f"best {share.max():.0%} at n={best_n}; share per n: {_fmt_by_n(share, 2, False)}", ok)


def ta_grows(gains: pd.DataFrame) -> dict:
    claim = "Task Arithmetic's mean gain over the base grows with n"
    ta = _ta(gains)
    if not _multi_size(ta):
        return _na("systematic", claim, "task_arithmetic at fewer than two subset sizes")
    rho, p = _trend(ta)
    by = _by_n(ta, "gain_base")
    ok = bool(rho > 0 and p < THRESHOLDS["trend_p"] and by.iloc[-1] > by.iloc[0])
    return _row("systematic", claim,
                f"Spearman rho(n, gain) = {rho:+.2f} (p = {p:.2g}, {len(ta)} merges); "
                f"mean gain {_fmt_by_n(by)}", ok)


def ta_beats_base(gains: pd.DataFrame) -> dict:
    claim = "Task Arithmetic improves over the base in most subsets (the only method that does)"
    ta = _ta(gains)
    if len(ta) == 0:
        return _na("systematic", claim, "no task_arithmetic merges")
    share = float(ta["beats_base"].mean())
    others = gains[~gains["method"].isin(["task_arithmetic"])].groupby("method")["beats_base"].mean()
    better = [m for m, v in others.items() if v >= share]
    ok = bool(share > 0.5 and not better)
    txt = f"TA {share:.0%} of merges beat the base; " + ", ".join(f"{m} {v:.0%}" for m, v in others.items())
    if better:
        txt += f" (as good or better: {', '.join(better)})"
    return _row("systematic", claim, txt, ok)


def degrades_with_n(gains: pd.DataFrame, method: str) -> dict:
    claim = (f"{method}: mean gain over the base falls as n grows, and is below Task Arithmetic's "
             f"at every n >= {THRESHOLDS['degrading_below_ta_min_n']}")
    g = gains[gains["method"] == method]
    if not _multi_size(g):
        return _na("systematic", claim, f"{method} at fewer than two subset sizes")
    rho, p = _trend(g)
    by = _by_n(g, "gain_base")
    ta = _by_n(_ta(gains), "gain_base")
    ns = [n for n in by.index if n >= THRESHOLDS["degrading_below_ta_min_n"] and n in ta.index]
    below = [bool(by[n] < ta[n]) for n in ns]
    ok = bool(rho < 0 and p < THRESHOLDS["trend_p"] and ns and all(below))
    txt = (f"Spearman rho(n, gain) = {rho:+.2f} (p = {p:.2g}); mean gain {_fmt_by_n(by)}; "
           f"share beating the base at n={int(by.index[-1])}: {g[g['n'] == by.index[-1]]['beats_base'].mean():.0%}")
    if ns:
        txt += f"; below TA at {sum(below)} of {len(ns)} sizes n >= {THRESHOLDS['degrading_below_ta_min_n']}"
    else:
        txt += f"; no size n >= {THRESHOLDS['degrading_below_ta_min_n']} shared with TA"
    return _row("systematic", claim, txt, ok)


def l2_predicts(gains: pd.DataFrame) -> dict:
    claim = (f"L2 distance from the base separates merges that beat the base from those that do not "
             f"(AUC of low L2 >= {THRESHOLDS['l2_auc']})")
    if "l2" not in gains or gains["l2"].notna().sum() < 3:
        return _na("systematic", claim, "no model_stats.l2_from_base for the merges")
    s = stats.l2_success(gains)
    if s["successes"] in (0, s["merges"]):
        return _na("systematic", claim, f"{s['successes']} of {s['merges']} merges beat the base: one class only")
    ok = bool(s["auc_low_l2"] >= THRESHOLDS["l2_auc"])
    return _row("systematic", claim,
                f"AUC = {s['auc_low_l2']:.3f} ({s['successes']} of {s['merges']} merges beat the base); "
                f"Spearman rho(L2, gain) = {s['spearman_rho']:+.2f} (p = {s['spearman_p']:.2g}); "
                f"best split: L2 < {s['threshold_l2']:.4g} classifies {s['threshold_accuracy']:.0%}", ok)


def systematic_findings(gains: pd.DataFrame) -> list[dict]:
    rows = [ta_constructive(gains), ta_grows(gains), ta_beats_base(gains)]
    for m in ("ties", "tsv_m", "iso_c"):
        rows.append(degrades_with_n(gains, m))
    for m in DEGRADING[3:]:
        if (gains["method"] == m).any():
            rows.append(degrades_with_n(gains, m))
    rows.append(l2_predicts(gains))
    return rows


# --------------------------------------------------------------------------------------------
# the pipeline study

def _f1_wide(probes: pd.DataFrame) -> pd.DataFrame:
    """Probe test F1 (mean over seeds): rows config id, columns (probe, layer)."""
    return probes.pivot_table(index="config_id", columns=["probe", "layer"], values="f1_mean", aggfunc="mean")


def parents_of(scores: pd.DataFrame) -> dict:
    """Merge id -> the config ids of its parents (module docstring)."""
    single = {int(m[0]): i for i, m in zip(scores.index[scores["kind"] == "single"],
                                           scores.loc[scores["kind"] == "single", "members"])}
    base = scores.index[scores["kind"] == "base"]
    out = {}
    for i, mem in zip(scores.index[scores["kind"] == "merge"], scores.loc[scores["kind"] == "merge", "members"]):
        par = [single.get(int(k)) for k in mem]
        if len(par) == 1 and len(base):
            par.append(base[0])
        if all(p is not None for p in par) and len(par) >= 2:
            out[i] = par
    return out


def merge_vs_parents(scores: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """Per merge with known parents: method, label, its accuracy and its parents' range, whether
    it lies between them, and for probes: how many (probe, layer) cells exceed both parents, the
    largest margin over the better parent, and its cell; the mean F1 at the last layer."""
    par = parents_of(scores)
    f1 = _f1_wide(probes) if probes is not None and len(probes) else pd.DataFrame()
    last = max(c[1] for c in f1.columns) if len(f1.columns) else None
    rows = []
    for i, ps in par.items():
        acc = scores.loc[i, "score"]
        pa = [scores.loc[p, "score"] for p in ps]
        rec = {"id": i, "method": scores.loc[i, "method"], "label": scores.loc[i, "label"],
               "acc": acc, "parent_acc_min": min(pa), "parent_acc_max": max(pa),
               "acc_between": bool(min(pa) <= acc <= max(pa)), "acc_above": bool(acc > max(pa))}
        if len(f1) and i in f1.index and all(p in f1.index for p in ps):
            margin = f1.loc[i] - f1.loc[ps].max(axis=0)
            rec.update(f1_cells_above=int((margin > 0).sum()), f1_cells=int(margin.notna().sum()),
                       f1_best_margin=float(margin.max()), f1_best_cell=f"{margin.idxmax()[0]}@{margin.idxmax()[1]}",
                       f1_last=float(f1.loc[i].xs(last, level="layer").mean()))
        rows.append(rec)
    return pd.DataFrame(rows)


def method_table(scores: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """Behaviour vs internals per merge method (the pipeline study's comparison): merges, mean
    accuracy, mean probe F1 at the last layer, share with accuracy between the parents, share
    above both parents on at least one probe cell, and the Spearman and Pearson correlation
    (with p) between accuracy and last-layer F1 over that method's merges."""
    mv = merge_vs_parents(scores, probes)
    if len(mv) == 0:
        return pd.DataFrame()
    rows = []
    for method, g in mv.groupby("method", sort=True):
        rec = {"method": method, "merges": len(g), "acc_mean": g["acc"].mean(),
               "acc_between_parents": g["acc_between"].mean(), "acc_above_parents": g["acc_above"].mean()}
        if "f1_last" in g:
            c = stats.correlation(g["acc"], g["f1_last"])
            rec.update(f1_last_mean=g["f1_last"].mean(), f1_above_parents=(g["f1_cells_above"] > 0).mean(),
                       spearman_rho=c["spearman_rho"], spearman_p=c["spearman_p"],
                       pearson_r=c["pearson_r"], pearson_p=c["pearson_p"])
        rows.append(rec)
    return pd.DataFrame(rows)


def pipeline_findings(scores: pd.DataFrame, probes: pd.DataFrame) -> list[dict]:
    claims = ("merged models' probe F1 can surpass both parents on some probe",
              f"behaviour (benchmark accuracy) lies between the parents for most merges "
              f"(> {THRESHOLDS['between_parents_share']:.0%})",
              f"behaviour and probed internals correlate weakly (|Spearman rho| < "
              f"{THRESHOLDS['weak_correlation']}), reported with p",
              "simpler methods (Linear, SLERP) beat TIES and DARE-TIES in behaviour and internals")
    mv = merge_vs_parents(scores, probes)
    if len(mv) == 0:
        return [_na("pipeline", c, "no merge whose parents are in the archive") for c in claims]
    rows = []
    if "f1_cells_above" in mv:
        n_above = int((mv["f1_cells_above"] > 0).sum())
        best = mv.loc[mv["f1_best_margin"].idxmax()]
        rows.append(_row("pipeline", claims[0],
                         f"{n_above} of {len(mv)} merges exceed both parents on >= 1 (probe, layer); "
                         f"largest margin {best['f1_best_margin']:+.3f} F1 ({best['label']}, {best['f1_best_cell']})",
                         n_above > 0))
    else:
        rows.append(_na("pipeline", claims[0], "no probe results"))
    share = float(mv["acc_between"].mean())
    rows.append(_row("pipeline", claims[1],
                     f"{share:.0%} of {len(mv)} merges between their parents, {mv['acc_above'].mean():.0%} above both",
                     share > THRESHOLDS["between_parents_share"]))
    rows.append(_behaviour_probe_correlation(scores, probes, claims[2]))
    rows.append(_simple_vs_complex(mv, claims[3]))
    return rows


def _behaviour_probe_correlation(scores: pd.DataFrame, probes: pd.DataFrame, claim: str) -> dict:
    if probes is None or len(probes) == 0:
        return _na("pipeline", claim, "no probe results")
    last = probes["layer"].max()
    f1 = probes[probes["layer"] == last].groupby("config_id")["f1_mean"].mean()
    c = stats.correlation(scores["score"].reindex(f1.index).values, f1.values)
    if c["spearman_rho"] != c["spearman_rho"]:
        return _na("pipeline", claim, f"{c['n']} configs with accuracy and probes")
    ok = abs(c["spearman_rho"]) < THRESHOLDS["weak_correlation"]
    return _row("pipeline", claim,
                f"Spearman rho = {c['spearman_rho']:+.2f} (p = {c['spearman_p']:.2g}), Pearson r = "
                f"{c['pearson_r']:+.2f} (p = {c['pearson_p']:.2g}) over {c['n']} configs, mean F1 of all "
                f"probes at the last layer ({int(last)})", ok)


def _simple_vs_complex(mv: pd.DataFrame, claim: str) -> dict:
    simple, complex_ = mv[mv["method"].isin(SIMPLE)], mv[mv["method"].isin(COMPLEX)]
    if len(simple) == 0 or len(complex_) == 0:
        return _na("pipeline", claim, "needs linear or slerp and ties or dare_ties merges")
    da = simple["acc"].mean() - complex_["acc"].mean()
    txt = f"accuracy {simple['acc'].mean():.3f} vs {complex_['acc'].mean():.3f}"
    ok = da > 0
    if "f1_last" in mv:
        df = simple["f1_last"].mean() - complex_["f1_last"].mean()
        txt += f"; last-layer F1 {simple['f1_last'].mean():.3f} vs {complex_['f1_last'].mean():.3f}"
        ok = ok and df > 0
    return _row("pipeline", claim, txt, bool(ok))


# --------------------------------------------------------------------------------------------
# the table

def findings(archive: Archive, metric: str = "acc") -> pd.DataFrame:
    """Every finding the archive can speak to, one row each (columns COLUMNS)."""
    scores, gains, probes = study_frames(archive, metric)
    if scores is None:
        return pd.DataFrame([_na("both", "any finding", f"no committed results with metric '{metric}'")],
                            columns=COLUMNS)
    rows = []
    multi = gains[gains["n"] >= 2].groupby("method")["n"].nunique()
    if len(multi) and multi.max() >= 2:  # some method at two subset sizes: a systematic study
        rows += systematic_findings(gains)
    if probes is not None and len(probes) and len(parents_of(scores)):
        rows += pipeline_findings(scores, probes)
    if not rows:
        rows.append(_na("both", "any finding", "merges of one subset size and no probes"))
    return pd.DataFrame(rows, columns=COLUMNS)


def findings_text(archive: Archive, metric: str = "acc") -> str:
    tab = findings(archive, metric)
    lines = [f"Findings of the studies in {archive.path} ({archive.n_configs} configs, metric {metric}):"]
    for _, r in tab.iterrows():
        lines.append(f"[{r['reproduced']:>3}] {r['study']}: {r['finding']}")
        lines.append(f"      measured: {r['measured']}")
    n_yes = int((tab["reproduced"] == "yes").sum())
    n_test = int((tab["reproduced"] != "n/a").sum())
    lines.append(f"{n_yes} of {n_test} testable findings reproduced.")
    scores, _, probes = study_frames(archive, metric)
    if probes is not None and len(probes) and len(parents_of(scores)):
        mt = method_table(scores, probes)
        lines.append("")
        lines.append("Behaviour vs internals per method (merges with both parents in the archive):")
        lines.append(_plain_table(mt))
    return "\n".join(lines)


def _plain_table(df: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if math.isnan(v) else f"{v:.3g}"
        return str(v)
    cols = list(df.columns)
    cells = [[cell(r[c]) for c in cols] for _, r in df.iterrows()]
    width = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(cols)]
    out = ["  ".join(c.rjust(w) for c, w in zip(cols, width))]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, width)) for row in cells]
    return "\n".join(out)


def run(paths, metric: str = "acc", out: str | None = None) -> str:
    """The text for every archive; with `out`, findings.csv (and methods.csv) per archive there."""
    import os

    from .reader import read_archive

    texts = []
    for p in paths:
        a = read_archive(p)
        texts.append(findings_text(a, metric))
        if out:
            os.makedirs(out, exist_ok=True)
            stem = os.path.splitext(os.path.basename(p))[0]
            findings(a, metric).to_csv(os.path.join(out, f"{stem}-findings.csv"), index=False)
            scores, _, probes = study_frames(a, metric)
            if scores is not None and probes is not None and len(probes):
                method_table(scores, probes).to_csv(os.path.join(out, f"{stem}-methods.csv"), index=False)
    return "\n\n".join(texts)
