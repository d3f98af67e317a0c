import importlib


def test_analysis_package_imports_with_the_project_interpreter():
    # The interpreter chosen in scripts/env.sh must provide the analysis stack from Debian.
    for mod in ("analysis", "h5py", "numpy", "pandas", "matplotlib"):
        assert importlib.import_module(mod)
