#!/usr/bin/env bash
# README command 1: installs what is missing, builds, and runs the main job on the built-in
# default. Today that is the most complete path the engine has: it makes a synthetic model family
# (a base and fine-tunes, sharded HF folders) with the engine itself and inspects it, checking
# every header, index and value. The sweep engine turns this into the full merging-study demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MS_ROOT"

bash scripts/install-deps.sh
ms_build "$MS_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
MS="$MS_BUILD/bin/mergesweep"

FAMILY="$MS_ROOT/cache/synthetic-tiny"   # built once, reused by later runs
if [ ! -d "$FAMILY" ]; then
  "$MS" synth --out "$FAMILY" --preset tiny --checkpoints 12 --seed 0 --max-shard-size 64KB
fi
"$MS" inspect "$FAMILY/base" --check-values
for ft in "$FAMILY"/ft-*; do
  "$MS" inspect "$ft" --summary --check-values --json >/dev/null
done
echo "demo: inspected $FAMILY/base and $(ls -d "$FAMILY"/ft-* | wc -l) fine-tunes: all intact"
