#!/usr/bin/env bash
# Writes a small study for the SLURM tests: the testbed's tiny family (seconds to train) and a
# spec merging its 12 fine-tunes with task arithmetic (two lambdas) and TIES, scored on its task
# packs and probed at every layer.
#   tests/slurm/make_study.sh MERGESWEEP DIR [SAMPLES [SIZES [NAME]]]  -> DIR/tb, DIR/NAME.yaml
# Plan: 13 baselines + 3 method points x SIZES (default "2, 4, 6") x SAMPLES (default 6) subsets.
set -euo pipefail
MS="$1"; DIR="$2"; SAMPLES="${3:-6}"; SIZES="${4:-2, 4, 6}"; NAME="${5:-study}"
mkdir -p "$DIR"
[ -d "$DIR/tb" ] || "$MS" testbed --preset tiny --out "$DIR/tb" --quiet
cat >"$DIR/$NAME.yaml" <<YAML
name: slurm-test
base: tb/base
checkpoints: tb/ft-*
subsets: {sizes: [$SIZES], samples: $SAMPLES, seed: 7}
methods:
  - {method: task_arithmetic, lambda: [0.5, 1.0]}
  - {method: ties, density: 0.5}
eval:
  tasks: [tb/tasks/*.h5]
  probes: {packs: [tb/probes/*.h5], layers: all, seeds: 1}
output: $NAME.h5
YAML
