#!/usr/bin/env bash
# A stand-in for `mergesweep sweep` with the engine's signal contract, to test slurm/sweep.sbatch's
# trap and requeue logic deterministically and fast: `stub_engine.sh sweep SPEC --output FILE`
# appends the numbers 1..MS_STUB_ITEMS (20) to FILE (MS_STUB_DELAY = 0.2 s each, rank 0 only),
# resuming after the last one there;
# on SIGUSR2 or SIGTERM it finishes the item in flight and exits 75 (drained); 0 when done.
set -u
[ "${1:-}" = "--version" ] && { echo "mergesweep stub"; exit 0; }
[ "${1:-}" = "sweep" ] || { echo "stub: only 'sweep'" >&2; exit 2; }
out=""
while [ $# -gt 0 ]; do
  case "$1" in --output) out="$2"; shift ;; esac
  shift
done
[ -n "$out" ] || { echo "stub: --output required" >&2; exit 2; }
drain=0
trap 'drain=1' USR2 TERM
rank="${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-0}}}"  # mpirun inherits the batch SLURM_PROCID
while :; do
  last=$(tail -n1 "$out" 2>/dev/null || true)
  next=$(( ${last:-0} + 1 ))
  if [ "$next" -gt "${MS_STUB_ITEMS:-20}" ]; then exit 0; fi
  if [ "$drain" = 1 ]; then echo "stub rank $rank: drained before item $next" >&2; exit 75; fi
  sleep "${MS_STUB_DELAY:-0.2}"
  if [ "$rank" = 0 ]; then echo "$next" >>"$out"; else sleep 0.05; fi
done
