#!/usr/bin/env bash
# README command 1: the whole product on the built-in default, from a bare machine:
#  1. install what is missing and build the mergesweep binary (only it: the tests are not needed
#     here), printing progress while it builds;
#  2. train the testbed family (a small Llama base + 12 fine-tunes, task and probe packs) once,
#     cached in cache/testbed (deterministic for its seed);
#  3. the systematic study's demo with two MPI ranks: mpirun -np 2 mergesweep sweep jobs/demo.yaml
#     (TA, TIES, Model Stock, TSV-M, Iso-C, TA+SB over subset sizes 2..12) into runs/demo.h5;
#  4. the pipeline study's demo: jobs/pipeline-demo.yaml (an instruct-like, a math-like and a
#     code-like fine-tune merged in pairs by Linear, SLERP, TA, TIES, DARE-TIES over a grid of
#     t / lambda / density, every layer probed) into runs/pipeline-demo.h5;
#  5. print the systematic summary per method and size, then `analysis findings` for both
#     archives: each finding of the two studies, the number measured, reproduced yes/no.
# Rerunning resumes: finished configs are skipped. MS_DEMO_RANKS overrides the rank count (2).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MS_ROOT"
T0=$SECONDS
stamp() { printf '== [%dm%02ds] %s\n' $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60)) "$*"; }

stamp "checking system packages (scripts/install-deps.sh; installs only what is missing)"
bash scripts/install-deps.sh
ms_setup_python

# Ninja's [k/N] lines become a progress line every 10 s; the full log stays in the build folder.
build_binary() {
  local log="$MS_BUILD/demo-build.log" last=-10 line
  if [ ! -f "$MS_BUILD/build.ninja" ]; then
    stamp "configuring the build (cmake, RelWithDebInfo) in $MS_BUILD"
    cmake -S "$MS_ROOT" -B "$MS_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  stamp "building the mergesweep binary with $MS_JOBS jobs (a cold build takes several minutes; ccache makes rebuilds fast)"
  : >"$log"
  if ! cmake --build "$MS_BUILD" -j "$MS_JOBS" --target mergesweep 2>&1 | while IFS= read -r line; do
      printf '%s\n' "$line" >>"$log"
      if [[ $line =~ ^\[([0-9]+)/([0-9]+)\]\ (.*)$ ]] && ((SECONDS - last >= 10)); then
        last=$SECONDS
        printf '   build %s/%s: %.90s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
      fi
    done; then
    tail -40 "$log" >&2
    echo "demo: the build failed (full log: $log)" >&2
    exit 1
  fi
}
build_binary
MS="$MS_BUILD/bin/mergesweep"

# A testbed cached by an older recipe (testbed.json's recipe_version) is stale: its models and
# packs are not what this mergesweep trains, and resuming the demo archives on them would be
# refused (their checkpoints' sha256 changed). Move both aside and train afresh.
want_recipe="$("$MS" testbed --recipe-version)"
if [ -d cache/testbed ]; then
  have_recipe="$("$MS_PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("recipe_version", 1))' cache/testbed/testbed.json 2>/dev/null || echo 0)"
  if [ "$have_recipe" != "$want_recipe" ]; then
    stale="cache/stale-recipe-$have_recipe-$(date +%s)"
    stamp "cache/testbed was trained by testbed recipe $have_recipe; this mergesweep trains recipe $want_recipe: moving it and the demo archives to $stale"
    mkdir -p "$stale"
    mv cache/testbed "$stale/testbed"
    for a in runs/demo.h5 runs/pipeline-demo.h5; do
      if [ -e "$a" ]; then mv "$a" "$stale/"; fi
    done
  fi
fi
if [ ! -d cache/testbed ]; then
  stamp "training the testbed family (once; cached in cache/testbed): base, then 12 fine-tunes two at a time"
  mkdir -p cache
  "$MS" testbed --out cache/testbed --seed 0
fi

RANKS="${MS_DEMO_RANKS:-2}"
ms_mpi_env
for spec in demo pipeline-demo; do
  stamp "sweep jobs/$spec.yaml with $RANKS MPI ranks"
  "$MS" sweep "jobs/$spec.yaml" --plan
  mpirun --oversubscribe -np "$RANKS" "$MS" sweep "jobs/$spec.yaml"
done

stamp "summary of the systematic demo (runs/demo.h5)"
"$MS_PY" -m analysis summary runs/demo.h5
"$MS_PY" -m analysis report runs/demo.h5 --out runs/demo-report >/dev/null
"$MS_PY" -m analysis report runs/pipeline-demo.h5 --out runs/pipeline-demo-report >/dev/null
stamp "findings of the two studies, measured in the demo archives"
"$MS_PY" -m analysis findings runs/demo.h5 runs/pipeline-demo.h5 --out runs/findings
stamp "done. Reports: runs/demo-report/report.md, runs/pipeline-demo-report/report.md; findings as CSV in runs/findings"
