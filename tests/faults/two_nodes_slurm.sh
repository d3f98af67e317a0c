#!/usr/bin/env bash
# A two-node SLURM on this machine: `sbatch -N 2` of slurm/sweep.sbatch across two nodes, each a
# network namespace with its own address, hostname, slurmd and private /tmp, over TCP only; then
# the loss of node B mid-sweep (SIGKILL of everything in it: slurmd, slurmstepd, ranks), SLURM's
# requeue once B is back, and the study complete with every config once and a single node's values.
#
# Nodes as in two_nodes_tcp.sh: namespaces joined by a veth pair made inside them (10.231.0.1 and
# 10.231.0.2; the host's network is not touched). slurmctld and one slurmd run in node A, the
# second slurmd in node B (`slurmd -N`), each under `nsenter --net` (not `ip netns exec`, whose
# fresh /sys lacks the cgroup mounts slurmd needs) plus its own UTS and mount namespace; tmpfs
# mounts give each node its own /tmp and /dev/shm (Slurm's PMIx plugin makes per-step folders in
# /tmp whose names would clash on a shared /tmp). The shared "file system" is a folder under
# /var/tmp. munged runs on the host: its socket is a file, reachable from both namespaces.
#
# usage: tests/faults/two_nodes_slurm.sh MERGESWEEP
# Exit 0 pass, 1 fail, 77 skipped (not root, or SLURM/munge/mpirun not installed).
# MS_FAULTS_KEEP=1 keeps the folder (logs).
set -euo pipefail

MS="${1:?usage: two_nodes_slurm.sh MERGESWEEP}"
MS="$(cd "$(dirname "$MS")" && pwd)/$(basename "$MS")"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
T0=$SECONDS

say() { echo "two-nodes-slurm [$((SECONDS - T0))s]: $*" >&2; }
die() { echo "two-nodes-slurm: FAIL: $*" >&2; exit 1; }
skip() { echo "two-nodes-slurm: SKIP: $*" >&2; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, SLURM daemons)"
for tool in ip nsenter unshare mpirun slurmctld slurmd munged sbatch scontrol sinfo runuser; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done
[ -x "$MS" ] || die "no mergesweep at $MS"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

NS_A="ms2s-$$-a"
NS_B="ms2s-$$-b"
ADDR_A=10.231.0.1
ADDR_B=10.231.0.2
NET=10.231.0.0/24
W="$(mktemp -d /var/tmp/ms-two-nodes-slurm.XXXXXX)"
chmod 755 "$W"
MUNGED_PID=""

