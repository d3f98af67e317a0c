"""`python3 -m analysis report ARCHIVE --out DIR`: the studies' tables and figures as one
report.md with tables/*.csv and figures/*.png beside it (guide: docs/analysis.md)."""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from . import figures, stats
from . import intervals as iv
from .reader import SCORE_COMMAND, Archive, read_archive, unscored_text


def md_table(df: pd.DataFrame, digits: int = 4, max_rows: int = 200) -> str:
    """A GitHub-markdown table (no tabulate dependency); floats rounded to `digits` significant."""
    if df is None or len(df) == 0:
        return "_(no rows)_\n"

    def cell(v):
        if isinstance(v, (float, np.floating)):
            if math.isnan(v):
                return ""
            return f"{v:.{digits}g}"
        if isinstance(v, tuple):
            return ",".join(map(str, v))
        return str(v).replace("|", "\\|").replace("\n", " ")

    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.head(max_rows).iterrows():
        lines.append("| " + " | ".join(cell(r[c]) for c in cols) + " |")
    if len(df) > max_rows:
        lines.append(f"\n_({len(df) - max_rows} more rows in the CSV)_")
    return "\n".join(lines) + "\n"


def mean_pm_std(df: pd.DataFrame, cols, digits=3) -> pd.DataFrame:
    """Replaces X_mean/X_std pairs by one "mean ± std" text column X."""
    out = df.copy()
    for c in cols:
        mu, sd = out.pop(f"{c}_mean"), out.pop(f"{c}_std")
        out[c] = [("" if mu_ != mu_ else f"{mu_:.{digits}f}") +
                  ("" if sd_ != sd_ else f" ± {sd_:.{digits}f}") for mu_, sd_ in zip(mu, sd)]
    return out


def mean_with_ci(df: pd.DataFrame, cols, digits=3) -> pd.DataFrame:
    """Replaces X_mean/X_std/X_lo/X_hi by one "mean [lo, hi]" text column X (std stays in the CSV)."""
    out = df.copy()
    for c in cols:
        mu = out.pop(f"{c}_mean")
        lo, hi = out.pop(f"{c}_lo"), out.pop(f"{c}_hi")
        out.pop(f"{c}_std")
        sg = c != "acc"  # gains are signed, accuracies are not
        out[c] = [("" if m != m else f"{m:{'+' if sg else ''}.{digits}f} " + iv.fmt_ci(a, b, digits, signed=sg))
                  for m, a, b in zip(mu, lo, hi)]
    return out


def share_with_ci(df: pd.DataFrame, cols) -> pd.DataFrame:
    """Replaces X/X_lo/X_hi by one "share [lo, hi]" text column X (percentages)."""
    out = df.copy()
    for c in cols:
        lo, hi = out.pop(f"{c}_lo"), out.pop(f"{c}_hi")
        out[c] = [("" if v != v else f"{v:.0%} " + iv.fmt_ci(a, b, pct=True)) for v, a, b in zip(out[c], lo, hi)]
    return out


class _Writer:
    def __init__(self, out: str):
        self.out = out
        self.parts: list[str] = []
        os.makedirs(os.path.join(out, "tables"), exist_ok=True)
        os.makedirs(os.path.join(out, "figures"), exist_ok=True)

    def text(self, s: str):
        self.parts.append(s.rstrip("\n") + "\n")

    def table(self, name: str, df: pd.DataFrame, shown: pd.DataFrame | None = None, **kw):
        df.to_csv(os.path.join(self.out, "tables", f"{name}.csv"), index=False)
        self.parts.append(md_table(df if shown is None else shown, **kw))
        self.parts.append(f"[tables/{name}.csv](tables/{name}.csv)\n")

    def figure(self, name: str, fn, *args, caption: str = "", **kw):
        path = os.path.join(self.out, "figures", f"{name}.png")
        fn(*args, path, **kw)
        self.parts.append(f"![{caption or name}](figures/{name}.png)\n")

    def save(self) -> str:
        path = os.path.join(self.out, "report.md")
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(self.parts))
        os.replace(path + ".tmp", path)
        return path


