#!/usr/bin/env python3
"""Cost of `python -m analysis score` per 1000 items, whole process (lm-eval import, task
loading, filters, process_results, aggregation, the commit), on archives of 1 and N configs
holding the lm-eval fixture's responses for both of its tasks (55 items per config):

  MS_LMEVAL_PYTHON=/path/to/lmeval-venv/bin/python python3 bench/analysis_score_bench.py [N] [bpe|spm]   (default 400 bpe)

Prints the wall time of each run and the marginal cost per 1000 items, (t_N - t_1) / items.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.tests import gen_archive  # noqa: E402
from analysis.tests.test_score import TASKS, include_dir  # noqa: E402


def timed_score(exe, archive, inc):
    t = time.time()
    r = subprocess.run([exe, "-m", "analysis", "score", str(archive), "--include-path", str(inc)], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr)
    print("  " + r.stdout.strip())  # its own timing: task loading, filters, metrics, commit
    return time.time() - t


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    kind = sys.argv[2] if len(sys.argv) > 2 else "bpe"
    exe = os.environ.get("MS_LMEVAL_PYTHON", sys.executable)
    fix = ROOT / "tests" / "fixtures" / f"lmeval_gen_{kind}"
    exp = json.loads((fix / "expected.json").read_text(encoding="utf-8"))["tasks"]
    resp = {t: [it["resp"] for it in exp[t]["items"]] for t in TASKS}
    per_config = sum(len(v) for v in resp.values())
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        inc = include_dir(d)
        times = {}
        for configs in (1, n):
            a = d / f"a{configs}.h5"
            gen_archive.build(a, {t: fix / f"{t}.h5" for t in TASKS}, [(i + 1, resp) for i in range(configs)])
            times[configs] = timed_score(exe, a, inc)
            print(f"{configs} configs, {configs * per_config} items: {times[configs]:.2f} s", flush=True)
    items = (n - 1) * per_config
    print(f"marginal: {(times[n] - times[1]) / items * 1000:.2f} s per 1000 items "
          f"(fixed cost of one run: about {times[1]:.1f} s)")


if __name__ == "__main__":
    main()
