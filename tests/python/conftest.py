import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cli():
    """Path of the mergesweep binary built by scripts/test.sh (MS_BUILD), or skip."""
    build = pathlib.Path(os.environ.get("MS_BUILD", ROOT / "build"))
    exe = build / "bin" / "mergesweep"
    if not exe.exists():
        pytest.skip(f"mergesweep is not built at {exe}")
    return str(exe)
