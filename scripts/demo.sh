#!/usr/bin/env bash
# README command 1: the whole product on the built-in default, from a bare machine:
#  1. install what is missing and build;
#  2. train the testbed family (a small Llama base + 12 fine-tunes, task and probe packs) once,
#     cached in cache/testbed (deterministic for its seed);
#  3. run the demo study with two MPI ranks: mpirun -np 2 mergesweep sweep jobs/demo.yaml
#     (TA, TIES, Model Stock, TSV-M, Iso-C, TA+SB over subset sizes 2..12, 3 subsets each, every
#     model scored on the testbed's tasks and probed at every layer) into runs/demo.h5. Rerunning
#     resumes: finished configs are skipped;
#  4. print the study's summary per method and size, and write the full report to runs/demo-report.
# MS_DEMO_RANKS overrides the rank count (default 2).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MS_ROOT"

bash scripts/install-deps.sh
ms_setup_python
ms_build "$MS_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
MS="$MS_BUILD/bin/mergesweep"

if [ ! -d cache/testbed ]; then
  echo "== training the testbed family (once; cached in cache/testbed)"
  mkdir -p cache
  "$MS" testbed --out cache/testbed --seed 0
fi

echo "== sweep: jobs/demo.yaml"
"$MS" sweep jobs/demo.yaml --plan
RANKS="${MS_DEMO_RANKS:-2}"
ms_mpi_env
mpirun --oversubscribe -np "$RANKS" "$MS" sweep jobs/demo.yaml

echo "== summary (runs/demo.h5)"
"$MS_PY" -m analysis summary runs/demo.h5
"$MS_PY" -m analysis report runs/demo.h5 --out runs/demo-report >/dev/null
echo "demo: full report in runs/demo-report/report.md; archive runs/demo.h5 (mergesweep archive info runs/demo.h5)"
