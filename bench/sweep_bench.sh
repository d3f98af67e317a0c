#!/usr/bin/env bash
# Sweep engine benchmark (issue 6). One run, one machine, on the built-in testbed family:
#  (a) per-config cost of the same plan run three ways:
#      (1) the resident sweep: `mpirun -np 1 mergesweep sweep SPEC`, wall time / configs;
#      (2) one process per step: `mergesweep merge` then `mergesweep eval` for every config
#          (baselines: eval of the base / checkpoint folder itself);
#      (3) mergekit-yaml + lm_eval (HF backend) on the first TA and TIES configs, tasks only
#          (the testbed's task packs written out as local lm-eval tasks by
#          bench/testbed_lmeval_tasks.py); compared with (1)/(2) on a tasks-only spec.
#      Spec: TA, TIES, TSV-M at n=4, 2 subsets each (+ base and the 12 single checkpoints).
#  (b) np=1 vs np=2 wall time of the same spec (the tasks-only spec of (a)), fresh archives;
#  (c) bench_sweep_coordinator at -np 2 and -np 1 (coordinator rows/s, planner configs/s).
# A final table prints every figure and the ratios.
#
# usage: bench/sweep_bench.sh
# env:   MS_BUILD  build folder with bin/mergesweep, bin/bench_sweep_coordinator (default ROOT/build;
#                  configure with -DMS_BUILD_BENCH=ON)
#        TESTBED   testbed family folder (default ROOT/cache/testbed; trained there if absent)
#        MERGEKIT  mergekit-yaml executable (default: on PATH); (3) is skipped without it
#        LMEVAL    lm_eval executable (default: on PATH); (3) is skipped without it
#        PROBE_SEEDS probe seeds per layer in the spec and in `mergesweep eval` (default 5)
#        BENCH_OUT scratch folder (default ROOT/bench/out/sweep)
#        OMP_NUM_THREADS threads of every tool outside the sweep (default 1, as threads_per_rank)
# Every timed step is a fresh process or a fresh archive; nothing is cached between runs except
# the testbed family and the lm-eval task files.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="${MS_BUILD:-$ROOT/build}/bin"
MS="$B/mergesweep"
TB="${TESTBED:-$ROOT/cache/testbed}"
MK="${MERGEKIT:-$(command -v mergekit-yaml || true)}"
LM="${LMEVAL:-$(command -v lm_eval || true)}"
SEEDS="${PROBE_SEEDS:-5}"
OUT="${BENCH_OUT:-$ROOT/bench/out/sweep}"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # reference tools stay local
# One thread everywhere, as the sweep's threads_per_rank 1: the same compute for every tool (and
# ATen's default of one thread per core is slow on a machine shared with other jobs).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN=(mpirun --oversubscribe --bind-to none)

