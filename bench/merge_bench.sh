#!/usr/bin/env bash
# Merge benchmark (issue: merge methods). One run, one machine, numbers side by side:
#  (a) `mergesweep merge` vs `mergekit-yaml` on the same configs, every method both have (mergekit
#      0.1.5's 20; METHODS="..." runs some), 12 checkpoints (fewer where a method takes fewer) of a
#      ~250M-parameter Llama (bf16 HF folders made by `mergesweep synth`); the floor: a cold
#      process (cat) reading the same files from the page cache, against which TA is rated;
#  (b) effective bytes moved per second vs a memcpy of the same bytes (bench_merge_resident);
#  (c) peak RSS of each (GNU time);
#  (d) time per merge of TSV-M, Iso-C and TA+SB;
#  (e) resident merges per second of TA and TIES.
# mergekit is used when MERGEKIT (path of mergekit-yaml) is set or mergekit-yaml is on PATH.
# usage: [METHODS="ties karcher"] [KEEP_OUTPUTS=1] bench/merge_bench.sh [PRESET=250m] [N_SVD=4]
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

config() {  # config METHOD N -> yaml (mergekit's language, which both tools read)
  local method="$1" n="$2" w
  w=$(python3 -c "print(1/$n)")
  echo "merge_method: $method"
  # mergekit's linear, nuslerp, multislerp and karcher run without a base here (the models alone);
  # passthrough takes one model; the others anchor on the base.
  case "$method" in linear|karcher|passthrough) ;; *) echo "base_model: $FAM/base";; esac
  echo "dtype: bfloat16"
  case "$method" in
    slerp) echo "parameters: {t: 0.3}";;
    nearswap) echo "parameters: {t: 0.002}";;
    sce) echo "parameters: {select_topk: 0.5}";;
    passthrough) echo "parameters: {scale: 0.9}";;
  esac
  echo "models:"
  for i in $(seq 0 $((n - 1))); do
    printf "  - model: %s/ft-%02d\n" "$FAM" "$i"
    case "$method" in
      linear|task_arithmetic|nuslerp|multislerp) echo "    parameters: {weight: $w}";;
      ties) echo "    parameters: {weight: $w, density: 0.1}";;
      dare_ties|dare_linear) echo "    parameters: {weight: $w, density: 0.3}";;
      breadcrumbs|breadcrumbs_ties) echo "    parameters: {weight: $w, density: 0.8, gamma: 0.05}";;
      della|della_linear) echo "    parameters: {weight: $w, density: 0.5, epsilon: 0.1}";;
    esac
  done
}
members_of() { case "$1" in slerp|nearswap|arcee_fusion|passthrough) echo 1;; nuslerp) echo 2;; *) echo 12;; esac; }
timed() {  # timed LABEL CMD... -> "LABEL seconds peak_rss_mb"
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/$label.log" || { echo "$label FAILED (see $OUT/$label.log)"; return; }
  read -r secs kb < "$OUT/time.txt"
  LAST_SECS="$secs"
  LAST_KB="$kb"
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
FILES=("$FAM"/base/*.safetensors "$FAM"/ft-*/*.safetensors)
cat "${FILES[@]}" > /dev/null  # into the page cache: every run below reads from memory
echo "(floor) a cold process reading the base and the 12 checkpoints from the page cache"
timed "cat (page-cache read)" cat "${FILES[@]}"
READ_SECS="$LAST_SECS"
timed "mergesweep --version (process floor)" "$B/mergesweep" --version
FLOOR_KB="$LAST_KB"
# The streaming merge's memory goal: the output plus n tensor-sized float32 buffers (beside the
# process's own floor: libtorch loaded, measured above).
read -r OUT_BYTES BIG_BYTES < <(python3 - "$FAM/base" <<'PY'
import json, struct, sys, glob
total, big = 0, 0
for f in glob.glob(sys.argv[1] + "/*.safetensors"):
    with open(f, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        for k, v in json.loads(fh.read(n)).items():
            if k == "__metadata__": continue
            e = 1
            for d in v["shape"]: e *= d
            total += v["data_offsets"][1] - v["data_offsets"][0]
            big = max(big, 4 * e)
print(total, big)
PY
)
echo "(a, c) streaming merge of 12 checkpoints (SLERP: 1), mergesweep vs mergekit"
for m in ${METHODS:-linear slerp task_arithmetic ties dare_ties dare_linear model_stock nuslerp multislerp karcher \
    breadcrumbs breadcrumbs_ties della della_linear sce nearswap arcee_fusion ram ramplus_tl passthrough}; do
  n=$(members_of "$m")
  config "$m" "$n" > "$OUT/$m.yaml"
  rm -rf "$OUT/ms-$m" "$OUT/mk-$m"
  timed "mergesweep $m" "$B/mergesweep" merge "$OUT/$m.yaml" "$OUT/ms-$m" --quiet
  ms_secs="$LAST_SECS"
  bound_kb=$(( FLOOR_KB + (OUT_BYTES + n * BIG_BYTES) / 1024 ))
  verdict=$([ "$LAST_KB" -le "$bound_kb" ] && echo within || echo ABOVE)
  printf "    peak RSS %d MB, %s the goal %d MB (process floor + output + %d x largest tensor in float32)\n" \
    "$((LAST_KB / 1024))" "$verdict" "$((bound_kb / 1024))" "$n"
  [ "$m" = task_arithmetic ] && python3 -c "print(f'    TA takes {$ms_secs / max($READ_SECS, 0.01):.2f}x the page-cache read (goal: within 2x)')"
  if [ -n "$MK" ]; then
    timed "mergekit $m" "$MK" "$OUT/$m.yaml" "$OUT/mk-$m" --lazy-unpickle --no-copy-tokenizer \
      --no-write-model-card
    record_ratio "$m" "$ms_secs" "$LAST_SECS"
  fi
  # Each pair of outputs is a model's size: 20 methods would hold 40 of them (KEEP_OUTPUTS=1 keeps them).
  [ "${KEEP_OUTPUTS:-0}" = 1 ] || rm -rf "$OUT/ms-$m" "$OUT/mk-$m"
done
echo "(d) spectral methods, n=$N_SVD"
for m in tsv_m iso_c task_arithmetic_sb; do
  config "$m" "$N_SVD" > "$OUT/$m.yaml"
  rm -rf "$OUT/ms-$m"
  timed "mergesweep $m (n=$N_SVD)" "$B/mergesweep" merge "$OUT/$m.yaml" "$OUT/ms-$m" --quiet
done
echo "(b, e) resident path"
"$B/bench_merge_resident" "$FAM/base" "$FAM"/ft-0{0,1,2,3,4,5} --methods task_arithmetic,ties,dare_ties --n 6 --reps 3
