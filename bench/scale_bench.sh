#!/usr/bin/env bash
# Study scale on this machine (issue 11, "Measured here"): a synthetic Llama family of about 250M
# parameters in bfloat16 with 12 fine-tunes, merged by the sweep (task arithmetic and TIES at n=4,
# model statistics, no evaluation) at np=1, np=2 with groups of 1, and np=2 with one group of 2.
# It prints, each measured in this run:
#   (a) peak RSS per rank (GNU time, in GB of 1e9 bytes) against `sweep --plan`'s per-rank model (resident + workspace
#       + merged model + runtime; no activations without eval);
#   (b) the allgather's bytes per config received by rank 0 (the sweep's own count) against
#       B*(g-1)/g;
#   (c) merges/s with checkpoints resident in their file dtype (the sweep's layout) against the
#       float32 task-vector layout before it (bench_merge_resident, same run, checked bitwise);
#   (d) whether the three sweeps' archives hold bitwise the same values (every exported table
#       but the timings).
# usage: MS_BUILD=build [BENCH_OUT=bench/out/scale] [PRESET=250m] bash bench/scale_bench.sh
# Needs about 7 GB of disk for the family and about 2 x (13 x B + 1 GB) of memory at np=2, g=1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
ms_mpi_env
MS="$MS_BUILD/bin/mergesweep"
OUT="${BENCH_OUT:-$ROOT/bench/out/scale}"
PRESET="${PRESET:-250m}"
mkdir -p "$OUT"
[ -x "$MS" ] || { echo "scale_bench: $MS not built (ms_build $MS_BUILD)" >&2; exit 2; }

FAM="$OUT/family-$PRESET"
if [ ! -d "$FAM" ]; then
  echo "== synth --preset $PRESET --checkpoints 12 --dtype bfloat16 -> $FAM"
  "$MS" synth --out "$FAM" --preset "$PRESET" --checkpoints 12 --dtype bfloat16 --seed 1
fi
cat >"$OUT/scale.yaml" <<YAML
name: scale-bench
base: $FAM/base
checkpoints: $FAM/ft-*
subsets: {sizes: [4], samples: 2, seed: 5}
methods:
  - {method: task_arithmetic, lambda: [1.0]}
  - {method: ties, density: 0.5}
schedule: {threads_per_rank: 1}
output: scale.h5  # each run names its own (--output)
YAML

# The methods that need whole-tensor statistics (Model Stock's Gram matrix, TIES+SB's trim rules,
# TSV-M's and Iso-C's SVDs): one subset each at n=4, np=1, against the same per-tensor plan.
cat >"$OUT/whole.yaml" <<YAML
name: scale-bench-whole-tensor-methods
base: $FAM/base
checkpoints: $FAM/ft-*
subsets: {sizes: [4], samples: 1, seed: 5}
methods:
  - {method: model_stock}
  - {method: ties_sb, density: 0.5, beta: 0.2}
  - {method: tsv_m}
  - {method: iso_c}
schedule: {threads_per_rank: 1}
output: whole.h5  # each run names its own (--output)
YAML

run_sweep() {  # run_sweep LABEL NP G [SPEC] -> OUT/LABEL.h5, OUT/LABEL.log, OUT/LABEL.rss (one line per rank, in rank order)
  local label=$1 np=$2 g=$3 spec=${4:-$OUT/scale.yaml}
  rm -f "$OUT/$label.h5" "$OUT/$label".rss*
  local t0=$SECONDS
  # Each rank's peak goes to LABEL.rss.RANK (Open MPI names the rank in the environment).
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$np" \
    bash -c 'exec /usr/bin/time -o "$0.$OMPI_COMM_WORLD_RANK" -f "%M" "$@"' "$OUT/$label.rss" \
    "$MS" sweep "$spec" -g "$g" \
    --output "$OUT/$label.h5" >"$OUT/$label.log" 2>&1 || { echo "  $label failed:"; tail -5 "$OUT/$label.log"; exit 1; }
  for ((r = 0; r < np; ++r)); do cat "$OUT/$label.rss.$r"; done >"$OUT/$label.rss" && rm -f "$OUT/$label".rss.*
  local plan
  plan=$("$MS" sweep "$spec" -g "$g" --plan 2>/dev/null | sed -n '/^memory per rank/,/^  fits\|^  does not fit/p')
  # GNU time's %M is in KiB; the plan prints GB (1e9 bytes). Rank r of the job is rank r % g of its group.
  local per_rank
  per_rank=$(awk -v g="$g" 'NR==FNR { if ($1 == "rank" && $NF == "GB") plan[$2 + 0] = $(NF - 1); next }
    { r = (FNR - 1) % g; gb = $1 * 1024 / 1e9; printf "%.2f GB (plan %.2f, %+.0f%%)  ", gb, plan[r], 100 * (gb / plan[r] - 1) }' \
    <(echo "$plan" | sed 's/://') "$OUT/$label.rss")
  echo "  $label: $((SECONDS - t0)) s wall, peak RSS per rank: $per_rank"
  echo "$plan" | sed 's/^/    plan: /'
  grep "traffic:" "$OUT/$label.log" | sed 's/^/    /' || true
}

echo "== sweeps (TA + TIES at n=4, 2 subsets each, plus the 13 baselines; no eval)"
run_sweep np1 1 1
run_sweep np2-g1 2 1
run_sweep np2-g2 2 2
echo "== whole-tensor methods (Model Stock, TIES+SB, TSV-M, Iso-C at n=4, one subset each, plus the baselines), np=1"
run_sweep np1-whole 1 1 "$OUT/whole.yaml"

echo "== bitwise: every exported table but the timings"
for label in np1 np2-g1 np2-g2; do
  rm -rf "$OUT/export-$label"
  "$MS" archive export "$OUT/$label.h5" --out "$OUT/export-$label" >/dev/null
done
same=1
for f in configs.csv results.csv model_stats.csv probes.csv; do
  for label in np2-g1 np2-g2; do
    # Row order follows commit order (which group finished first): compare sorted rows.
    if ! cmp -s <(sort "$OUT/export-np1/$f") <(sort "$OUT/export-$label/$f"); then
      echo "  $f differs between np1 and $label"; same=0
    fi
  done
done
[ $same = 1 ] && echo "  np1, np2-g1 and np2-g2: identical configs, results and model_stats (l2 and cosines to the last bit)"

if [ -x "$MS_BUILD/bin/bench_merge_resident" ]; then
  # Four checkpoints: both layouts and a copy of the bytes one merge touches are held at once; twelve float32 task vectors of this
  # family alone (13 GB) would not fit beside the bf16 ones on a 24 GB machine.
  echo "== merges/s: file-dtype residents (the sweep's) vs float32 task vectors (before), 4 checkpoints, n=4, one thread"
  OMP_NUM_THREADS=1 "$MS_BUILD/bin/bench_merge_resident" "$FAM/base" "$FAM"/ft-0[0-3] --n 4 --reps 2 \
    --methods task_arithmetic,ties
else
  echo "== merges/s: skipped (configure with -DMS_BUILD_BENCH=ON for bench_merge_resident)"
fi
