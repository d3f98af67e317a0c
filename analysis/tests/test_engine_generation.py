"""The engine's greedy generation (`mergesweep eval` on the generate_until packs of
tests/fixtures/lmeval_gen_*) against lm-eval 0.4.13's own generations: every item's response text
equal to lm-eval's, its ids equal to transformers' (gen_ids), for the byte-level BPE and the
SentencePiece byte-fallback tokenizers; then the engine's responses scored by `analysis score`
give lm-eval's metrics. Skips, saying why, while the engine's generation is not built (MS_BUILD
names the build folder; the scoring step also needs MS_LMEVAL_PYTHON or lm-eval here)."""
import json
import os
import pathlib
import subprocess

import pytest

from analysis.tests import gen_archive
from analysis.tests.test_score import FIX, ROOT, TASKS, expected, include_dir, lm_eval_python, results, score


def _cli():
    exe = pathlib.Path(os.environ.get("MS_BUILD", ROOT / "build")) / "bin" / "mergesweep"
    if not exe.exists():
        pytest.skip(f"mergesweep is not built at {exe} (set MS_BUILD)")
    r = subprocess.run([str(exe), "eval", "--help"], capture_output=True, text=True)
    if "generate_until" not in r.stdout:
        pytest.skip(f"`mergesweep eval` in {exe} does not generate yet")
    return str(exe)


def engine_generations(tmp_path, kind, task):
    out = tmp_path / f"{kind}-{task}.json"
    fix = FIX / f"lmeval_gen_{kind}"
    r = subprocess.run([_cli(), "eval", str(fix / "model"), "--tasks", str(fix / f"{task}.h5"), "--json", str(out),
                        "-q"], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text(encoding="utf-8"))["results"][task]["generations"]


@pytest.mark.parametrize("kind", ["bpe", "spm"])
@pytest.mark.parametrize("task", TASKS)
def test_engine_generates_lm_evals_strings(tmp_path, kind, task):
    items = expected(kind)["tasks"][task]["items"]
    gens = engine_generations(tmp_path, kind, task)
    assert len(gens) == len(items)
    for g, it in zip(gens, items):
        assert g["text"] == it["resp"], it["doc_id"]
        assert g["tokens"] == it["gen_ids"], it["doc_id"]


@pytest.mark.parametrize("kind", ["bpe", "spm"])
def test_engine_responses_scored_by_analysis_score_equal_lm_eval(tmp_path, kind):
    exe = lm_eval_python()
    if exe is None:
        pytest.skip("no interpreter with lm-eval (set MS_LMEVAL_PYTHON)")
    body = {t: [g["text"] for g in engine_generations(tmp_path, kind, t)] for t in TASKS}
    a = tmp_path / "a.h5"
    gen_archive.build(a, {t: FIX / f"lmeval_gen_{kind}" / f"{t}.h5" for t in TASKS}, [(3, body)])
    r = score(a, "--include-path", include_dir(tmp_path), exe=exe)
    assert r.returncode == 0, r.stderr
    got = {(t, m): v for _, t, m, v, _, _ in results(a)[0]}
    for t in TASKS:
        want = {k: v for k, v in expected(kind)["tasks"][t]["metrics"].items() if "_stderr," not in k}
        assert {m: got[(t, m)] for m in want} == pytest.approx(want, abs=1e-12)
