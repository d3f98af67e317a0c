#!/usr/bin/env bash
# Ready for the first GPU: one script that builds mergesweep against this machine's own torch and
# runs the device checks. On a machine without a GPU it runs every step that needs none and names
# the ones it skipped. No package registry is needed: the build dependencies come from
# bench/gpu/debs/ (bench/gpu/fetch-debs.sh, run beforehand where Debian's mirror is reachable)
# when this machine lacks them.
#   MS_GPU_BUILD  build folder (default build-gpu)      MS_JOBS  parallel jobs (default: nproc)
# Steps:
#   1 deps      unpack the .deb files into bench/gpu/prefix when MPI/HDF5/... are missing
#   2 build     configure against `python3 -c "import torch"`'s libtorch (CUDA + NCCL required on
#               a GPU machine), build the CLI and the test binaries
#   3 cpu       unit tests of merge kernels, twins, memory plan (CPU)
#   4 parity    CPU vs CUDA merges of every method, eval accuracy on the testbed     [GPU]
#   5 nccl      the NCCL collectives (ctest label nccl; several ranks with several GPUs) [GPU]
#   6 demo      the demo sweep with schedule.device: cuda                             [GPU]
#   7 bench     merge GB/s against a device-to-device copy; eval tokens/s and MFU      [GPU]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BUILD="${MS_GPU_BUILD:-$ROOT/build-gpu}"
JOBS="${MS_JOBS:-$(nproc)}"
PREFIX="$ROOT/bench/gpu/prefix"
declare -a DONE=() SKIPPED=() FAILED=()
step() { echo; echo "== $1"; }
ok() { DONE+=("$1"); }
skip() { SKIPPED+=("$1 ($2)"); echo "SKIPPED: $1: $2"; }
bad() { FAILED+=("$1"); echo "FAILED: $1"; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1

PY="${MS_PYTHON:-python3}"
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
echo "check: torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo missing), GPUs visible: $GPUS"

step "1 deps"
if command -v mpicc >/dev/null && [ -e /usr/include/hdf5/serial/hdf5.h ] && [ -e /usr/include/yaml-cpp/yaml.h ]; then
  echo "system packages present"; ok deps
elif ls bench/gpu/debs/*.deb >/dev/null 2>&1; then
  mkdir -p "$PREFIX"
  for d in bench/gpu/debs/*.deb; do dpkg -x "$d" "$PREFIX" || bad "deps: $d"; done
  export PATH="$PREFIX/usr/bin:$PATH" LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  export OPAL_PREFIX="$PREFIX/usr" CMAKE_PREFIX_PATH="$PREFIX/usr:${CMAKE_PREFIX_PATH:-}"
  export CPATH="$PREFIX/usr/include:$PREFIX/usr/include/hdf5/serial:${CPATH:-}"
  EXTRA_CMAKE=(-DHDF5_ROOT="$PREFIX/usr/lib/x86_64-linux-gnu/hdf5/serial" -DMPI_C_COMPILER="$PREFIX/usr/bin/mpicc")
  echo "unpacked $(ls bench/gpu/debs/*.deb | wc -l) packages into $PREFIX"; ok deps
else
  bad "deps: neither system packages nor bench/gpu/debs/*.deb (run bench/gpu/fetch-debs.sh where a mirror is reachable)"
fi

step "2 build ($BUILD)"
TORCH_DIR="$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "share/cmake/Torch"))' 2>/dev/null)"
REQUIRE=OFF; [ "$GPUS" -gt 0 ] && REQUIRE=ON
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
BUILD_TARGETS=(mergesweep test_merge test_sweep test_device bench_merge_resident bench_model_forward)
if [ -f "$BUILD/CMakeCache.txt" ] && [ -z "$TORCH_DIR" ]; then
  echo "reusing the configured build in $BUILD (python3 cannot import torch)"
  cmake --build "$BUILD" -j "$JOBS" --target "${BUILD_TARGETS[@]}" && ok build || bad build
elif [ -z "$TORCH_DIR" ]; then
  bad "build: python3 cannot import torch (set MS_PYTHON, or MS_GPU_BUILD to a configured build)"
elif cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTorch_DIR="$TORCH_DIR" \
       -DMS_REQUIRE_CUDA=$REQUIRE -DMS_BUILD_BENCH=ON "${EXTRA_CMAKE[@]}" >"$ROOT/bench/gpu/configure.log" 2>&1 \
     && cmake --build "$BUILD" -j "$JOBS" --target "${BUILD_TARGETS[@]}"; then
  grep "mergesweep:" "$ROOT/bench/gpu/configure.log"; ok build
else
  tail -30 "$ROOT/bench/gpu/configure.log"; bad build
fi

step "3 cpu"
if [ -x "$BUILD/tests/test_merge" ]; then
  (cd "$BUILD" && CUDA_VISIBLE_DEVICES="" ctest -R "^test_merge$|^test_sweep$|^test_device$" --output-on-failure) && ok cpu || bad cpu
else skip cpu "no build"; fi

if [ "$GPUS" -eq 0 ]; then
  for s in "4 parity" "5 nccl" "6 demo" "7 bench"; do skip "$s" "no GPU visible"; done
else
  step "4 parity"
  (cd "$BUILD" && ctest -R "^test_device$" --output-on-failure) && ok parity || bad parity
  step "5 nccl"
  if (cd "$BUILD" && ctest -N -L nccl | grep -q "Total Tests: [1-9]"); then
    (cd "$BUILD" && ctest -L nccl --output-on-failure) && ok nccl || bad nccl
  else skip "5 nccl" "this tree has no test labelled nccl yet (dist backend tests)"; fi
  step "6 demo"
  T=$(mktemp -d)
  if "$BUILD/bin/mergesweep" testbed --preset tiny --out "$T/tb" >"$T/testbed.log" 2>&1; then
    sed -e "s|\.\./cache/testbed/|$T/tb/|g" -e "s|^schedule: {|schedule: {device: cuda, |" jobs/demo.yaml >"$T/demo.yaml"
    grep -q "device: cuda" "$T/demo.yaml" || printf 'schedule: {device: cuda}\n' >>"$T/demo.yaml"
    "$BUILD/bin/mergesweep" sweep --plan "$T/demo.yaml" && mpirun -np 1 "$BUILD/bin/mergesweep" sweep "$T/demo.yaml" --output "$T/demo.h5" \
      && ok demo || bad demo
  else tail "$T/testbed.log"; bad demo; fi
  step "7 bench"
  "$BUILD/bin/bench_merge_resident" --device cuda "$T/tb/base" "$T"/tb/ft-0* && ok "bench merge" || bad "bench merge"
  "$BUILD/bin/bench_model_forward" 8 512 4 cuda && ok "bench eval" || bad "bench eval"
fi

echo
echo "== summary"
echo "done:    ${DONE[*]:-none}"
echo "skipped: ${SKIPPED[*]:-none}"
echo "failed:  ${FAILED[*]:-none}"
[ ${#FAILED[@]} -eq 0 ]