[ -x "$MS" ] || { echo "sweep_bench: $MS missing (build the project, or set MS_BUILD)" >&2; exit 1; }
[ -d "$TB/base" ] || "$MS" testbed --out "$TB" --seed 0
rm -rf "$OUT"; mkdir -p "$OUT"
CKPTS=("$TB"/ft-*)
TASKS=("$TB"/tasks/*.h5)
PROBES=("$TB"/probes/*.h5)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
declare -A R  # figures for the final table

spec() {  # spec NAME PROBES(yes|no) -> OUT/NAME.yaml
  {
    echo "name: $1"
    echo "base: $TB/base"
    echo "checkpoints: $TB/ft-*"
    echo "subsets: {sizes: [4], samples: 2, seed: 1234}"
    echo "methods:"
    echo "  - {method: task_arithmetic, lambda: 1.0, normalize: true}"
    echo "  - {method: ties, density: 0.1, lambda: 1.0}"
    echo "  - {method: tsv_m}"
    echo "eval:"
    echo "  tasks: $TB/tasks/*.h5"
    [ "$2" = yes ] && echo "  probes: {packs: $TB/probes/*.h5, layers: all, seeds: $SEEDS}"
    echo "output: $OUT/$1.h5"
  } > "$OUT/$1.yaml"
}

ckpt_path() {  # ckpt_path NAME -> the checkpoint folder `--plan --list` names NAME (its folder name)
  local c
  for c in "${CKPTS[@]}"; do [ "$(basename "$c")" = "$1" ] && { echo "$c"; return; }; done
  echo "sweep_bench: no checkpoint named $1" >&2; exit 1
}

merge_yaml() {  # merge_yaml METHOD MEMBERS(names, comma-separated) -> yaml on stdout
  local method="$1" m
  echo "merge_method: $method"
  echo "base_model: $TB/base"
  echo "dtype: float32"
  case "$method" in
    task_arithmetic|ties) echo "parameters: {lambda: 1.0, normalize: true}";;
  esac
  echo "models:"
  for m in ${2//,/ }; do
    echo "  - model: $(ckpt_path "$m")"
    case "$method" in
      task_arithmetic) echo "    parameters: {weight: 1.0}";;
      ties) echo "    parameters: {weight: 1.0, density: 0.1}";;
    esac
  done
}

sweep_run() {  # sweep_run NP SPEC ARCHIVE -> seconds on stdout; fresh archive
  rm -f "$3"
  local t0 t1
  t0=$(now)
  "${MPIRUN[@]}" -np "$1" "$MS" sweep "$2" --output "$3" --quiet > "$3.log" 2>&1 \
    || { echo "sweep_bench: sweep failed, see $3.log" >&2; exit 1; }
  t1=$(now)
  elapsed "$t0" "$t1"
}

separate_run() {  # separate_run SPEC PROBES(yes|no) -> seconds on stdout: every config of the plan
  local spec="$1" probes="$2" dir="$OUT/sep-$(basename "$1" .yaml)" t0 t1 id kind method n members model
  local eval_args=(--tasks "${TASKS[@]}")
  [ "$probes" = yes ] && eval_args+=(--probes "${PROBES[@]}" --layers all --seeds "$SEEDS")
  rm -rf "$dir"; mkdir -p "$dir"
  "$MS" sweep "$spec" --plan --list | awk 'length($1) == 16 && $1 ~ /^[0-9a-f]+$/' > "$dir/plan.txt"
  t0=$(now)
  while read -r id kind method _ n _ members; do
    members="${members#\{}"; members="${members%\}}"
    case "$kind" in
      base) model="$TB/base";;
      single) model=$(ckpt_path "$members");;
      merge)
        merge_yaml "$method" "$members" > "$dir/$id.yaml"
        "$MS" merge "$dir/$id.yaml" "$dir/$id" --quiet
        model="$dir/$id";;
    esac
    "$MS" eval "$model" "${eval_args[@]}" --json "$dir/$id.json" --quiet > /dev/null
  done < "$dir/plan.txt"
  t1=$(now)
  elapsed "$t0" "$t1"
}

echo "sweep bench: $(nproc --all) cores, load average$(uptime | sed 's/.*load average//'), testbed $TB"
echo "  mergesweep $MS"
spec small yes
spec small-tasks no
NCONF=$("$MS" sweep "$OUT/small.yaml" --plan | awk '/^total:/ { print $2 }')
echo "  spec: TA, TIES, TSV-M at n=4, 2 subsets each + base + 12 singles = $NCONF configs;" \
  "${#TASKS[@]} task packs, ${#PROBES[@]} probe packs (all layers, $SEEDS seeds)"

echo "(a1) resident sweep, np=1"
R[res_full]=$(sweep_run 1 "$OUT/small.yaml" "$OUT/small.h5")
echo "  tasks+probes: ${R[res_full]} s for $NCONF configs"
R[res_tasks]=$(sweep_run 1 "$OUT/small-tasks.yaml" "$OUT/small-tasks.h5")
echo "  tasks only:   ${R[res_tasks]} s for $NCONF configs"
"$MS" archive export "$OUT/small-tasks.h5" --out "$OUT/small-tasks-csv" > /dev/null
# Inside the sweep, the first TA and TIES configs' own time (timings.csv total_s), for (3).
R[res_tasks_ta_ties]=$("$PY" -c '
import csv, sys
t = [float(r["total_s"]) for r in csv.DictReader(open(sys.argv[1]))
     if r["method"] in ("task_arithmetic", "ties") and r["sample"] == "0"]
print(f"{sum(t) / len(t):.3f}")' "$OUT/small-tasks-csv/timings.csv")

echo "(a2) separate processes per config: mergesweep merge, then mergesweep eval"
R[sep_full]=$(separate_run "$OUT/small.yaml" yes)
echo "  tasks+probes: ${R[sep_full]} s for $NCONF configs"
R[sep_tasks]=$(separate_run "$OUT/small-tasks.yaml" no)
echo "  tasks only:   ${R[sep_tasks]} s for $NCONF configs"

echo "(a3) mergekit-yaml + lm_eval per config (first TA and TIES configs, tasks only)"
if [ -z "$MK" ] || [ ! -x "$MK" ]; then
  echo "  SKIPPED: mergekit-yaml not found (set MERGEKIT=/path/to/mergekit-yaml)"
elif [ -z "$LM" ] || [ ! -x "$LM" ]; then
  echo "  SKIPPED: lm_eval not found (set LMEVAL=/path/to/lm_eval)"
else
  LMT="$OUT/lmeval-tasks"
  LMTASKS=$("$PY" "$ROOT/bench/testbed_lmeval_tasks.py" --tokenizer "$TB/base/tokenizer.json" --out "$LMT" "${TASKS[@]}")
  mk_total=0; lm_total=0; k=0
  while read -r id kind method _ n sample members; do
    [ "$sample" = "sample=0" ] || continue
    case "$method" in task_arithmetic|ties) ;; *) continue;; esac
    members="${members#\{}"; members="${members%\}}"
    merge_yaml "$method" "$members" > "$OUT/mk-$id.yaml"
    t0=$(now)
    "$MK" "$OUT/mk-$id.yaml" "$OUT/mk-$id" --no-write-model-card > "$OUT/mk-$id.log" 2>&1 \
      || { echo "  mergekit failed, see $OUT/mk-$id.log"; exit 1; }
    t1=$(now)
    "$LM" --model hf --model_args "pretrained=$OUT/mk-$id,dtype=float32" --device cpu --batch_size 32 \
      --include_path "$LMT" --tasks "$LMTASKS" --output_path "$OUT/lm-$id" > "$OUT/lm-$id.log" 2>&1 \
      || { echo "  lm_eval failed, see $OUT/lm-$id.log"; exit 1; }
    t2=$(now)
    # The same model scored by mergesweep eval (tasks only): the accuracies must agree.
    "$MS" eval "$OUT/mk-$id" --tasks "${TASKS[@]}" --json "$OUT/ms-$id.json" --quiet > /dev/null
    acc=$("$PY" - "$OUT/lm-$id" "$OUT/ms-$id.json" <<'EOF'
import glob, json, sys
lm = json.load(open(sorted(glob.glob(sys.argv[1] + "/**/results_*.json", recursive=True))[-1]))["results"]
ms_acc = {k: v["acc"] for k, v in json.load(open(sys.argv[2]))["results"].items()}
la = {k[len("msbench_"):]: v["acc,none"] for k, v in lm.items() if k.startswith("msbench_")}
diff = max((abs(la[k] - ms_acc[k]) for k in la if k in ms_acc), default=float("nan"))
print(f"mean acc lm-eval {sum(la.values()) / len(la):.4f}, mergesweep eval "
      f"{sum(ms_acc.values()) / max(len(ms_acc), 1):.4f}, max |diff| over {len(ms_acc)} packs {diff:.2g}")
EOF
)
    echo "  $method $members: mergekit $(elapsed "$t0" "$t1") s, lm_eval $(elapsed "$t1" "$t2") s; $acc"
    mk_total=$(awk -v a="$mk_total" -v b="$(elapsed "$t0" "$t1")" 'BEGIN { print a + b }')
    lm_total=$(awk -v a="$lm_total" -v b="$(elapsed "$t1" "$t2")" 'BEGIN { print a + b }')
    k=$((k + 1))
  done < <("$MS" sweep "$OUT/small-tasks.yaml" --plan --list | awk '$2 == "merge"')
  R[ref_mk]=$(div "$mk_total" "$k"); R[ref_lm]=$(div "$lm_total" "$k")
  R[ref]=$(awk -v a="$mk_total" -v b="$lm_total" -v k="$k" 'BEGIN { printf "%.3f", (a + b) / k }')
