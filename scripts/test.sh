#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test (C++ via ctest, Python
# via pytest), then the C++ unit tests once more under AddressSanitizer + UBSan.
# MS_SKIP_SANITIZE=1 skips the sanitizer pass.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MS_ROOT"

bash scripts/install-deps.sh
ms_setup_python

echo "== build ($MS_BUILD)"
ms_build "$MS_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo

echo "== ctest"
(cd "$MS_BUILD" && ctest -j "$MS_JOBS" --output-on-failure)

echo "== pytest"
MS_BUILD="$MS_BUILD" "$MS_PY" -m pytest -q tests/python analysis

if [ "${MS_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== ctest under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan)"
  ms_build "$MS_ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DMS_SANITIZE=ON -DMS_BUILD_BENCH=OFF
  # libtorch is not instrumented and keeps static allocations alive at exit: leak checks off.
  (cd "$MS_ROOT/build-asan" && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -j "$MS_JOBS" --output-on-failure)
fi
echo "== all tests passed"
