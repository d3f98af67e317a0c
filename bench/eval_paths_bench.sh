#!/usr/bin/env bash
# Evaluation cost per sweep config, new path against the reference paths, same run: the demo's
# evaluation (every task pack of the testbed, every probe pack at every layer with 3 seeds, as
# jobs/demo.yaml) of one fine-tune, np = 1 and one thread (OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1,
# as a sweep rank runs), three ways:
#   new       mergesweep eval (prefix-tree scoring, batched probes)
#   per-item  mergesweep eval --per-item --probes-one-by-one (the reference paths of this build)
#   baseline  BASELINE=path/to/an/older/mergesweep (optional; e.g. the previous release)
# Prints eval seconds, probe seconds and probe seconds per (layer, seed) for each, and the ratios.
#   MS_BUILD=build TESTBED=cache/testbed BASELINE=... bash bench/eval_paths_bench.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MS="${MS_BUILD:-$ROOT/build}/bin/mergesweep"
TESTBED="${TESTBED:-$ROOT/cache/testbed}"
SEEDS="${PROBE_SEEDS:-3}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
if [ ! -d "$TESTBED" ]; then
  echo "training the testbed into $TESTBED (once)" >&2
  "$MS" testbed --out "$TESTBED" --seed 0 >/dev/null
fi
MODEL="$TESTBED/ft-01"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

run() {  # run LABEL BINARY [extra args...]
  local label="$1" bin="$2"; shift 2
  "$bin" eval "$MODEL" --tasks "$TESTBED"/tasks/*.h5 --probes "$TESTBED"/probes/*.h5 --layers all \
    --seeds "$SEEDS" --json "$OUT/$label.json" -q "$@" >/dev/null
}
run new "$MS"
run per-item "$MS" --per-item --probes-one-by-one
[ -n "${BASELINE:-}" ] && run baseline "$BASELINE"

python3 - "$OUT" "$SEEDS" <<'PY'
import json, os, sys
out, seeds = sys.argv[1], int(sys.argv[2])
rows = {}
for label in ("new", "per-item", "baseline"):
    p = os.path.join(out, label + ".json")
    if not os.path.exists(p):
        continue
    j = json.load(open(p))
    ev = sum(r["seconds"] for r in j["results"].values())
    pr = sum(r["seconds"] for r in j["probes"].values())
    n_probes = sum(len(r["layers"]) for r in j["probes"].values()) * seeds
    acc = {k: round(r["acc"], 6) for k, r in j["results"].items()}
    f1 = {k: [round(v["macro_f1_mean"], 4) for v in r["layers"].values()] for k, r in j["probes"].items()}
    rows[label] = (ev, pr, pr / n_probes, acc, f1)
print("| path | eval s | probe s | eval+probe s | probe s per (layer, seed) |")
print("|---|---:|---:|---:|---:|")
for label, (ev, pr, per, _, _) in rows.items():
    print(f"| {label} | {ev:.2f} | {pr:.2f} | {ev + pr:.2f} | {per * 1e3:.1f} ms |")
new = rows["new"]
for ref in ("per-item", "baseline"):
    if ref in rows:
        r = rows[ref]
        print(f"new vs {ref}: eval+probe {(r[0] + r[1]) / (new[0] + new[1]):.2f}x cheaper, eval {r[0] / new[0]:.2f}x, "
              f"probes {r[1] / new[1]:.2f}x; same acc: {r[3] == new[3]}; probe F1 means equal: {r[4] == new[4]}")
PY