# Every exit path: everything in the two namespaces (slurmctld, slurmd, steps, ranks) by pid,
# munged by pid, then the namespaces (and with them the veth pair); the folder unless failed.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for ns in "$NS_A" "$NS_B"; do
    if ip netns list | grep -qw "$ns"; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
      for _ in $(seq 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
      ip netns del "$ns" 2>/dev/null || echo "two-nodes-slurm: warning: could not delete namespace $ns" >&2
    fi
  done
  [ -n "$MUNGED_PID" ] && kill "$MUNGED_PID" 2>/dev/null || true
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    for f in "$W"/log/*.log "$W"/*.out "$W"/*.log; do [ -f "$f" ] && { echo "== $f (last lines)" >&2; tail -n 25 "$f" >&2; }; done
  fi
  if [ "${MS_FAULTS_KEEP:-0}" = 1 ] || { [ $rc -ne 0 ] && [ $rc -ne 77 ]; }; then
    echo "two-nodes-slurm: kept $W" >&2
  else
    rm -rf "$W"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the two nodes --------------------------------------------------------------------------
ip netns add "$NS_A" || die "ip netns add failed although running as root"
ip netns add "$NS_B" || die "ip netns add $NS_B failed"
ip link add veth-a netns "$NS_A" type veth peer name veth-b netns "$NS_B" || die "cannot create a veth pair"
ip -n "$NS_A" addr add "$ADDR_A/24" dev veth-a
ip -n "$NS_B" addr add "$ADDR_B/24" dev veth-b
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set veth-a up
ip -n "$NS_B" link set veth-b up
INODE_A=$(stat -L -c %i "/run/netns/$NS_A")
INODE_B=$(stat -L -c %i "/run/netns/$NS_B")

# on_node a|b COMMAND...: runs COMMAND on that node: its network, its hostname, its own /tmp and
# /dev/shm (per-node scratch; PMIx names its files by job and step, which both nodes share).
on_node() {
  local n=$1; shift
  local ns=$NS_A
  [ "$n" = b ] && ns=$NS_B
  nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation private \
    sh -c 'hostname "ms-node-$1"; for d in /tmp /dev/shm; do mount -t tmpfs -o size=256m,mode=1777 tmpfs $d; done
           shift; exec "$@"' sh "$n" "$@"
}
# Clients (sbatch, scontrol, sinfo) run in node A, where slurmctld listens.
client() { nsenter --net="/run/netns/$NS_A" "$@"; }

# --- munged, slurm.conf, daemons ---------------------------------------------------------------
mkdir -p "$W"/{munge,state,spool/ms-node-a,spool/ms-node-b,log,work}
chown munge:munge "$W/munge"
chmod 755 "$W/munge"
dd if=/dev/urandom of="$W/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$W/munge/munge.key"
chmod 400 "$W/munge/munge.key"
SOCK="$W/munge/munge.socket"
runuser -u munge -- munged --key-file="$W/munge/munge.key" --socket="$SOCK" \
  --pid-file="$W/munge/munged.pid" --log-file="$W/munge/munged.log" \
  --seed-file="$W/munge/munged.seed" --num-threads=2
for _ in $(seq 50); do [ -s "$W/munge/munged.pid" ] && [ -S "$SOCK" ] && break; sleep 0.1; done
[ -s "$W/munge/munged.pid" ] || die "munged did not start"
MUNGED_PID=$(cat "$W/munge/munged.pid")

export SLURM_CONF="$W/slurm.conf"
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 4 ))
# Ports are those of the namespaces, not of the host. SlurmdTimeout: a node silent for 10 s is
# DOWN, and its jobs are requeued (JobRequeue, --requeue in sweep.sbatch).
cat >"$SLURM_CONF" <<EOF
ClusterName=ms2s
SlurmctldHost=ms-node-a($ADDR_A)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool/%n
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd-%n.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=300
InactiveLimit=0
Waittime=0
SlurmdTimeout=10
MessageTimeout=5
SchedulerParameters=defer_batch
NodeName=ms-node-a NodeAddr=$ADDR_A CPUs=2 RealMemory=$MEM_MB State=UNKNOWN
NodeName=ms-node-b NodeAddr=$ADDR_B CPUs=2 RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ms-node-a,ms-node-b Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
on_node a slurmctld -f "$SLURM_CONF" -i
for _ in $(seq 100); do [ -s "$W/slurmctld.pid" ] && break; sleep 0.1; done
[ -s "$W/slurmctld.pid" ] || die "slurmctld did not start"
start_slurmd() { on_node "$1" slurmd -f "$SLURM_CONF" -N "ms-node-$1"; }
start_slurmd a
start_slurmd b
wait_idle() {  # both nodes idle
  local st=""
  for _ in $(seq 300); do
    st="$(client sinfo -h -N -o '%N=%T' 2>/dev/null | sort | tr '\n' ' ' || true)"
    [ "$st" = "ms-node-a=idle ms-node-b=idle " ] && return 0
    sleep 0.2
  done
  die "nodes not idle: $st"
}
wait_idle
say "slurmctld, slurmd on ms-node-a ($ADDR_A) and ms-node-b ($ADDR_B): both idle"

out="$(client srun -N2 -n2 sh -c 'echo $SLURM_PROCID $(hostname) $(readlink /proc/self/ns/net)' | sort -n | tr '\n' ';')"
[ "$out" = "0 ms-node-a net:[$INODE_A];1 ms-node-b net:[$INODE_B];" ] || die "srun -N2 ran: $out"
say "smoke: srun -N2 runs one task in each node"

# --- the study, and its reference on one node (the host, shared memory) ------------------------
cd "$W/work"
"$MS" testbed --preset tiny --quiet --out tb >testbed.log 2>&1 || die "testbed failed"
cat >spec.yaml <<EOF
name: two-nodes-slurm
base: tb/base
checkpoints: tb/ft-*
subsets: {sizes: [2, 3, 5], samples: 4, seed: 5}
methods:
  - {method: task_arithmetic, lambda: [0.5, 1.0]}
  - {method: ties, density: 0.3}
eval:
  tasks: tb/tasks/*.h5
  probes: {packs: tb/probes/*.h5, layers: [1], seeds: 1}
  limit: 8
output: ref.h5
schedule: {batch_seconds: 0, peer_timeout: 30}
EOF
PLANNED="$("$MS" sweep spec.yaml --plan 2>&1 | sed -n 's/^total: \([0-9]*\) configs$/\1/p')"
[ -n "$PLANNED" ] && [ "$PLANNED" -gt 0 ] || die "could not read the planned config count from sweep --plan"
mpirun -np 2 --bind-to none --oversubscribe "$MS" sweep --quiet spec.yaml >ref.log 2>&1 || die "single-node reference run failed"

export_sorted() {  # export_sorted ARCHIVE DIR: the tables that hold numbers, rows sorted
  "$MS" archive export "$1" --out "$2.raw" >/dev/null || die "archive export $1 failed"
  mkdir -p "$2"
  for t in configs results model_stats probes items item_docs generations; do
    LC_ALL=C sort "$2.raw/$t.csv" >"$2/$t.csv"
  done
}
same_numbers() {  # same_numbers DIR_REF DIR WHAT
  local t
  for t in configs results model_stats probes items item_docs generations; do
    cmp -s "$1/$t.csv" "$2/$t.csv" || die "$3: $t differs from the reference: $(diff "$1/$t.csv" "$2/$t.csv" | head -n 6)"
  done
  [ -z "$(cut -d, -f1 "$2/configs.csv" | uniq -d)" ] || die "$3: a config committed twice"
}
committed_configs() {
  local n
  n="$("$MS" archive info "$1" 2>/dev/null | awk '$1 == "configs" && NF == 2 {print $2}')"
  echo "${n:-0}"
}
export_sorted ref.h5 ref
[ "$(($(wc -l <ref/configs.csv) - 1))" -eq "$PLANNED" ] || die "reference does not hold the $PLANNED planned configs"
say "reference: $PLANNED configs on one node"

# --- jobs ---------------------------------------------------------------------------------------
# The nodes' /tmp is their own: the engine the ranks run is a copy of MS on the shared folder.
mkdir -p "$W/bin"
cp "$MS" "$W/bin/mergesweep"
# Each rank records where it runs, then becomes the engine (MS_BIN of sweep.sbatch).
cat >rank.sh <<EOF
#!/bin/sh
echo "\$SLURM_PROCID \$(hostname) \$(readlink /proc/self/ns/net)" >>"\$MS_RANKS_LOG"
exec "$W/bin/mergesweep" "\$@"
EOF
chmod +x rank.sh
# TCP only between the ranks (srun starts them: no orted, PMIx over Slurm's own TCP).
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=tcp,self OMPI_MCA_coll=^sm OMPI_MCA_btl_tcp_if_include=$NET
# sbatch_sweep NAME ARCHIVE [VAR=VALUE...]: 2 nodes x 2 tasks, cyclic (ranks 0, 2 on A; 1, 3 on
# B), groups of 2 (each spans both nodes). Prints the job id.
sbatch_sweep() {
  local name=$1 archive=$2; shift 2
  local extra=""
  for kv in "$@"; do extra+=",$kv"; done
  client sbatch --parsable -N 2 --ntasks-per-node=2 --distribution=cyclic -o "$W/work/$name-%j.out" \
    "--export=ALL,MS_BIN=$W/work/rank.sh,MS_GROUP_SIZE=2,MS_RANKS_LOG=$W/work/$name-ranks.log$extra" \
    "$ROOT/slurm/sweep.sbatch" "$W/work/spec.yaml" "$W/work/$archive"
}
# The final state of a job once it left the queue; releases the 2-minute hold slurmctld puts on
# a requeued job once both nodes are idle (as run_slurm_test.sh does).
wait_job() {  # wait_job ID TIMEOUT_S
  local id=$1 limit=$2 t=0 st info
  while :; do
    info="$(client scontrol show job "$id" 2>/dev/null || true)"
    st="$(echo "$info" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')"
    if [ "$st" = PENDING ] && echo "$info" | grep -q 'Reason=BeginTime' \
       && [ "$(client sinfo -h -N -o '%T' | sort -u)" = idle ]; then
      sleep 1
      client scontrol update JobId="$id" StartTime=now >/dev/null 2>&1 || true
    fi
    case "$st" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) echo "$st"; return 0 ;; esac
    ((t >= limit)) && { echo "TIMEOUT_WAITING($st)"; return 0; }
    sleep 1; t=$((t + 1))
  done
}
job_field() { client scontrol show job "$1" | sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" | head -n1; }
check_placement() {  # check_placement RANKS_LOG: every run's ranks 0, 2 in A and 1, 3 in B
  local bad
  bad="$(awk -v a="net:[$INODE_A]" -v b="net:[$INODE_B]" \
    '!(($1 % 2 == 0 && $2 == "ms-node-a" && $3 == a) || ($1 % 2 == 1 && $2 == "ms-node-b" && $3 == b))' "$1")"
  [ -z "$bad" ] || die "ranks not where they should be: $bad"
  [ "$(awk '{print $1}' "$1" | sort -u | tr '\n' ' ')" = "0 1 2 3 " ] || die "not 4 ranks: $(cat "$1")"
}

# --- 1. clean sbatch -N 2 -------------------------------------------------------------------------
veth_bytes() {  # rx + tx bytes of node B's end of the wire
  local d=/sys/class/net/veth-b/statistics
  ip netns exec "$NS_B" sh -c "echo \$((\$(cat $d/rx_bytes) + \$(cat $d/tx_bytes)))"
}
bytes0=$(veth_bytes)
id=$(sbatch_sweep clean clean.h5)
st="$(wait_job "$id" 240)"
[ "$st" = COMPLETED ] || die "sbatch -N 2 job $id ended $st"
# Each config's gather sends about one model across the wire (two_nodes_tcp.sh says why).
bytes=$(($(veth_bytes) - bytes0))
model_bytes=$(stat -c %s tb/base/model.safetensors)
((bytes >= PLANNED * model_bytes * 3 / 4)) || die "only $bytes bytes crossed the veth for $PLANNED configs of a $model_bytes-byte model"
check_placement clean-ranks.log
[ "$(wc -l <clean-ranks.log)" -eq 4 ] || die "job $id ran more than once: $(cat clean-ranks.log)"
"$MS" archive verify clean.h5 >/dev/null || die "clean.h5 does not verify"
export_sorted clean.h5 clean
same_numbers ref clean "sbatch -N 2"
say "sbatch -N 2: job $id COMPLETED, ranks 0,2 on ms-node-a and 1,3 on ms-node-b, $bytes bytes over the veth, archive equals the reference"

# --- 2. node B lost mid-sweep -------------------------------------------------------------------
# A paced job (0.4 s per config, MS_TEST_FAIL_CONFIG pace: numbers unchanged); once its progress
# line (every second) reports a quarter of the plan run, SIGKILL of everything in node B: its
# slurmd, the step's slurmstepd and both ranks. SLURM must take the job off node B within
# LOSS_BOUND_S; once slurmd B is back (as a rebooted node returns), the requeued job must resume
# and complete the study.
LOSS_BOUND_S=90
id=$(sbatch_sweep lost lost.h5 MS_TEST_FAIL_CONFIG=any:any:pace "MS_SWEEP_ARGS=--progress-interval 1")
want=$((PLANNED / 4))
done_now=0
for _ in $(seq 900); do
  [ -f "lost-$id.out" ] && done_now="$(sed -n 's/.*progress: \([0-9]*\)\/[0-9]* configs.*/\1/p' "lost-$id.out" | tail -n1)"
  ((${done_now:-0} >= want)) && break
  sleep 0.2
done
((${done_now:-0} >= want)) || die "job $id reports ${done_now:-0} configs run (wanted $want before losing node B)"
[ "$(job_field "$id" JobState)" = RUNNING ] || die "job $id is no longer running: node B could not be lost mid-sweep"
victims="$(ip netns pids "$NS_B")"
names="$(for p in $victims; do cat "/proc/$p/comm" 2>/dev/null; done | sort | uniq -c | tr -s ' \n' ' ')"
t_kill=$SECONDS
for p in $victims; do kill -KILL "$p" 2>/dev/null || true; done
say "killed every process of node B ($names); job $id had reported $done_now configs run"
# The job must leave node B: requeued (PENDING), or ended.
st=""
for _ in $(seq $((LOSS_BOUND_S * 2))); do
  st="$(job_field "$id" JobState)"
  [ "$st" != RUNNING ] && [ "$st" != COMPLETING ] && break
  sleep 0.5
done
took=$((SECONDS - t_kill))
[ "$st" != RUNNING ] && [ "$st" != COMPLETING ] || die "job $id still $st ${LOSS_BOUND_S}s after losing node B"
say "job $id left RUNNING ${took}s after the loss: $st, reason $(job_field "$id" Reason), node B $(client sinfo -h -n ms-node-b -o %T)"
# No engine process may be left in node A.
for _ in $(seq 100); do
  left="$(for p in $(ip netns pids "$NS_A"); do
    if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = mergesweep ]; then echo "$p"; fi
  done)"
  [ -z "$left" ] && break
  sleep 0.2
