"""Command line of the analysis package. Exit status: 0 done, 1 unreadable archive or failed
step (message on stderr), 2 bad command line (as every mergesweep verb)."""
from __future__ import annotations

import argparse
import sys


class _Parser(argparse.ArgumentParser):
    """Usage errors in the project's one message style (docs/errors.md), exit status 2."""

    def error(self, message):
        verb = self.prog.split()[-1]
        print(f"mergesweep: error: {verb}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _stat_options(p: argparse.ArgumentParser) -> None:
    """Options of the intervals and tests (analysis/intervals.py), recorded in the outputs."""
    from .intervals import P_ADJUST, RESAMPLES, SEED
    p.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed (default {SEED}; recorded in the tables)")
    p.add_argument("--resamples", type=int, default=RESAMPLES,
                   help=f"bootstrap resamples per interval (default {RESAMPLES})")
    p.add_argument("--p-adjust", choices=sorted(P_ADJUST), default="holm",
                   help="multiple-comparison control: holm (family-wise, default) or bh (Benjamini-Hochberg FDR)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python3 -m analysis",
                description="Tables and figures of the merging studies from a mergesweep archive.")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    r = sub.add_parser("report", help="report.md with tables (CSV) and figures (PNG)")
    r.add_argument("archive")
    r.add_argument("--out", required=True, help="output folder (created)")
    r.add_argument("--metric", default="acc", help="task metric to average (default acc; e.g. acc_norm)")
    r.add_argument("--quiet", action="store_true")
    _stat_options(r)
    m = sub.add_parser("summary", help="the systematic study's table on stdout: per method and subset size, "
                                       "share beating the base, mean gain, mean L2 from the base")
    m.add_argument("archive")
    m.add_argument("--metric", default="acc", help="task metric to average (default acc)")
    f = sub.add_parser("findings", help="each finding of the two studies: the claim, the number measured "
                                        "in the archive, reproduced yes/no")
    f.add_argument("archive", nargs="+")
    f.add_argument("--metric", default="acc", help="task metric to average (default acc)")
    f.add_argument("--out", help="also write ARCHIVE-findings.csv (and -methods.csv) into this folder")
    _stat_options(f)
    i = sub.add_parser("info", help="how many configs are committed (works while a sweep writes)")
    i.add_argument("archive")
    sub.add_parser("sizing", help="print the memory and wall-time tables of docs/sizing.md")
    s = sub.add_parser("score", help="score the archive's generations with lm-eval's own filters and metrics "
                                     "(needs lm-eval; docs/eval.md)")
    s.add_argument("archive")
    s.add_argument("--include-path", help="folder of local lm-eval task YAMLs (as lm_eval --include_path)")
    s.add_argument("--pack-dir", help="folder holding the task packs when /tasks paths do not resolve")
    s.add_argument("--bootstrap-iters", type=int, default=100000,
                   help="lm-eval's bootstrap_iters for stderrs without a closed form (default 100000, as lm-eval)")
    s.add_argument("--check", action="store_true", help="only list configs lacking scores; exit 1 if any")
    s.add_argument("--quiet", action="store_true")
    return p


def _opts(args) -> dict:
    return {"seed": args.seed, "resamples": args.resamples, "p_adjust": args.p_adjust}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on a bad command line
    if args.verb == "sizing":
        from .sizing import main as sizing_main
        return sizing_main()
    if args.verb == "score":
        from .score import main as score_main
        return score_main(args)
    from .reader import ArchiveError, read_archive
    try:
        if args.verb == "report":
            from .report import run
            run(args.archive, args.out, args.metric, args.quiet, **_opts(args))
        elif args.verb == "findings":
            from .findings import run as findings_run
            print(findings_run(args.archive, args.metric, args.out, **_opts(args)))
        elif args.verb == "summary":
            from .report import summary_text
            print(summary_text(read_archive(args.archive), args.metric))
        else:
            print(read_archive(args.archive).summary())
    except ArchiveError as e:  # its message starts with the file
        print(f"mergesweep: error: {e}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError, KeyError, ValueError) as e:
        print(f"mergesweep: error: {args.archive}: {e}", file=sys.stderr)
        return 1
    return 0
