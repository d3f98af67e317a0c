"""A model folder written by `mergesweep merge` loads in Hugging Face transformers and computes
the same logits in transformers as the merged weights imply (here: the merged model equals a
task-arithmetic merge recomputed from the inputs with torch). Skipped unless transformers and
torch are installed (they are not in CI; run with an interpreter that has them)."""
import json
import subprocess

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def test_merged_model_loads_and_matches(cli, tmp_path):
    fam = tmp_path / "fam"
    subprocess.run([cli, "synth", "--out", str(fam), "--checkpoints", "2", "--dtype", "float32",
                    "--max-shard-size", "100KB"], check=True)
    cfg = tmp_path / "ta.yaml"
    cfg.write_text(f"merge_method: task_arithmetic\nbase_model: {fam}/base\nmodels:\n"
                   f"  - model: {fam}/ft-00\n    parameters: {{weight: 0.5}}\n"
                   f"  - model: {fam}/ft-01\n    parameters: {{weight: 0.5}}\n")
    out = tmp_path / "merged"
    subprocess.run([cli, "merge", str(cfg), str(out), "--quiet"], check=True)
    assert json.loads((out / "mergesweep_merge.json").read_text())["method"] == "task_arithmetic"

    load = lambda p: transformers.AutoModelForCausalLM.from_pretrained(str(p), torch_dtype=torch.float32)
    merged, base, a, b = load(out), load(fam / "base"), load(fam / "ft-00"), load(fam / "ft-01")
    sd = {k: base.state_dict()[k] + 0.5 * (a.state_dict()[k] - base.state_dict()[k])
          + 0.5 * (b.state_dict()[k] - base.state_dict()[k]) for k in base.state_dict()}
    base.load_state_dict(sd)
    ids = torch.tensor([[1, 5, 9, 42, 7, 3]])
    with torch.no_grad():
        diff = (merged(ids).logits - base(ids).logits).abs().max().item()
    assert diff < 1e-5, diff
