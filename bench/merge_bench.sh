#!/usr/bin/env bash
# Merge benchmark (issue: merge methods). One run, one machine, numbers side by side:
#  (a) `mergesweep merge` vs `mergekit-yaml` on the same configs (TA, TIES, Model Stock), 12
#      checkpoints of a ~250M-parameter Llama (bf16 HF folders made by `mergesweep synth`);
#  (b) effective bytes moved per second vs a memcpy of the same bytes (bench_merge_resident);
#  (c) peak RSS of each (GNU time);
#  (d) time per merge of TSV-M, Iso-C and TA+SB;
#  (e) resident merges per second of TA and TIES.
# mergekit is used when MERGEKIT (path of mergekit-yaml) is set or mergekit-yaml is on PATH.
# usage: bench/merge_bench.sh [PRESET=250m] [N_SVD=4]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PRESET="${1:-250m}"
N_SVD="${2:-4}"
B="${MS_BUILD:-$ROOT/build}/bin"
OUT="$ROOT/bench/out/merge"
FAM="$ROOT/bench/out/family-$PRESET"
MK="${MERGEKIT:-$(command -v mergekit-yaml || true)}"
export HF_HUB_OFFLINE=1  # mergekit must not reach for the hub
mkdir -p "$OUT"
[ -d "$FAM" ] || "$B/mergesweep" synth --out "$FAM" --preset "$PRESET" --checkpoints 12 --dtype bfloat16

config() {  # config METHOD N -> yaml
  local method="$1" n="$2"
  echo "merge_method: $method"
  echo "base_model: $FAM/base"
  echo "dtype: bfloat16"
  echo "models:"
  for i in $(seq 0 $((n - 1))); do
    printf "  - model: %s/ft-%02d\n" "$FAM" "$i"
    case "$method" in
      task_arithmetic) echo "    parameters: {weight: $(python3 -c "print(1/$n)")}";;
      ties) echo "    parameters: {weight: $(python3 -c "print(1/$n)"), density: 0.1}";;
    esac
  done
}

timed() {  # timed LABEL CMD... -> "LABEL seconds peak_rss_mb"
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/$label.log" || { echo "$label FAILED (see $OUT/$label.log)"; return; }
  read -r secs kb < "$OUT/time.txt"
  LAST_SECS="$secs"
  printf "  %-32s %8.2f s  peak RSS %7.0f MB\n" "$label" "$secs" "$((kb / 1024))"
}

# Regression guard: each method's speed-up over mergekit goes to $OUT/ratios-PRESET.tsv and is
# compared with the last recorded figures (bench/figures/merge-PRESET.tsv, committed with
# bench/README.md): a ratio below 80% of the recorded one is flagged, so a slowdown shows the next
# time the bench runs. To record a new baseline, copy the ratios file over the figures file.
RATIOS="$OUT/ratios-$PRESET.tsv"
FIGURES="$ROOT/bench/figures/merge-$PRESET.tsv"
printf "method\tmergesweep_s\tmergekit_s\tratio\n" > "$RATIOS"
record_ratio() {  # record_ratio METHOD MS_SECS MK_SECS
  local ratio last
  ratio=$(python3 -c "print(f'{$3 / $2:.2f}')")
  printf "%s\t%s\t%s\t%s\n" "$1" "$2" "$3" "$ratio" >> "$RATIOS"
  last=$( [ -f "$FIGURES" ] && awk -F'\t' -v m="$1" '$1 == m {print $4}' "$FIGURES" || true)
  if [ -z "$last" ]; then echo "  $1: ${ratio}x mergekit (no recorded figure)"; return; fi
  if python3 -c "import sys; sys.exit(0 if $ratio < 0.8 * $last else 1)"; then
    echo "  REGRESSION: $1 is ${ratio}x mergekit, recorded ${last}x ($FIGURES)"
  else
    echo "  $1: ${ratio}x mergekit (recorded ${last}x)"
  fi
}

echo "merge bench: preset $PRESET, $(nproc) cores, family $FAM"
echo "(a, c) streaming merge of 12 checkpoints, mergesweep vs mergekit"
for m in task_arithmetic ties model_stock; do
  config "$m" 12 > "$OUT/$m.yaml"
  rm -rf "$OUT/ms-$m" "$OUT/mk-$m"
  timed "mergesweep $m" "$B/mergesweep" merge "$OUT/$m.yaml" "$OUT/ms-$m" --quiet
  ms_secs="$LAST_SECS"
  if [ -n "$MK" ]; then
    timed "mergekit $m" "$MK" "$OUT/$m.yaml" "$OUT/mk-$m" --lazy-unpickle --no-copy-tokenizer \
      --no-write-model-card
    record_ratio "$m" "$ms_secs" "$LAST_SECS"
  fi
done
echo "(d) spectral methods, n=$N_SVD"
for m in tsv_m iso_c task_arithmetic_sb; do
  config "$m" "$N_SVD" > "$OUT/$m.yaml"
  rm -rf "$OUT/ms-$m"
  timed "mergesweep $m (n=$N_SVD)" "$B/mergesweep" merge "$OUT/$m.yaml" "$OUT/ms-$m" --quiet
done
echo "(b, e) resident path"
"$B/bench_merge_resident" "$FAM/base" "$FAM"/ft-0{0,1,2,3,4,5} --methods task_arithmetic,ties,dare_ties --n 6 --reps 3
