"""Files written by mergesweep load in the reference `safetensors` package with the same names,
dtypes, shapes and values that mergesweep reports. Skipped when the package is not installed
(scripts/test.sh pip-installs it into .venv when PyPI is reachable)."""
import json
import struct
import subprocess

import numpy as np
import pytest

safetensors = pytest.importorskip("safetensors")


def bf16_to_f32(raw):
    return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_synth_family_loads_in_reference(cli, tmp_path, dtype):
    out = tmp_path / "fam"
    subprocess.run([cli, "synth", "--out", str(out), "--checkpoints", "1", "--dtype", dtype,
                    "--max-shard-size", "60KB"], check=True)
    for model in ("base", "ft-00"):
        folder = out / model
        report = json.loads(subprocess.run([cli, "inspect", "--json", str(folder)], check=True,
                                           capture_output=True, text=True).stdout)
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        assert set(index["weight_map"]) == {t["name"] for t in report["tensors"]}
        seen = 0
        for shard in sorted(set(index["weight_map"].values())):
            blob = (folder / shard).read_bytes()
            (n,) = struct.unpack("<Q", blob[:8])
            assert (8 + n) % 8 == 0  # header padded as the reference pads it
            for name, info in safetensors.deserialize(blob):
                ours = next(t for t in report["tensors"] if t["name"] == name)
                assert ours["dtype"] == info["dtype"] and ours["shape"] == info["shape"]
                assert ours["file"] == shard
                raw = bytes(info["data"])
                values = bf16_to_f32(raw) if info["dtype"] == "BF16" else np.frombuffer(raw, dtype=np.float32)
                assert np.isfinite(values).all()
                if name.endswith("norm.weight") and model == "base":
                    assert (values == 1.0).all()  # RMSNorm weights start at one
                seen += 1
        assert seen == report["num_tensors"]
        if dtype == "float32":
            # The numpy front end of the reference package opens whole shards too.
            from safetensors.numpy import load_file
            for shard in set(index["weight_map"].values()):
                assert load_file(str(folder / shard))


def test_reference_fixtures_match_manifest():
    """The committed fixtures are what the reference package says they are."""
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "safetensors"
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    for f in manifest["files"]:
        loaded = dict(safetensors.deserialize((root / f["file"]).read_bytes()))
        assert sorted(loaded) == sorted(t["name"] for t in f["tensors"])
        for t in f["tensors"]:
            assert bytes(loaded[t["name"]]["data"]).hex() == t["hex"]
