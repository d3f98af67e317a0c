"""The README's quick tour runs as written (so it cannot rot): its bash block is executed with
`B` pointing at the build and /tmp/ replaced by a fresh folder."""
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def tour_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick tour"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


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
    assert (tmp_path / "report" / "report.md").exists()
    assert (tmp_path / "merged" / "config.json").exists()
