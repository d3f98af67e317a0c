#!/usr/bin/env bash
# A family of LoRA adapters held factored against the same family densified (issue 20), one run:
#  (a) the resident bytes of each (`sweep --plan`: the memory plan's resident part and the family
#      table's per-adapter bytes), which is what the ranks hold (tests/merge/test_lora_resident.cpp
#      checks the plan against ResidentModels::resident_bytes);
#  (b) the time of the same sweep (merges and model statistics, no evaluation) over each, np=1;
#  (c) that both archives hold the same numbers (archive export's tables, compared byte for byte).
# The base is `mergesweep synth` (bf16); the adapters are bench/make_lora_adapters.py's (r over
# every attention and MLP projection). The densified twins are the folded folders copied without
# the fold's marker, so the engine reads them as full checkpoints.
# usage: bench/lora_family_bench.sh [PRESET=small] [COUNT=12] [R=8]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PRESET="${1:-small}"
COUNT="${2:-12}"
R="${3:-8}"
B="${MS_BUILD:-$ROOT/build}/bin"
PY="${MS_PY:-python3}"
OUT="$ROOT/bench/out/lora-$PRESET"
rm -rf "$OUT"
mkdir -p "$OUT"
export MS_CACHE_DIR="$OUT/cache"
"$B/mergesweep" synth --out "$OUT/fam" --preset "$PRESET" --checkpoints 1 --dtype bfloat16 >/dev/null
"$PY" "$ROOT/bench/make_lora_adapters.py" "$OUT/fam/base" "$OUT/adapters" --count "$COUNT" --r "$R"

spec() {  # spec CHECKPOINTS OUT
  cat <<YAML
name: lora-bench
base: '$OUT/fam/base'
checkpoints: '$1'
subsets: {sizes: [2, 4, 8], samples: 3, seed: 7}
methods:
  - {method: task_arithmetic, lambda: [0.5, 1.0]}
  - {method: ties, density: 0.3}
  - {method: dare_ties, density: 0.5}
  - {method: model_stock}
  - {method: linear}
output: '$2'
YAML
}
spec "$OUT/adapters/lora-*" "$OUT/factored.h5" >"$OUT/factored.yaml"
"$B/mergesweep" sweep --plan "$OUT/factored.yaml" >"$OUT/factored.plan"
mkdir -p "$OUT/densified"
for d in "$MS_CACHE_DIR"/folded/lora-*; do
  name=$(basename "$d")
  mkdir "$OUT/densified/${name%-*}"
  find "$d" -maxdepth 1 -type f ! -name mergesweep_folded.json -exec cp {} "$OUT/densified/${name%-*}/" \;
done
spec "$OUT/densified/lora-*" "$OUT/densified.h5" >"$OUT/densified.yaml"
"$B/mergesweep" sweep --plan "$OUT/densified.yaml" >"$OUT/densified.plan"

for kind in densified factored; do
  echo "== $kind"
  grep -E "^  (base|1 ) |rank 0:" "$OUT/$kind.plan"
  /usr/bin/time -f "$kind sweep: %e s wall, peak RSS %M KB" "$B/mergesweep" sweep --quiet "$OUT/$kind.yaml" 2>&1 | tail -1
done
for kind in densified factored; do
  "$B/mergesweep" archive export "$OUT/$kind.h5" --out "$OUT/$kind-export" >/dev/null
done
for kind in densified factored; do
  "$PY" -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(sys.argv[2], 'merge time, sum over', len(r), 'configs:', round(sum(float(x['merge_s']) for x in r), 2), 's')" \
    "$OUT/$kind-export/timings.csv" "$kind"
done
for t in model_stats fingerprints results; do
  f="$OUT/densified-export/$t.csv"
  [ -f "$f" ] || continue
  if cmp -s <(sort "$f") <(sort "$OUT/factored-export/$t.csv"); then echo "$t: identical"; else echo "$t: DIFFER"; fi
done
