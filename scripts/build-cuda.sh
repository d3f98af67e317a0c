#!/usr/bin/env bash
# The CUDA build, verified on any machine (a GPU is not needed): a venv holding PyPI's CUDA torch
# wheel, mergesweep configured against its libtorch with CUDA and NCCL on (the NCCL backend built
# against the wheel's nvidia/nccl, so one process loads one NCCL), built, then the whole ctest suite
# run with that build on the CPU.
#   MS_CUDA_VENV   the venv (default .venv-cuda in the checkout; made when missing)
#   MS_CUDA_BUILD  the build folder (default build-cuda)
#   MS_TORCH_SPEC  what pip installs (default "torch": PyPI's Linux wheel is the CUDA build)
#   MS_CTEST_ARGS  extra ctest arguments (e.g. "-R test_merge" for a subset)
#   MS_SKIP_CTEST=1  configure and build only
# Needs: python3 with venv, the CUDA toolkit (nvcc, headers: the wheel's CMake config looks for
# it), the Debian packages of scripts/install-deps.sh. About 4 GB of wheels on the first run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MS_ROOT"
T0=$SECONDS
VENV="${MS_CUDA_VENV:-$MS_ROOT/.venv-cuda}"
BUILD="${MS_CUDA_BUILD:-$MS_ROOT/build-cuda}"

echo "== venv with the CUDA torch wheel ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off "${MS_TORCH_SPEC:-torch}"
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$VENV/bin/python" - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, CXX11 ABI {torch.compiled_with_cxx11_abi()}")
assert torch.version.cuda, "this torch is not a CUDA build"
assert torch.compiled_with_cxx11_abi(), "this torch is built with the old C++ ABI (torch < 2.7): it cannot link with Debian's C++ libraries"
PY
[ -f "$SITE/nvidia/nccl/include/nccl.h" ] || { echo "build-cuda: $SITE/nvidia/nccl/include/nccl.h is missing (the wheel's NCCL)" >&2; exit 1; }
if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do [ -x "$d/nvcc" ] && export PATH="$d:$PATH" && break; done
fi
command -v nvcc >/dev/null || { echo "build-cuda: nvcc not found (install the CUDA toolkit or put it on PATH)" >&2; exit 1; }

echo "== configure + build ($BUILD) [$((SECONDS - T0)) s]"
# cmake/torch_wheel.cmake pins Caffe2_DIR, libtorch/libc10 and NCCL to the wheel from Torch_DIR.
mkdir -p "$BUILD"
cmake -S "$MS_ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTorch_DIR="$SITE/torch/share/cmake/Torch" -DMS_WITH_CUDA=ON -DMS_REQUIRE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" >"$BUILD/configure.log" 2>&1 \
  || { tail -40 "$BUILD/configure.log" >&2; exit 1; }
grep -E "mergesweep:|Found Torch" "$BUILD/configure.log" || true
if grep -q "Found Torch: /usr/" "$BUILD/configure.log"; then
  echo "build-cuda: the configure found Debian's libtorch, not the wheel's" >&2
  exit 1
fi
cmake --build "$BUILD" -j "$MS_JOBS"
echo "== linked libraries of the CLI"
ldd "$BUILD/bin/mergesweep" | grep -E "libtorch\.so|libc10\.so|libnccl|libtorch_cuda" | sed 's/ (0x.*//'
if ldd "$BUILD/bin/mergesweep" | grep -E "libnccl|libtorch" | grep -q "=> /usr/"; then
  echo "build-cuda: the binary resolves libtorch or NCCL from /usr (two builds in one process)" >&2
  exit 1
fi

if [ "${MS_SKIP_CTEST:-0}" = "1" ]; then
  echo "== built; ctest skipped (MS_SKIP_CTEST=1) [$((SECONDS - T0)) s]"
  exit 0
fi
echo "== ctest on the CPU [$((SECONDS - T0)) s]"
ms_setup_python
ms_mpi_env
# No GPU is used here even when one is visible: the whole suite is the CPU suite.
(cd "$BUILD" && CUDA_VISIBLE_DEVICES="" ctest -j "$MS_JOBS" --output-on-failure ${MS_CTEST_ARGS:-})
echo "== CUDA build passed its tests on the CPU [$((SECONDS - T0)) s]"
