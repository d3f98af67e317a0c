#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for RUNS executions
# (default 1,000,000), seeded with the committed fixtures and bad inputs. Crashes are written to
# bench/out/fuzz/<target>/; turn each into a case in tests/bad-inputs/.
# usage: bench/run_fuzz.sh [RUNS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${1:-1000000}"
OUT="$ROOT/bench/out/fuzz"
mkdir -p "$OUT/bin"
CXX="${CXX_FUZZ:-clang++}"
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$ROOT/include")
COMMON=("$ROOT/src/core/error.cpp" "$ROOT/src/io/dtype.cpp" "$ROOT/src/io/safetensors_header.cpp")

build() {  # build NAME SOURCES...
  local name="$1"; shift
  "$CXX" "${FLAGS[@]}" "$@" "${COMMON[@]}" -o "$OUT/bin/$name"
}
build fuzz_safetensors_header "$ROOT/bench/fuzz/fuzz_safetensors_header.cpp"
build fuzz_config_json "$ROOT/bench/fuzz/fuzz_config_json.cpp" "$ROOT/src/io/hf_config.cpp" "$ROOT/src/io/fs_util.cpp"

seed() {  # seed DIR FILES...
  local dir="$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/$(echo "$f" | md5sum | cut -c1-16)"; done
}
seed "$OUT/corpus_header" "$ROOT"/tests/fixtures/safetensors/*.safetensors "$ROOT"/tests/bad-inputs/inputs/*.safetensors
seed "$OUT/corpus_config" $(find "$ROOT/tests/bad-inputs/inputs" -name config.json)

run() {  # run TARGET CORPUS
  local target="$1" corpus="$2"
  mkdir -p "$OUT/$target"
  echo "== $target: $RUNS runs"
  (cd "$OUT/$target" && "$OUT/bin/$target" -runs="$RUNS" -max_len=4096 -print_final_stats=1 "$corpus" 2>&1 \
     | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==ERROR|SUMMARY)" || true)
  if ls "$OUT/$target"/crash-* >/dev/null 2>&1; then
    echo "$target: CRASH inputs in $OUT/$target" >&2
    return 1
  fi
}
status=0
run fuzz_safetensors_header "$OUT/corpus_header" || status=1
run fuzz_config_json "$OUT/corpus_config" || status=1
exit $status
