#!/usr/bin/env bash
# ThreadSanitizer run of the sweep tests: the coordinator thread shares state with the rank's work
# loop (sweep/coordinator.cpp, sweep/run.cpp), the archive writer runs beside it. Builds
# build-tsan (-DMS_TSAN=ON) and runs the planner suite and the multi-rank suite (real mpirun;
# every rank is the TSan-built mergesweep). A race report aborts the process that saw it
# (halt_on_error), so the test fails. scripts/tsan.supp lists the uninstrumented libraries
# (OpenMP, Open MPI, libtorch) whose internal synchronisation TSan cannot see.
# Usage: scripts/tsan.sh [CTEST_REGEX]   (default: test_sweep)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MS_ROOT"
ms_mpi_env
BUILD="$MS_ROOT/build-tsan"
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S "$MS_ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMS_TSAN=ON \
    -DMS_BUILD_BENCH=OFF -DMS_WITH_CUDA=OFF >/dev/null
fi
cmake --build "$BUILD" -j "$MS_JOBS" --target mergesweep test_sweep test_sweep_mpi test_sweep_generation_mpi
export TSAN_OPTIONS="suppressions=$MS_ROOT/scripts/tsan.supp halt_on_error=1 second_deadlock_stack=1 history_size=4"
# One OpenMP thread: libgomp's barriers are invisible to TSan and would only add noise.
export OMP_NUM_THREADS=1
(cd "$BUILD" && ctest -R "${1:-test_sweep}" --output-on-failure)