def _header(w: _Writer, a: Archive, metric: str) -> None:
    w.text("# mergesweep report\n")
    direction = "" if stats.higher_is_better(metric) else " (lower is better: gains are decreases)"
    w.text(f"Archive `{a.path}`: **{a.n_configs} configs committed**"
           + (f" of {a.attributes['planned_configs']} planned" if a.attributes.get("planned_configs") else "")
           + f", {a.commits} commits. Metric: `{metric}`, mean over tasks{direction}.\n")
    prov = {k: a.attributes.get(k) for k in ("mergesweep_version", "git_revision", "host", "ranks",
                                              "group_size", "start_time", "spec_hash")
            if a.attributes.get(k) not in (None, "")}
    if prov:
        w.text(md_table(pd.DataFrame({"attribute": list(prov), "value": [str(v) for v in prov.values()]})))


def _reference_models(w: _Writer, scores: pd.DataFrame, wide: pd.DataFrame) -> None:
    w.text("## Base and single checkpoints\n")
    ref = scores[scores["kind"].isin(["base", "single"])].copy()
    # Checkpoints by name (the spec's `name:` or the folder's; the number when the archive has none).
    names = ref["member_names"] if "member_names" in ref else [str(m[0]) if len(m) else "" for m in ref["members"]]
    ref["model"] = ["base" if k == "base" else nm for k, nm in zip(ref["kind"], names)]
    ref["_order"] = [0 if k == "base" else m[0] for k, m in zip(ref["kind"], ref["members"])]
    ref = ref.sort_values("_order")
    ref_tab = pd.concat([ref[["model", "score"]], wide.reindex(ref.index)], axis=1).reset_index(drop=True)
    w.table("reference_models", ref_tab)


def _systematic_study(w: _Writer, a: Archive, scores, l2, base_score: float, metric: str, tasks,
                      opts: dict) -> pd.DataFrame:
    """Merges by method and subset size, overall and per task; returns the merges' gains."""
    higher = stats.higher_is_better(metric)
    gains = stats.merge_gains(scores, higher)
    if l2 is not None:
        gains["l2"] = l2.reindex(gains.index)
    if not len(gains):
        return gains
    w.text("## Systematic study: merges by method and subset size\n")
    tab = stats.systematic_table(scores, l2, higher, **opts)
    w.text("`share_beats_base`: share of subsets whose mean accuracy beats the base, with its Wilson "
           f"{iv.LEVEL:.0%} interval; `gain_base`: accuracy minus the base's; `gain_best`: minus the best "
           "single checkpoint of the subset (constructive interference when > 0; `share_beats_best` is "
           f"its share); mean over the subsets with a {iv.LEVEL:.0%} bootstrap interval over the subsets "
           f"({opts['resamples']} resamples, seed {opts['seed']}; std in the CSV). `p_base`, `p_best`: "
           f"Wilcoxon signed-rank p of a zero gain, {iv.adjust_name(opts['p_adjust'])}-adjusted over the "
           f"{int(tab[['gain_base_p', 'gain_best_p']].notna().sum().sum())} tests of this table.\n")
    few = tab[tab["configs"] < iv.MIN_PER_SIZE]
    if len(few):
        w.text(f"**Warning**: {len(few)} of {len(tab)} rows have fewer than {iv.MIN_PER_SIZE} subsets "
               f"(as few as {int(few['configs'].min())}): their intervals are too wide, or too unreliable, to "
               "tell an effect from noise.\n")
    shown = mean_with_ci(tab, ["gain_base", "gain_best", "acc"])
    shown = share_with_ci(shown, ["share_beats_base", "share_beats_best"])
    shown = shown.rename(columns={"gain_base_p_adj": "p_base", "gain_best_p_adj": "p_best"})
    keep = ["method", "n", "configs", "share_beats_base", "gain_base", "p_base", "gain_best", "p_best",
            "share_beats_best", "acc"] + (["l2_mean"] if l2 is not None else [])
    w.table("systematic", tab, shown[keep])
    w.figure("accuracy_vs_n", figures.accuracy_vs_n, tab, base_score,
             caption=f"mean accuracy vs n per method (band: {iv.LEVEL:.0%} bootstrap interval)")
    w.figure("gain_best_vs_n", figures.accuracy_vs_n, tab, base_score, value="gain_best",
             ylabel="gain over the best single checkpoint",
             caption=f"gain over the best single vs n (band: {iv.LEVEL:.0%} bootstrap interval)")
    w.figure("share_beats_base_vs_n", figures.share_vs_n, tab,
             caption=f"share of subsets beating the base vs n (bars: Wilson {iv.LEVEL:.0%} interval)")

    w.text("### Per task\n")
    pt = stats.per_task_table(a.configs, a.results, metric, tasks)
    nmax = pt["n"].max() if len(pt) else None
    piv = pt[pt["n"] == nmax].pivot_table(index="method", columns="task", values="gain_base_mean")
    w.text(f"Mean gain over the base per task at the largest n ({nmax}); every n in the CSV "
           "(with the Wilson interval of the share beating the base on each task).\n")
    w.table("per_task", pt, piv.reset_index())
    return gains


