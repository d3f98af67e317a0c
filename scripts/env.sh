# Sourced by the other scripts: one place for paths and the project's Python interpreter.
# Python: Debian's /usr/bin/python3 (it has python3-h5py, numpy, pandas, matplotlib, pytest from
# apt) in a venv at .venv that sees those system packages; PyPI extras (the reference
# `safetensors` package) go into the venv when PyPI is reachable.
MS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MS_BUILD="${MS_BUILD:-$MS_ROOT/build}"
MS_VENV="$MS_ROOT/.venv"
MS_PY="$MS_VENV/bin/python"
MS_JOBS="${MS_JOBS:-$(nproc)}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
# Hash paths relative to the checkout (and ignore the build folder in debug info), so a fresh
# clone elsewhere, as CI makes, reuses the cache instead of recompiling everything.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$MS_ROOT}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"

ms_setup_python() {
  if [ ! -x "$MS_PY" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$MS_VENV"
  fi
  # Optional reference tools for compatibility tests; tests that need them skip without them.
  if ! "$MS_PY" -c "import safetensors" 2>/dev/null; then
    "$MS_PY" -m pip install -q --disable-pip-version-check safetensors 2>/dev/null \
      || echo "note: could not pip-install safetensors; reference-package tests will be skipped" >&2
  fi
  # tokenizers: analysis/export_probe_pack.py tokenizes with it where transformers is absent.
  if ! "$MS_PY" -c "import tokenizers" 2>/dev/null; then
    "$MS_PY" -m pip install -q --disable-pip-version-check tokenizers 2>/dev/null \
      || echo "note: could not pip-install tokenizers; probe-pack export tests will be skipped" >&2
  fi
}

# lm-eval for the tests of `python3 -m analysis score` (it applies lm-eval's own filters and
# metrics): a venv at .venv-lmeval with lm-eval 0.4.13 and h5py, no torch (scoring needs none).
# Exports MS_LMEVAL_PYTHON; a caller's own MS_LMEVAL_PYTHON wins. Without PyPI those tests skip.
ms_setup_lmeval() {
  if [ -n "${MS_LMEVAL_PYTHON:-}" ]; then return 0; fi
  local venv="$MS_ROOT/.venv-lmeval"
  if ! "$venv/bin/python" -c "import lm_eval, h5py" 2>/dev/null; then
    /usr/bin/python3 -m venv "$venv" \
      && "$venv/bin/python" -m pip install -q --disable-pip-version-check "lm-eval==0.4.13" h5py 2>/dev/null \
      || { echo "note: could not pip-install lm-eval; the analysis score tests will be skipped" >&2; return 0; }
  fi
  export MS_LMEVAL_PYTHON="$venv/bin/python"
}

ms_build() {  # ms_build DIR [cmake args...]
  local dir="$1"; shift
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S "$MS_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  fi
  cmake --build "$dir" -j "$MS_JOBS"
}

# OpenMPI refuses to start as root unless told; CI and containers run as root.
ms_mpi_env() {
  if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
}
