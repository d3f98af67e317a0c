#!/usr/bin/env bash
# README command 1: installs what is missing, builds, and runs the main job on the built-in
# default. Until the sweep engine lands, that is the most complete path the engine has:
#  1. make a synthetic model family with the engine itself (a base and 12 fine-tunes as sharded
#     HF folders; cached under cache/ and reused),
#  2. inspect every model (headers, index, config, every value finite),
#  3. merge all 12 fine-tunes with each method (mergekit-style YAML configs, written next to the
#     outputs) and inspect every merged model,
#  4. print a table: method, seconds, ‖θ_merged − θ₀‖₂.
# The family is untrained (random weights plus structured deltas), so it measures the engine,
# not accuracy; the trained testbed and the sweep turn this into the full study demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MS_ROOT"

bash scripts/install-deps.sh
ms_build "$MS_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
MS="$MS_BUILD/bin/mergesweep"

FAMILY="$MS_ROOT/cache/synthetic-tiny"
if [ ! -d "$FAMILY" ]; then
  "$MS" synth --out "$FAMILY" --preset tiny --checkpoints 12 --seed 0 --max-shard-size 64KB
fi
"$MS" inspect "$FAMILY/base" --check-values --summary
for ft in "$FAMILY"/ft-*; do
  "$MS" inspect "$ft" --summary --check-values --json >/dev/null
done
echo "demo: the base and $(ls -d "$FAMILY"/ft-* | wc -l) fine-tunes are intact"

RUN="$MS_ROOT/runs/demo-merges"
rm -rf "$RUN" && mkdir -p "$RUN"
write_config() {  # write_config METHOD EXTRA_PER_MODEL EXTRA_TOP
  local method="$1" per_model="$2" top="$3"
  {
    echo "merge_method: $method"
    echo "base_model: $FAMILY/base"
    echo "models:"
    for ft in "$FAMILY"/ft-*; do
      echo "  - model: $ft"
      [ -n "$per_model" ] && echo "    parameters: {$per_model}"
    done
    [ -n "$top" ] && echo "parameters: {$top}"
    echo "dtype: bfloat16"
  } > "$RUN/$method.yaml"
}
write_config linear "weight: 1" ""
write_config task_arithmetic "weight: 0.0833333" "lambda: 1"
write_config ties "weight: 1, density: 0.1" ""
write_config dare_ties "weight: 0.0833333, density: 0.5" "seed: 1"
write_config model_stock "" ""
write_config tsv_m "" ""
write_config iso_c "" ""
write_config task_arithmetic_sb "weight: 0.0833333" "beta: 0.2"
write_config ties_sb "weight: 1, density: 0.1" "beta: 0.2"

printf "\n%-20s %8s %16s\n" method seconds "L2 from base"
for cfg in "$RUN"/*.yaml; do
  m="$(basename "$cfg" .yaml)"
  line="$("$MS" merge "$cfg" "$RUN/$m" 2>&1 | tail -1)"
  "$MS" inspect "$RUN/$m" --summary --check-values >/dev/null
  secs="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s.*/\1/p')"
  l2="$(echo "$line" | sed -n 's/.*L2 from base \(.*\)$/\1/p')"
  printf "%-20s %8s %16s\n" "$m" "$secs" "$l2"
done
echo "demo: merged models and their configs are in $RUN (each has mergesweep_merge.json)"