def _l2_study(w: _Writer, gains: pd.DataFrame, opts: dict) -> None:
    w.text("## L2 distance from the base as a predictor of success\n")
    s = stats.l2_success(gains, opts["seed"], opts["resamples"])
    w.figure("l2_vs_gain", figures.l2_vs_gain, gains, threshold=s.get("threshold_l2"),
             caption="L2 from base vs gain over base")
    w.table("l2_success", pd.DataFrame([s]),
            pd.DataFrame({"statistic": list(s), "value": list(s.values())}))
    w.text(_l2_sentence(s))
    per_method = pd.DataFrame([{"method": label, "l2_mean": g["l2"].mean(), "l2_std": g["l2"].std(),
                                **iv.share_cols(g["beats_base"], "share_beats_base"), "merges": len(g)}
                               for label, g in gains.groupby("label", sort=True)])
    w.table("l2_by_method", per_method)


def _pipeline_study(w: _Writer, scores: pd.DataFrame, pr: pd.DataFrame, wide: pd.DataFrame) -> None:
    w.text("## Behaviour vs internals (pipeline study)\n")
    w.text("Correlation across all configs (base, single checkpoints, merges) between the "
           "benchmark accuracy (mean over tasks, and each task in the CSV) and the probes' "
           "test macro-F1 (mean over seeds), for every probe task and every layer.\n")
    corr = stats.probe_correlations(scores, pr, wide)
    mean_corr = corr[corr["benchmark"] == "mean"]
    allp = mean_corr[mean_corr["probe"] == "(all probes)"].drop(columns=["benchmark", "probe"])
    w.text("Mean F1 over all probes, per layer:\n")
    w.table("probe_correlations", corr, allp)
    last = mean_corr["layer"].max()
    w.text(f"Per probe task at the last layer ({last}), as the pipeline paper reports:\n")
    w.text(md_table(mean_corr[mean_corr["layer"] == last].drop(columns=["benchmark"])))
    for v in ("spearman_rho", "pearson_r"):
        w.figure(f"probe_corr_{v}", figures.correlation_heatmap, mean_corr, value=v,
                 title=f"{v}: benchmark mean accuracy vs probe macro-F1",
                 caption=f"{v} per probe and layer")
    w.text("Merges relative to their parents (single checkpoints of the subset), benchmark "
           "accuracy and mean probe F1 at the last layer:\n")
    w.table("between_parents", stats.between_parents(scores, pr))


def _cost(w: _Writer, tm: pd.DataFrame, scores: pd.DataFrame) -> None:
    w.text("## Cost per config\n")
    t = tm.merge(scores[["label"]], left_on="config_id", right_index=True, how="left")
    cols = [c for c in ("merge_s", "eval_s", "probe_s", "total_s") if c in t]
    w.table("timings", t.groupby("label")[cols].mean().reset_index().rename(columns={"label": "method"}))


def _metrics_present(w: _Writer, results: pd.DataFrame) -> None:
    """Every (task, metric) in the archive, whatever its kind: multiple-choice accuracies, scored
    generation metrics (METRIC,FILTER), rolling perplexities; the report's --metric picks one."""
    w.text("## Metrics in the archive\n")
    w.text("Any of these can be the report's metric (`--metric NAME`); `lower` marks metrics where "
           "smaller is better (perplexities), for which gains are decreases.\n")
    g = results.groupby(["task", "metric"])["value"]
    tab = g.agg(configs="size", mean="mean", min="min", max="max").reset_index()
    tab["better"] = ["lower" if not stats.higher_is_better(m) else "higher" for m in tab["metric"]]
    w.table("metrics", tab)


