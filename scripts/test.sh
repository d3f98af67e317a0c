#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test: the C++ suites via
# ctest (unit tests, the bad-input corpus, the sweep with real MPI ranks), Python via pytest (the
# analysis package end to end on an engine-made archive), the real-SLURM test (daemons started
# here, sweep + requeue + array jobs), then the C++ unit suites again under ASan + UBSan.
# MS_SKIP_SANITIZE=1 skips the sanitizer pass; MS_SKIP_SLURM=1 the SLURM test (it needs root).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MS_ROOT"
T0=$SECONDS

bash scripts/install-deps.sh
ms_setup_python
ms_setup_lmeval
ms_mpi_env

echo "== build ($MS_BUILD)"
# CI (CI=true) builds with warnings as errors; a user's own compiler may know newer warnings.
WERROR=OFF
if [ "${CI:-}" = "true" ]; then WERROR=ON; fi
ms_build "$MS_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMS_WERROR="$WERROR"

echo "== ctest [$((SECONDS - T0)) s]"
(cd "$MS_BUILD" && ctest -j "$MS_JOBS" --output-on-failure)

echo "== pytest [$((SECONDS - T0)) s]"
MS_BUILD="$MS_BUILD" MS_PYTHON="$MS_PY" "$MS_PY" -m pytest -q tests/python analysis

if [ "${MS_SKIP_SLURM:-0}" != "1" ]; then
  echo "== real SLURM (tests/slurm/run_slurm_test.sh) [$((SECONDS - T0)) s]"
  MS_BUILD="$MS_BUILD" MS_PYTHON="$MS_PY" bash tests/slurm/run_slurm_test.sh
fi

if [ "${MS_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== ctest under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan) [$((SECONDS - T0)) s]"
  ms_build "$MS_ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DMS_SANITIZE=ON -DMS_BUILD_BENCH=OFF
  # libtorch is not instrumented and keeps static allocations alive at exit: leak checks off.
  # The multi-process MPI suite (label mpi) runs in the main pass only: under ASan each of its
  # dozens of mpirun launches would dominate the run time without covering new code.
  (cd "$MS_ROOT/build-asan" && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -j "$MS_JOBS" -LE "mpi|faults" --output-on-failure)
fi
echo "== all tests passed [$((SECONDS - T0)) s]"