done
[ -z "$left" ] || die "engine processes left in node A after job $id was taken off: $left"
"$MS" archive verify lost.h5 >lost-verify.log 2>&1 || die "the partial archive does not verify: $(cat lost-verify.log)"
partial=$(committed_configs lost.h5)
((partial < PLANNED)) || die "lost.h5 is complete although node B was lost mid-sweep"
((partial > 0)) || die "job $id committed nothing before node B was lost"
say "partial archive verifies: $partial configs"

# Node B reboots: nothing of it runs, its /tmp is new, and what the killed slurmstepd's PMIx
# plugin left in the spool (the socket stepd.slurm.pmix.JOB.STEP and the folder pmix.JOB.STEP) is
# removed, as a node's boot must do: left there, the requeued job's step (same job id, step 0)
# cannot create them on B, srun fails the launch, and sweep.sbatch ends the job as failed
# (docs/cluster.md).
stale="$(find "$W/spool/ms-node-b" -maxdepth 1 -name '*pmix.*' | wc -l)"
find "$W/spool/ms-node-b" -maxdepth 1 -name '*pmix.*' -exec rm -rf {} +
start_slurmd b
say "node B rebooted ($stale stale PMIx entries removed from its spool), slurmd started"
st="$(wait_job "$id" 240)"
[ "$st" = COMPLETED ] || die "job $id ended $st after node B came back"
n=$(job_field "$id" Restarts)
((n >= 1)) || die "job $id completed without a requeue (Restarts=$n)"
check_placement lost-ranks.log
grep -q "$partial already in" lost-"$id".out || die "the requeued run did not resume from the $partial committed configs"
"$MS" archive verify lost.h5 >/dev/null || die "lost.h5 does not verify after the requeued run"
export_sorted lost.h5 lost
same_numbers ref lost "requeued after losing node B"
say "node B back: job $id requeued $n time(s), COMPLETED; $PLANNED configs exactly once, equal to the reference"
say "pass"