def _unscored(w: _Writer, a: Archive) -> None:
    """Generate_until tasks whose generations have no /results rows yet."""
    u = a.unscored()
    if not len(u):
        return
    w.text("## Generation tasks\n")
    lacking = int(u["unscored"].sum())
    w.text(f"Configs with generations per generate_until task, and how many lack scores "
           f"(no `/results` row for the task). "
           + (f"**{lacking} lack scores**: run `{SCORE_COMMAND} {a.path}` where lm-eval is installed.\n"
              if lacking else "Every generation is scored.\n"))
    w.table("generation_scores", u)


def _failures(w: _Writer, a: Archive) -> None:
    """Configs that failed and are not done: the studies' tables leave them out, so say which."""
    f = a.failed_not_done()
    if not len(f):
        return
    w.text("## Failed configs\n")
    w.text(f"{len(f)} configs failed and have no results ({len(a.failures)} failed attempts in `/failures`); "
           f"the tables below leave them out. Rerunning the same sweep command retries them.\n")
    cols = ["config_id", "method", "params", "n", "members"] + (["member_names"] if "member_names" in f else [])
    w.table("failures", f[cols + ["failure", "message"]])


def _paired_items(w: _Writer, a: Archive, metric: str, opts: dict) -> None:
    """Merges against the base and their best single checkpoint, paired over items (format 4)."""
    from types import SimpleNamespace

    from . import paired
    from .api import tidy_configs
    from .reader import OUTCOME_BITS

    items = a.table("items")
    if not len(items) or metric not in OUTCOME_BITS:
        return
    frames = SimpleNamespace(items=items, configs=tidy_configs(a.configs))
    gains, tests = paired.paired_gains(frames, metric, opts["seed"], opts["resamples"], p_adjust=opts["p_adjust"])
    if not len(gains):
        return
    w.text("## Paired over items\n")
    sig = int((tests["p_adj"] < 0.05).sum())
    w.text(f"Each merge against the base and against the best single checkpoint of its subset, on the same "
           f"items ({int(gains['items'].iloc[0])} items of {int(gains['tasks'].iloc[0])} tasks, `{metric}`): the gain "
           f"with a paired percentile bootstrap interval (seed {opts['seed']}, {opts['resamples']} resamples, "
           f"every task's items drawn once per resample for both models), and an exact McNemar test per task "
           f"and pair: {sig} of {len(tests)} below 0.05 after {tests['p_adjust'].iloc[0]} adjustment.\n")
    w.table("paired_gains", gains)
    w.table("mcnemar", tests)


def build_report(archive: Archive, out: str, metric: str = "acc", seed: int = iv.SEED,
                 resamples: int = iv.RESAMPLES, p_adjust: str = "holm") -> str:
    """report.md with tables and figures in `out`; intervals bootstrap with `seed` and
    `resamples`, p-values of a table are adjusted by `p_adjust` ("holm" or "bh")."""
    opts = {"seed": seed, "resamples": resamples, "p_adjust": p_adjust}
    w = _Writer(out)
    a = archive
    _header(w, a, metric)
    _failures(w, a)
    _unscored(w, a)
    configs, results = a.configs, a.results
    if len(results):
        _metrics_present(w, results)
    if len(configs) == 0 or len(results) == 0:
        w.text("No committed results yet.\n")
        return w.save()
    tasks = stats.benchmark_tasks(results, metric)
    if not tasks:
        w.text(f"No task reports the metric `{metric}`; metrics present: "
               f"{', '.join(sorted(results['metric'].unique()))}.\n")
        return w.save()
    scores = stats.config_scores(configs, results, metric, tasks)
    wide = stats.task_scores(results, metric, tasks)
    ms = a.model_stats
    l2 = ms.groupby("config_id")["l2_from_base"].mean() if len(ms) and "l2_from_base" in ms else None
    base = scores.loc[scores["kind"] == "base", "score"]
    base_score = float(base.iloc[0]) if len(base) else math.nan
    w.text(f"Tasks ({len(tasks)}): {', '.join(tasks)}.\n")

    _reference_models(w, scores, wide)
    gains = _systematic_study(w, a, scores, l2, base_score, metric, tasks, opts)
    if len(gains) and l2 is not None and gains["l2"].notna().any():
        _l2_study(w, gains, opts)
    _paired_items(w, a, metric, opts)
    if len(a.probes):
        _pipeline_study(w, scores, a.probes, wide)
    if len(a.timings) and "total_s" in a.timings:
        _cost(w, a.timings, scores)
    return w.save()


