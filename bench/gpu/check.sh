#!/usr/bin/env bash
# The GPU checks in one script, made for the lent GPU machine: its image has python3 with PyPI's
# CUDA torch wheel and a CUDA toolkit, but no OpenMPI, HDF5, yaml-cpp, Boost, nlohmann-json,
# GoogleTest or OpenSSL headers, and no network. Those come from bench/gpu/debs/
# (bench/gpu/fetch-debs.sh, run beforehand where Debian's mirror is reachable), unpacked without
# root into bench/gpu/prefix. Without a GPU every step that needs none still runs, and the others
# say that they were skipped; bench/gpu/image/ rehearses the whole script in such an image.
#
#   check.sh A     deps, configure, build, CPU tests, device parity, NCCL   (first device call)
#   check.sh B     deps, build the rest, lm-eval wheels, demo sweep on cuda with its peak memory
#                  against the plan, benchmarks against copy/GEMM/transformers/lm-eval (second call)
#   check.sh all   both (default)
# The device tool caps a call at 10 minutes; each part is meant to take under 6 on 16 cores.
# B reuses A's build folder when the machine is still warm, and builds what it lacks otherwise.
#
# Environment: MS_GPU_BUILD build folder (default build-gpu); MS_JOBS parallel jobs (default
# nproc); MS_PYTHON the python whose torch to build against (default python3); MS_REQUIRE_CUDA
# ON/OFF (default ON when that torch is a CUDA build: the configure then fails without CUDA+NCCL).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PART="${1:-all}"
case "$PART" in A|B|all) ;; *) echo "usage: check.sh [A|B|all]" >&2; exit 2 ;; esac
BUILD="${MS_GPU_BUILD:-$ROOT/build-gpu}"
JOBS="${MS_JOBS:-$(nproc)}"
PREFIX="$ROOT/bench/gpu/prefix"
PY="${MS_PYTHON:-python3}"
LOGS="$ROOT/bench/gpu/logs"
mkdir -p "$LOGS"