fi

echo "(b) np=1 vs np=2, tasks-only spec ($NCONF configs), fresh archives"
R[np1]=${R[res_tasks]}
echo "  np=1: ${R[np1]} s (the (a1) tasks-only run)"
R[np2]=$(sweep_run 2 "$OUT/small-tasks.yaml" "$OUT/np2.h5")
echo "  np=2: ${R[np2]} s"

echo "(c) bench_sweep_coordinator"
if [ -x "$B/bench_sweep_coordinator" ]; then
  for np in 2 1; do
    echo "  -np $np:"
    "${MPIRUN[@]}" -np "$np" "$B/bench_sweep_coordinator" "$OUT/coord-np$np.h5" 2>&1 | sed 's/^/    /'
  done
else
  echo "  SKIPPED: $B/bench_sweep_coordinator missing (configure with -DMS_BUILD_BENCH=ON)"
fi

pc() { div "$1" "$NCONF"; }
row() { printf "  %-58s %10s %10s\n" "$@"; }
echo
echo "== sweep bench summary ($NCONF configs per run; load average$(uptime | sed 's/.*load average//'))"
row "" "s/config" "ratio"
row "(1) resident sweep np=1, tasks+probes" "$(pc "${R[res_full]}")" "1.0"
row "(2) merge + eval processes, tasks+probes" "$(pc "${R[sep_full]}")" \
  "$(div "${R[sep_full]}" "${R[res_full]}")x"
row "(1) resident sweep np=1, tasks only" "$(pc "${R[res_tasks]}")" "1.0"
row "    (TA/TIES sample-0 configs' own total_s inside the sweep)" "${R[res_tasks_ta_ties]}" ""
row "(2) merge + eval processes, tasks only" "$(pc "${R[sep_tasks]}")" \
  "$(div "${R[sep_tasks]}" "${R[res_tasks]}")x"
if [ -n "${R[ref]:-}" ]; then
  row "(3) mergekit + lm_eval, tasks only (TA, TIES)" "${R[ref]}" \
    "$(div "${R[ref]}" "$(pc "${R[res_tasks]}")")x (goal >= 20x)"
  row "    of which mergekit-yaml / lm_eval" "${R[ref_mk]} / ${R[ref_lm]}" ""
else
  row "(3) mergekit + lm_eval" "skipped" ""
fi
row "(b) sweep np=1 wall s / np=2 wall s" "${R[np1]} / ${R[np2]}" \
  "$(div "${R[np1]}" "${R[np2]}")x (goal >= 1.8x)"