def _l2_sentence(s: dict) -> str:
    parts = []
    if s.get("spearman_rho") == s.get("spearman_rho"):
        parts.append(f"Spearman rho(L2, gain over base) = {s['spearman_rho']:.3f} "
                     f"(p = {s['spearman_p']:.3g}, {s['merges']} merges)")
    if s.get("logit_separated"):
        parts.append(f"success is perfectly separated by L2 (threshold {s['threshold_l2']:.4g}), "
                     "so the logistic fit has no finite maximum")
    elif s.get("logit_b") == s.get("logit_b"):
        half = s["l2_at_half"]
        inside = s.get("l2_min", 0) <= half <= s.get("l2_max", math.inf)
        parts.append(f"logistic regression of success on log10 L2: slope {s['logit_b']:.3f} "
                     f"(p = {s['logit_p_b']:.3g}), 50% success at L2 ≈ {half:.4g}"
                     + ("" if inside else " (outside the observed L2 range)"))
    if s.get("auc_low_l2") == s.get("auc_low_l2"):
        parts.append(f"AUC of low L2 for success = {s['auc_low_l2']:.3f} "
                     f"({iv.LEVEL:.0%} bootstrap interval {iv.fmt_ci(s['auc_lo'], s['auc_hi'], signed=False)}, "
                     f"Mann-Whitney p = {iv.fmt_p(s['auc_p'])} against 0.5)")
        t = s["threshold_l2"]
        if s.get("l2_min", -math.inf) < t < s.get("l2_max", math.inf):
            parts.append(f"the best split, success iff L2 < {t:.4g}, classifies "
                         f"{100 * s['threshold_accuracy']:.0f}% of merges")
        else:
            parts.append("no L2 split classifies better than calling every merge a "
                         + ("success" if t > s.get("l2_max", math.inf) else "failure"))
    return ("; ".join(parts) + ".\n") if parts else ""


def run(archive_path: str, out: str, metric: str = "acc", quiet: bool = False, **opts) -> str:
    a = read_archive(archive_path)
    if not quiet:
        print(a.summary())
    path = build_report(a, out, metric, **opts)
    if not quiet:
        print(f"report: {path}")
    return path


def summary_text(archive: Archive, metric: str = "acc") -> str:
    """The demo's terminal table: per method and n, the share of subsets beating the base, the
    mean gain over the base (accuracy points) and the mean L2 distance from the base."""
    configs, results = archive.configs, archive.results
    tasks = stats.benchmark_tasks(results, metric) if len(results) else []
    if not tasks:
        return f"{archive.path}: no committed results with metric '{metric}' yet" + unscored_text(archive)
    scores = stats.config_scores(configs, results, metric, tasks)
    ms = archive.model_stats
    l2 = ms.groupby("config_id")["l2_from_base"].mean() if len(ms) and "l2_from_base" in ms else None
    tab = stats.systematic_table(scores, l2, stats.higher_is_better(metric))
    base = scores.loc[scores["kind"] == "base", "score"]
    lines = [f"{archive.n_configs} configs in {archive.path}; metric {metric}"
             + ("" if stats.higher_is_better(metric) else " (lower is better; gain = decrease)")
             + f", mean over {len(tasks)} tasks"
             + (f"; base {float(base.iloc[0]):.4f}" if len(base) else "")]
    lines.append(f"{'method':<44} {'n':>3} {'subsets':>7} {'P(beat base)':>12} {'mean gain':>10} {'mean L2':>9}")
    for _, r in tab.iterrows():
        l2s = f"{r['l2_mean']:9.3f}" if "l2_mean" in tab and not math.isnan(r["l2_mean"]) else f"{'-':>9}"
        lines.append(f"{str(r['method'])[:44]:<44} {int(r['n']):>3} {int(r['configs']):>7} "
                     f"{r['share_beats_base']:>12.2f} {r['gain_base_mean']:>+10.4f} {l2s}")
    return "\n".join(lines) + unscored_text(archive)
