"""The README's quick tour runs as written (so it cannot rot): its bash block is executed with
`B` pointing at the build and /tmp/ replaced by a fresh folder."""
import json
import os
import pathlib
import re
import struct
import subprocess

import h5py

ROOT = pathlib.Path(__file__).resolve().parents[2]


def tour_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick tour"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def safetensors_shapes(folder: pathlib.Path) -> dict:
    """Tensor name -> shape over every .safetensors file of a model folder (the header is JSON)."""
    shapes = {}
    for f in sorted(folder.glob("*.safetensors")):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def test_quick_tour_runs(cli, tmp_path):
    script = tour_block()
    assert "mergesweep sweep" in script and "mergesweep report" in script
    # /tmp/ first: the build itself may live under /tmp (a CI clone).
    script = script.replace("/tmp/", f"{tmp_path}/").replace("B=build/bin", f"B={pathlib.Path(cli).parent}")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    # eval: its table names every task pack it was given.
    packs = sorted((tmp_path / "tb" / "tasks").glob("*.h5"))
    assert packs
    for p in packs:
        with h5py.File(p, "r") as f:
            name = f.attrs["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        assert name in r.stdout, f"eval output does not name task {name!r}"

    # merge: the merged folder holds the base's tensors with the base's shapes.
    merged = safetensors_shapes(tmp_path / "merged")
    assert merged and merged == safetensors_shapes(tmp_path / "tb" / "base")
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["model_type"] == "llama"

    # report: it covers the study's methods.
    report = (tmp_path / "report" / "report.md").read_text()
    for method in ("task_arithmetic", "ties"):
        assert method in report, f"report.md does not mention {method}"

    # archive top -> archive model: the winner is rebuilt as a folder with the base's tensors and a model card.
    best = tmp_path / "best"
    assert safetensors_shapes(best) == safetensors_shapes(tmp_path / "tb" / "base")
    assert (best / "README.md").is_file()
