"""analysis/export_study_packs.py: a spec's whole benchmark list, group tasks included (one pack
per subtask), exported in one command into the layout the spec names; a missing lm-eval or
dataset ends with one clear line. The export itself needs lm-eval's HF backend (torch,
transformers): set MS_LMEVAL_HF_PYTHON, else those tests are skipped."""
import os
import pathlib
import subprocess
import sys

import h5py
import pytest

from analysis.tests.test_score import lm_eval_hf_python

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "lmeval"
SCRIPT = ROOT / "analysis" / "export_study_packs.py"


def local_tasks(tmp_path):
    """ms_parity, and a group ms_grp of two copies of it (local YAML subtasks, local data)."""
    d = tmp_path / "tasks"
    d.mkdir()
    text = (FIX / "ms_parity.yaml").read_text().replace(" items.jsonl", f" {FIX / 'items.jsonl'}")
    (d / "ms_parity.yaml").write_text(text)
    for sub in ("ms_grp_a", "ms_grp_b"):
        (d / f"{sub}.yaml").write_text(text.replace("task: ms_parity", f"task: {sub}"))
    (d / "ms_grp.yaml").write_text("group: ms_grp\ntask:\n  - ms_grp_a\n  - ms_grp_b\n")
    return d


def spec(tmp_path, tasks):
    p = tmp_path / "study.yaml"
    p.write_text("base: model\ncheckpoints: [a, b]\nsubsets: {sizes: [2], samples: 1}\n"
                 "methods: [{method: task_arithmetic}]\noutput: out.h5\neval:\n  tasks:\n"
                 + "".join(f"    - {t}\n" for t in tasks))
    return p


def run(exe, *args, env=None):
    return subprocess.run([exe, str(SCRIPT), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_exports_a_spec_with_a_local_group_task(tmp_path):
    exe = lm_eval_hf_python()
    if exe is None:
        pytest.skip("no interpreter with lm-eval's HF backend (set MS_LMEVAL_HF_PYTHON)")
    tasks = local_tasks(tmp_path)
    s = spec(tmp_path, ["packs/tiny/ms_parity.h5", "packs/tiny/ms_grp*.h5"])
    r = run(exe, s, "--tokenizer", FIX / "model", "--include-path", tasks, "--limit", 5)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("ms_parity", "ms_grp_a", "ms_grp_b"):
        with h5py.File(tmp_path / "packs" / "tiny" / f"{name}.h5", "r") as f:
            assert f.attrs["source_task"] == name
            assert len(f["gold"]) == 5
    assert "3 packs" in r.stderr
    # A group written without a glob cannot be read back as one pack per subtask: refused.
    r = run(exe, spec(tmp_path, ["packs/tiny/ms_grp.h5"]), "--tokenizer", FIX / "model", "--include-path", tasks)
    assert r.returncode == 2 and "write it as a glob ('packs/tiny/ms_grp*.h5')" in r.stderr, r.stderr[-2000:]


def test_a_missing_dataset_offline_is_one_line(tmp_path):
    exe = lm_eval_hf_python()
    if exe is None:
        pytest.skip("no interpreter with lm-eval's HF backend (set MS_LMEVAL_HF_PYTHON)")
    tasks = local_tasks(tmp_path)
    text = (tasks / "ms_parity.yaml").read_text()
    (tasks / "ms_hub.yaml").write_text(text.replace("task: ms_parity", "task: ms_hub")
                                       .replace("dataset_path: json", "dataset_path: no-such-org/no-such-dataset")
                                       .replace("dataset_kwargs:", "unused_kwargs:"))
    r = run(exe, spec(tmp_path, ["packs/ms_hub.h5"]), "--tokenizer", FIX / "model", "--include-path", tasks,
            env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("export_study_packs: ms_hub:") and "cache" in last, r.stderr[-2000:]


def test_without_lm_eval_one_line_says_what_to_install(tmp_path):
    try:
        import lm_eval  # noqa: F401
        pytest.skip("this interpreter has lm-eval")
    except ImportError:
        pass
    r = run(sys.executable, spec(tmp_path, ["packs/x.h5"]), "--tokenizer", "t")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "lm_eval" in lines[0] and "pip install lm-eval" in lines[0], r.stderr