# Bookkeeping: every step ends in exactly one of done/skipped/failed, with its duration.
declare -a DONE=() SKIPPED=() FAILED=()
T0=$SECONDS; STEP=""; STEP_T=$SECONDS
end_step() { [ -n "$STEP" ] && echo "-- $STEP: $((SECONDS - STEP_T)) s"; STEP=""; }
step() { end_step; STEP="$1"; STEP_T=$SECONDS; echo; echo "== $1  [t=$((SECONDS - T0)) s]"; }
ok() { DONE+=("$1 ($((SECONDS - STEP_T)) s)"); }
skip() { SKIPPED+=("$1 ($2)"); echo "SKIPPED: $1: $2"; }
bad() { FAILED+=("$1"); echo "FAILED: $1"; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1
# OpenMPI 4 refuses to start without ssh/rsh on PATH, even for ranks on this machine only.
command -v ssh >/dev/null || command -v rsh >/dev/null || export OMPI_MCA_plm_rsh_agent="${OMPI_MCA_plm_rsh_agent:-false}"

TORCH_INFO="$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda or "none", torch.cuda.device_count())' 2>/dev/null)"
read -r TORCH_VERSION TORCH_CUDA GPUS <<<"${TORCH_INFO:-missing none 0}"
[ "$TORCH_CUDA" = none ] && TORCH_CUDA=""
echo "check $PART: torch $TORCH_VERSION (CUDA ${TORCH_CUDA:-none}), GPUs visible: $GPUS, jobs: $JOBS"

# ctest that fails on "no test matched" and, where GPU=1, on any skipped gtest case: a GPU step
# whose test skipped itself (GTEST_SKIP: no device visible, ...) did not check anything.
run_ctest() {  # run_ctest NAME GPU ctest-args...
  local name="$1" gpu="$2" log="$LOGS/$1.log"; shift 2
  (cd "$BUILD" && ctest --no-tests=error --output-on-failure -V "$@") >"$log" 2>&1
  local rc=$?
  grep -E "^ *[0-9]+/[0-9]+ Test|tests passed|No tests were found" "$log"
  if [ $rc -ne 0 ]; then tail -40 "$log"; bad "$name (log: $log)"; return 1; fi
  if [ "$gpu" = 1 ] && grep -q "\[  SKIPPED \]" "$log"; then
    grep "\[  SKIPPED \]" "$log" | sort -u | head; bad "$name: a GPU test skipped itself (log: $log)"; return 1
  fi
  ok "$name"
}

# --- deps -----------------------------------------------------------------------------------
# Debian links the plain names (mpicc, mpirun, libpsm_infinipath.so.1, ...) through
# update-alternatives in the packages' postinst scripts, which dpkg-deb -x never runs: read each
# kept package's "--install/--slave LINK NAME TARGET" and make the link where its target exists
# (the first one wins, as the highest priority would).
alternatives_of() {  # alternatives_of DEB: "LINK TARGET" lines
  dpkg-deb --ctrl-tarfile "$1" | tar -xO ./postinst 2>/dev/null | sed -e :a -e '/\\$/N; s/\\\n//; ta' \
    | grep -oE -- '--(install|slave)[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+' \
    | awk '$2 !~ /\$/ && $4 !~ /\$/ {print $2, $4}'
}
link_alternatives() {  # reads "LINK TARGET" lines
  local link target
  while read -r link target; do
    [ -e "$PREFIX$target" ] && [ ! -e "$PREFIX$link" ] && mkdir -p "$(dirname "$PREFIX$link")" && ln -s "$PREFIX$target" "$PREFIX$link"
  done
  return 0
}
# Absolute symlinks (hdf5/serial/include -> /usr/include/hdf5/serial, ...) point into the image,
# not into the prefix: repoint them there. A dev link (libcrypto.so -> libcrypto.so.3) whose
# runtime library was left to the image (see below) is repointed at the image's copy.
fix_links() {
  local l t lib
  while IFS= read -r l; do
    t="$(readlink "$l")"
    case "$t" in /*) [ -e "$PREFIX$t" ] && ln -sfn "$PREFIX$t" "$l" ;; esac
  done < <(find "$PREFIX" -type l)
  while IFS= read -r l; do
    lib="$(/sbin/ldconfig -p | awk -v n="$(basename "$(readlink "$l")")" '$1 == n && /x86-64/ {print $NF; exit}')"
    [ -n "$lib" ] && ln -sfn "$lib" "$l"
  done < <(find "$PREFIX" -xtype l -name "*.so")
}
# A runtime library package whose every shared object the image already has (same soname) is
# not unpacked: the image's copy is at least as new, and an older one ahead of it on
# LD_LIBRARY_PATH could break the image's own programs (python's ssl module, say).
image_has_all_sonames() {  # image_has_all_sonames DIR
  local so name found=0
  [ -n "${IMAGE_LIBS:-}" ] || IMAGE_LIBS="$(/sbin/ldconfig -p)"
  while IFS= read -r so; do
    name="$(readelf -d "$so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
    [ -n "$name" ] || continue
    awk -v n="$name" '$1 == n && /x86-64/ {f=1} END {exit !f}' <<<"$IMAGE_LIBS" || return 1
    found=1
  done < <(find "$1" -type f -name "*.so*")
  [ $found -eq 1 ]
}
unpack_debs() {
  local stamp="$PREFIX/.debs" want d pkg stage alts kept=() left=()
  want="$(cd bench/gpu/debs && ls ./*.deb | sort | md5sum)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then echo "prefix up to date ($PREFIX)"; return 0; fi
  rm -rf "$PREFIX"; mkdir -p "$PREFIX"
  stage="$(mktemp -d)"; alts="$stage.alternatives"; : >"$alts"
  for d in bench/gpu/debs/*.deb; do
    pkg="$(dpkg-deb -f "$d" Package)"
    rm -rf "$stage"/*; dpkg-deb -x "$d" "$stage" || { bad "deps: dpkg-deb -x $d"; continue; }
    if [ "${MS_DEBS_ALL:-0}" != 1 ] && [[ "$pkg" == lib* && "$pkg" != *-dev ]] && image_has_all_sonames "$stage"; then
      left+=("$pkg"); continue
    fi
    cp -a "$stage"/. "$PREFIX"/; kept+=("$pkg")
    alternatives_of "$d" >>"$alts"
  done
  link_alternatives <"$alts"
  rm -rf "$stage" "$alts"
  fix_links
  echo "unpacked ${#kept[@]} packages into $PREFIX"
  [ ${#left[@]} -eq 0 ] || echo "left to the image (it has these libraries): ${left[*]}"
  echo "$want" >"$stamp"
}
# The programs, libraries and OpenMPI components unpacked must load with what the image and the
# prefix have; a missing one would otherwise show up later as a confusing link or run-time error
# (OpenMPI prints every component it cannot open). Plugin folders that their libraries look up at
# a fixed /usr path (ucx/, libibverbs/) are left out: they are never loaded from the prefix.
check_loadable() {
  local lib="$PREFIX/usr/lib/$MULTIARCH" f missing
  missing="$(find "$PREFIX/usr/bin" "$lib" "$PREFIX/lib/$MULTIARCH" "$lib/openmpi/lib" "$lib/openmpi/lib/openmpi3" \
               "$lib/hdf5/serial" -maxdepth 1 -type f \( -perm -u+x -o -name "*.so*" \) 2>/dev/null \
    | while IFS= read -r f; do
        [ "$(head -c4 "$f" | tail -c3)" = ELF ] || continue
        ldd "$f" 2>&1 | grep "not found" | sed "s|^|$(basename "$f"): |"
      done | sort -u)"
  if [ -n "$missing" ]; then echo "$missing" | head -20; return 1; fi
}
deps() {
  step "deps"
  MULTIARCH="$(${CC:-gcc} -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
  EXTRA_CMAKE=()
  if command -v mpicc >/dev/null && [ -e /usr/include/hdf5/serial/hdf5.h ] && [ -e /usr/include/yaml-cpp/yaml.h ] \
     && [ -e /usr/include/nlohmann/json.hpp ] && [ -e /usr/include/gtest/gtest.h ] && [ -e /usr/include/boost/program_options.hpp ]; then
    echo "system packages present"; ok deps; return
  fi
  if ! ls bench/gpu/debs/*.deb >/dev/null 2>&1; then
    bad "deps: neither system packages nor bench/gpu/debs/*.deb (run bench/gpu/fetch-debs.sh where a mirror is reachable, and carry bench/gpu/debs)"
    return
  fi
  unpack_debs
  local lib="$PREFIX/usr/lib/$MULTIARCH"
  export PATH="$PREFIX/usr/bin:$PATH"
  # Some packages still install into /lib (libnl-3-200); the image may not merge /lib into /usr.
  export LD_LIBRARY_PATH="$lib:$PREFIX/lib/$MULTIARCH:$lib/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # OpenMPI finds its components and help files relative to OPAL_PREFIX (built for /usr).
  export OPAL_PREFIX="$PREFIX/usr" CMAKE_PREFIX_PATH="$PREFIX/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export CPATH="$PREFIX/usr/include:$PREFIX/usr/include/$MULTIARCH:$PREFIX/usr/include/hdf5/serial${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  EXTRA_CMAKE=(-DMPI_C_COMPILER="$PREFIX/usr/bin/mpicc" -DMPIEXEC_EXECUTABLE="$PREFIX/usr/bin/mpiexec"
               -DHDF5_ROOT="$lib/hdf5/serial" -DOPENSSL_ROOT_DIR="$PREFIX/usr" -DOPENSSL_USE_STATIC_LIBS=OFF
               # FindOpenSSL does not search lib/<multiarch> under its root: name the shared ones
               -DOPENSSL_CRYPTO_LIBRARY="$lib/libcrypto.so" -DOPENSSL_SSL_LIBRARY="$lib/libssl.so")
  if ! check_loadable; then bad "deps: libraries missing from bench/gpu/debs (add their packages to fetch-debs.sh)"; return; fi
  [ -x "$PREFIX/usr/bin/mpicc" ] && [ -x "$PREFIX/usr/bin/mpiexec" ] || { bad "deps: no mpicc/mpiexec in the prefix"; return; }
  ok deps
}

# --- build ----------------------------------------------------------------------------------
configure() {
  step "configure ($BUILD)"
  local torch_dir require gen=()
  torch_dir="$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "share/cmake/Torch"))' 2>/dev/null)"
  if [ -z "$torch_dir" ]; then bad "configure: $PY cannot import torch (set MS_PYTHON)"; return 1; fi
  require=OFF; [ -n "$TORCH_CUDA" ] && require=ON
  require="${MS_REQUIRE_CUDA:-$require}"
  command -v ninja >/dev/null && gen=(-G Ninja)
  if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${gen[1]:-Unix Makefiles}$" "$BUILD/CMakeCache.txt"; then
    gen=()  # keep the generator the folder was made with
  fi
  if cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$torch_dir" \
       -DMS_WITH_CUDA=ON -DMS_REQUIRE_CUDA="$require" -DMS_BUILD_TESTS=ON -DMS_BUILD_BENCH=ON \
       "${EXTRA_CMAKE[@]}" >"$LOGS/configure.log" 2>&1; then
    grep -E "mergesweep:|Found (MPI|HDF5|OpenSSL|Boost|GTest|Torch|CUDAToolkit)" "$LOGS/configure.log"
    echo "CUDA + NCCL required: $require"
    ok configure
  else
    grep -E "CMake Error|Could NOT|FATAL" -A4 "$LOGS/configure.log" | head -40; bad "configure (log: $LOGS/configure.log)"; return 1
  fi
}
build() {  # build NAME targets...
  local name="$1"; shift
  step "$name (-j $JOBS: $*)"
  if cmake --build "$BUILD" -j "$JOBS" --target "$@" >"$LOGS/$name.log" 2>&1; then
    tail -1 "$LOGS/$name.log"; ok "$name"; BUILT=1
  else
    grep -E "error|Error" "$LOGS/$name.log" | head -30; bad "$name (log: $LOGS/$name.log)"; return 1
  fi
}
BUILT=0
configured() { [ -f "$BUILD/CMakeCache.txt" ] && [ ${#FAILED[@]} -eq 0 ]; }

# --- GPU steps --------------------------------------------------------------------------------
# A GPU that the driver lists but torch cannot see must not turn every GPU step into a skip.
DRIVER_GPUS=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU")
# MS_B_CPU=1 runs part B's benchmarks at toy sizes on the CPU (with MS_PYTHON a python that has
# transformers and lm-eval): it tries the steps' plumbing where there is no GPU. The demo stays GPU-only.
B_CPU="${MS_B_CPU:-0}"
gpu_or_skip() {  # gpu_or_skip NAME: true when a GPU step can run; says why not otherwise
  step "$1"
  if [ "$B_CPU" = 1 ] && [ "$PART" = B ] && [ "$1" != demo ] && [ "$BUILT" = 1 ]; then echo "(MS_B_CPU=1: on the CPU, toy sizes)"; return 0; fi
  if [ "$GPUS" -eq 0 ] && [ "$DRIVER_GPUS" -gt 0 ]; then bad "$1: nvidia-smi lists $DRIVER_GPUS GPU(s) but torch sees none"; return 1; fi
  if [ "$GPUS" -eq 0 ]; then skip "$1" "no GPU visible"; return 1; fi
  if [ "$BUILT" != 1 ]; then skip "$1" "no build (an earlier step failed)"; return 1; fi
}

part_a() {
  deps
  [ ${#FAILED[@]} -eq 0 ] && configure
  # Only what parts A and B run: the whole tree (every test suite) is twice the work.
  configured && build build-a mergesweep test_merge test_sweep test_device test_dist_mpi
  step "cpu tests"
  if [ "$BUILT" = 1 ]; then
    # merge kernels, twins, memory plan; the dist collectives over MPI with 2 ranks (proves the
    # unpacked OpenMPI runs). CUDA hidden, so the GPU cases skip here by design.
    CUDA_VISIBLE_DEVICES="" run_ctest cpu 0 -R "^(test_merge_[0-9]+|test_sweep|test_device|test_dist_mpi_np2)$"
  else skip "cpu tests" "no build"; fi
  if gpu_or_skip "parity"; then run_ctest parity 1 -R "^test_device$"; fi
  if gpu_or_skip "nccl"; then
    # One rank per GPU: NCCL refuses two ranks on one device.
    local nps="" np; for np in 1 2; do [ "$np" -le "$GPUS" ] && nps="$nps|$np"; done
    run_ctest nccl 1 -L nccl -R "_np(${nps#|})$"
  fi
}

# --- part B: the demo on cuda with its peak memory, then the benchmarks -------------------------
# Each benchmark prints its figures and its ratio against a baseline measured in the same run.
# A step that would start after MS_B_BUDGET seconds (default 300: part B is meant to end within
# 6 minutes) is not run and counts as failed, so the summary still prints within the call's limit.
B_OUT="$ROOT/bench/gpu/out"
time_left() {  # time_left NAME: false (and the step failed) when part B's budget is spent
  if [ $((SECONDS - T0)) -gt "${MS_B_BUDGET:-300}" ]; then bad "$1: not run, part B's budget of ${MS_B_BUDGET:-300} s is spent"; return 1; fi
}
bench() {  # bench NAME command...: runs it with its output in the log and on stdout
  local name="$1"; shift
  if "$@" 2>&1 | tee "$LOGS/$name.log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then ok "$name"; else bad "$name (log: $LOGS/$name.log)"; fi
}
# lm-eval and what it imports that the image may lack, from bench/gpu/wheels (fetch-wheels.sh),
# installed without network into bench/gpu/pylib, only the packages the image does not have.
install_wheels() {
  local target="$ROOT/bench/gpu/pylib" missing
  if [ ! -f bench/gpu/wheels/wanted.txt ]; then
    bad "wheels: no bench/gpu/wheels (run bench/gpu/fetch-wheels.sh where PyPI is reachable, and carry bench/gpu/wheels)"; return 1
  fi
  missing="$("$PY" -c 'import sys, importlib.metadata as md
for spec in open(sys.argv[1]).read().split():
    try: md.version(spec.split("==")[0])
    except md.PackageNotFoundError: print(spec)' bench/gpu/wheels/wanted.txt)"
  echo "installing into $target: ${missing:-nothing (the image has every package)}" | tr '\n' ' '; echo
  if [ -n "$missing" ] && ! "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --find-links bench/gpu/wheels \
       --target "$target" $missing >"$LOGS/wheels.log" 2>&1; then
    tail -5 "$LOGS/wheels.log"; bad "wheels (log: $LOGS/wheels.log)"; return 1
  fi
  export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
  # What the wheels do not carry: the image's own (pyarrow alone is 55 MB).
  if ! "$PY" -c 'import pyarrow, lxml, transformers, accelerate, lm_eval.evaluator, datasets' >>"$LOGS/wheels.log" 2>&1; then
    tail -3 "$LOGS/wheels.log"; bad "wheels: lm-eval does not import (log: $LOGS/wheels.log)"; return 1
  fi
  ok wheels
}
# The README's demo on the tiny testbed, cut to 2 subset sizes x 1 sample (25 configs), on cuda;
# nvidia-smi samples the GPU's memory in use meanwhile, and its peak above the idle reading is
# set against the `sweep --plan` figure for rank 0 (which counts 1.5 GB of CUDA runtime).
demo_and_memory() {
  local t="$B_OUT" idle peak plan poll
  rm -rf "$t/tb" "$t/demo.h5"; mkdir -p "$t"
  if ! "$BUILD/bin/mergesweep" testbed --preset tiny --out "$t/tb" >"$LOGS/testbed.log" 2>&1; then
    tail "$LOGS/testbed.log"; bad "demo: testbed"; return 1
  fi
  sed -e "s|\.\./cache/testbed/|$t/tb/|g" -e "s|^subsets: .*|subsets: {sizes: [2, 12], samples: 1, seed: 1234}|" \
      -e "s|^schedule: {|schedule: {device: cuda, |" jobs/demo.yaml >"$t/demo.yaml"
  grep -q "device: cuda" "$t/demo.yaml" || printf 'schedule: {device: cuda}\n' >>"$t/demo.yaml"
  "$BUILD/bin/mergesweep" sweep --plan "$t/demo.yaml" >"$LOGS/plan.log" 2>&1 || { tail "$LOGS/plan.log"; bad "demo: sweep --plan"; return 1; }
  grep -E "configs|rank 0:" "$LOGS/plan.log"
  plan="$(sed -n 's/.*rank 0: .* = \([0-9.]*\) \([KMGT]*B\).*/\1 \2/p' "$LOGS/plan.log" | head -1)"
  idle="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
  (while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; sleep 0.2; done) >"$LOGS/demo-memory.log" 2>/dev/null &
  poll=$!
  mpirun -np 1 "$BUILD/bin/mergesweep" sweep "$t/demo.yaml" --output "$t/demo.h5" >"$LOGS/demo.log" 2>&1
  local rc=$?
  kill "$poll" 2>/dev/null; wait "$poll" 2>/dev/null
  if [ $rc -ne 0 ]; then tail -20 "$LOGS/demo.log"; bad "demo (log: $LOGS/demo.log)"; return 1; fi
  tail -3 "$LOGS/demo.log"; ok demo
  peak="$(sort -n "$LOGS/demo-memory.log" | tail -1)"
  if [ -z "$peak" ] || [ -z "$plan" ]; then bad "memory: no nvidia-smi samples or no plan figure"; return 1; fi
  awk -v idle="$idle" -v peak="$peak" -v plan="$plan" 'BEGIN {
    split(plan, p, " "); scale = (p[2] == "GB") ? 1e9 : (p[2] == "MB") ? 1e6 : (p[2] == "KB") ? 1e3 : 1
    used = (peak - idle) * 1048576; planned = p[1] * scale
    printf "memory: demo sweep peak %.2f GB on the GPU (nvidia-smi, above the idle %d MiB) vs sweep --plan %.2f GB for rank 0: %.2fx the plan\n",
           used / 1e9, idle, planned / 1e9, used / planned }'
  ok memory
}
benchmarks() {
  local t="$B_OUT" model="$B_OUT/llama-1b" py="$PY -u" dev=cuda shape=8b size=() fwd=(--batch 8 --seq 1024)
  local ev=(--items 500 --fewshot-items 500) gen=(--items 128 --max-gen-toks 64)
  # No network there: transformers, datasets and lm-eval must not try the hub (a local folder and
  # local task files are all they read).
  export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  if [ "$B_CPU" = 1 ]; then
    dev=cpu shape=toy model="$B_OUT/llama-toy" size=(--hidden 128 --layers 2 --ffn 256 --heads 4 --kv-heads 2)
    fwd=(--batch 2 --seq 128) ev=(--items 40 --fewshot-items 40) gen=(--items 16 --max-gen-toks 16 --hf-batch 8)
  fi
  if gpu_or_skip "bench merge" && time_left "bench merge"; then
    bench "bench merge" "$BUILD/bin/bench_merge_resident" --synthetic $shape --checkpoints 12 --device $dev --reps 5
  fi
  if gpu_or_skip "model" && time_left "model"; then  # the random ~1B Llama the next three share
    if [ -f "$model/.complete" ]; then echo "reusing $model"; ok model
    else bench model $py bench/gpu/gpu_bench.py model --out "$model" "${size[@]}" --device $dev; fi
  fi
  if gpu_or_skip "bench forward" && time_left "bench forward"; then
    bench "bench forward" $py bench/gpu/gpu_bench.py forward --model "$model" --bench "$BUILD/bin/bench_model_forward" \
      --work "$t/forward" "${fwd[@]}" --device $dev
  fi
  if gpu_or_skip "bench eval" && time_left "bench eval"; then
    bench "bench eval" $py bench/eval_vs_lmeval.py --mergesweep "$BUILD/bin/mergesweep" --model "$model" --device $dev \
      --dtype bfloat16 --lm-eval-batch-size auto "${ev[@]}" --no-per-item --work "$t/eval"
  fi
  if gpu_or_skip "bench gen" && time_left "bench gen"; then
    bench "bench gen" $py bench/gpu/gpu_bench.py gen --model "$model" --mergesweep "$BUILD/bin/mergesweep" --work "$t/gen" \
      "${gen[@]}" --device $dev
  fi
}

part_b() {
  if [ "$PART" = B ]; then
    deps
    if [ ${#FAILED[@]} -eq 0 ]; then
      if [ -f "$BUILD/CMakeCache.txt" ]; then echo "reusing $BUILD (part A's)"; else configure; fi
    fi
  fi
  configured && build build-b mergesweep bench_merge_resident bench_model_forward
  if gpu_or_skip "wheels"; then install_wheels; fi
  if gpu_or_skip "demo"; then demo_and_memory; fi
  benchmarks
}

case "$PART" in
  A) part_a ;;
  B) part_b ;;
  all) part_a; part_b ;;
esac
end_step

echo
echo "== summary: check $PART, $((SECONDS - T0)) s"
echo "done:    ${DONE[*]:-none}"
echo "skipped: ${SKIPPED[*]:-none}"
echo "failed:  ${FAILED[*]:-none}"
[ ${#FAILED[@]} -eq 0 ]
