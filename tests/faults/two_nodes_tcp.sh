#!/usr/bin/env bash
# Two "nodes" on this machine, a sweep across them over TCP only, and the loss of one node.
#
# Each node is a network namespace with its own address (10.231.0.1 and 10.231.0.2 on a veth
# pair made inside the namespaces, so the host's own network is never touched) and its own
# hostname (a UTS namespace). Open MPI runs over TCP alone: pml ob1 with btl tcp,self (no vader,
# no UCX, no coll/sm), its TCP and out-of-band traffic restricted to 10.231.0.0/24, and mpirun in
# node A starts orted in node B through a remote launch agent that enters B's namespaces, as ssh
# would enter another machine.
#
#   1. reference: the spec on one node as usual (mpirun -np 2, shared memory);
#   2. clean run: 4 ranks mapped by node (0, 2 on A; 1, 3 on B) in groups of 2, so every worker
#      group spans both nodes and its merge sums and the gather of the merged model cross the wire.
#      Checks: each rank says where it runs (hostname, network namespace), the veth carried
#      about one model per config (at least 3/4 of one), and the archive equals the reference;
#   3. node loss, four times, into one archive: the same run, slowed to 0.4 s per config
#      (MS_TEST_FAIL_CONFIG pace, which does not change numbers); once some configs are committed,
#      every process in node B (its orted and both ranks) gets SIGKILL. First with the wire up
#      (node A sees the connections reset), then, resuming that archive, with the wire cut just
#      before the kill (nothing reaches node A: a node that lost power). Then the same twice for
#      node A, which holds mpirun and rank 0 (the coordinator and the archive's single writer,
#      killed mid-sweep). Each time the job must end within KILL_BOUND_S seconds, leave no process
#      in the other node, and leave an archive that verifies and resumes;
#   4. rerun on both nodes: resumes, and ends with every config exactly once and the reference's
#      values.
#
# usage: tests/faults/two_nodes_tcp.sh MERGESWEEP
# Exit 0 pass, 1 fail, 77 skipped (not root, or no ip/unshare/mpirun: ctest's SKIP_RETURN_CODE).
# MS_FAULTS_KEEP=1 keeps the temporary folder.
set -euo pipefail

MS="${1:?usage: two_nodes_tcp.sh MERGESWEEP}"
MS="$(cd "$(dirname "$MS")" && pwd)/$(basename "$MS")"
T0=$SECONDS
KILL_BOUND_S=60      # the job must end this long after a node's processes were killed
PEER_TIMEOUT_S=30    # the engine's own silence limit (schedule.peer_timeout): above OOB_KEEPALIVE's 11 s

say() { echo "two-nodes [$((SECONDS - T0))s]: $*" >&2; }
die() { echo "two-nodes: FAIL: $*" >&2; exit 1; }
skip() { echo "two-nodes: SKIP: $*" >&2; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, veth)"
for tool in ip unshare mpirun hostname stat; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done
[ -x "$MS" ] || die "no mergesweep at $MS"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# Names unique to this run, so two runs (or a run and a leftover) never share a namespace.
NS_A="ms2n-$$-a"
NS_B="ms2n-$$-b"
ADDR_A=10.231.0.1
ADDR_B=10.231.0.2
NET=10.231.0.0/24
TMP="$(mktemp -d /tmp/ms-two-nodes.XXXXXX)"
MPIRUN_PID=""

# Every exit path: end what we started (mpirun by pid, then whatever still lives in our two
# namespaces: orted daemonizes, so it is not mpirun's child), delete the namespaces (which
# removes the veth pair), and drop the folder unless the run failed.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$MPIRUN_PID" ] && kill -KILL "$MPIRUN_PID" 2>/dev/null || true
  for ns in "$NS_A" "$NS_B"; do
    if ip netns list | grep -qw "$ns"; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
      for _ in $(seq 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
      ip netns del "$ns" 2>/dev/null || echo "two-nodes: warning: could not delete namespace $ns" >&2
    fi
  done
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "== $f (last lines)" >&2; tail -n 25 "$f" >&2; }; done
  fi
  if [ "${MS_FAULTS_KEEP:-0}" = 1 ] || { [ $rc -ne 0 ] && [ $rc -ne 77 ]; }; then
    echo "two-nodes: kept $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the two nodes --------------------------------------------------------------------------
ip netns add "$NS_A" || die "ip netns add failed although running as root"
ip netns add "$NS_B" || die "ip netns add $NS_B failed"
# Created directly inside the namespaces: the veth pair never exists in the host's namespace.
ip link add veth-a netns "$NS_A" type veth peer name veth-b netns "$NS_B" || die "cannot create a veth pair"
ip -n "$NS_A" addr add "$ADDR_A/24" dev veth-a
ip -n "$NS_B" addr add "$ADDR_B/24" dev veth-b
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set veth-a up
ip -n "$NS_B" link set veth-b up
INODE_A=$(stat -L -c %i "/run/netns/$NS_A")
INODE_B=$(stat -L -c %i "/run/netns/$NS_B")
say "nodes: $NS_A ($ADDR_A, net:[$INODE_A]) and $NS_B ($ADDR_B, net:[$INODE_B]) joined by veth-a/veth-b"

# The remote launch agent: called by mpirun as `agent HOST COMMAND...` (ssh's form), it runs the
# command in that host's namespaces with that host's name, through sh as sshd would.
cat >"$TMP/agent.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
host=\$1; shift
case "\$host" in
  $ADDR_A) ns=$NS_A; name=ms-node-a ;;
  $ADDR_B) ns=$NS_B; name=ms-node-b ;;
  *) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" unshare --uts sh -c 'hostname "\$1"; shift; exec sh -c "\$*"' sh "\$name" "\$@"
EOF
chmod +x "$TMP/agent.sh"
printf '%s slots=2\n%s slots=2\n' "$ADDR_A" "$ADDR_B" >"$TMP/hosts"

# Each rank records where it runs, then becomes the engine (exec: same process).
cat >"$TMP/rank.sh" <<'EOF'
#!/bin/sh
echo "$OMPI_COMM_WORLD_RANK $(hostname) $(readlink /proc/self/ns/net)" >>"$MS_RANKS_LOG"
exec "$@"
EOF
chmod +x "$TMP/rank.sh"

# mpirun's out-of-band link to each orted: keepalive after 5 s idle, then 3 probes 2 s apart. A
# node that vanishes without closing its connections (the silent loss below) is then noticed in
# at most 11 s; Open MPI's defaults (300 s, 9 x 20 s) take 8 minutes. Below peer_timeout on
# purpose: when the engine ends the job first, mpirun waits on the lost orted much longer (see
# docs/cluster.md).
OOB_KEEPALIVE=(--mca oob_tcp_keepalive_time 5 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3)

# mpirun over both nodes, started in node A (its own hostname too). Runs in the background and
# sets MPIRUN_PID; the caller waits. TCP only: see the header. mpirun takes the hostfile entry
# whose address is up in its own namespace (10.231.0.1) as itself, and launches orted on the
# other through the agent.
mpirun_two_nodes() {  # mpirun_two_nodes LOG RANKS_LOG ARGS...
  local log=$1 ranks=$2; shift 2
  MS_RANKS_LOG="$ranks" ip netns exec "$NS_A" unshare --uts sh -c 'hostname ms-node-a; exec "$@"' sh \
    mpirun --hostfile "$TMP/hosts" -np 4 --map-by node --bind-to none --oversubscribe \
    --mca plm_rsh_agent "$TMP/agent.sh" --mca plm_rsh_no_tree_spawn 1 \
    --mca pml ob1 --mca btl tcp,self --mca coll '^sm' \
    --mca btl_tcp_if_include "$NET" --mca oob_tcp_if_include "$NET" "${OOB_KEEPALIVE[@]}" \
    -x MS_RANKS_LOG -x MS_TEST_FAIL_CONFIG \
    "$TMP/rank.sh" "$MS" sweep "$@" >"$log" 2>&1 &
  MPIRUN_PID=$!
}

veth_bytes() {  # rx + tx bytes of node B's end of the wire
  local d=/sys/class/net/veth-b/statistics
  ip netns exec "$NS_B" sh -c "echo \$((\$(cat $d/rx_bytes) + \$(cat $d/tx_bytes)))"
}

# Ranks 0 and 2 in node A, 1 and 3 in node B, each exactly once.
check_placement() {  # check_placement RANKS_LOG
  local want got
  want="$(printf '0 ms-node-a net:[%s]\n1 ms-node-b net:[%s]\n2 ms-node-a net:[%s]\n3 ms-node-b net:[%s]' \
    "$INODE_A" "$INODE_B" "$INODE_A" "$INODE_B")"
  got="$(sort -n "$1")"
  [ "$got" = "$want" ] || die "ranks are not where they should be; got:
$got
want:
$want"
}

# config_id ... rows of every table that holds numbers (timings and failures hold none that must
# repeat), sorted; two archives hold the same numbers when these files are equal.
export_sorted() {  # export_sorted ARCHIVE DIR
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
}
committed_configs() {  # committed configs of an archive being written (SWMR read), 0 if none yet
  local n
  n="$("$MS" archive info "$1" 2>/dev/null | awk '$1 == "configs" && NF == 2 {print $2}')"
  echo "${n:-0}"
}

# --- the study: the tiny testbed family, TA and TIES over subsets, tasks and probes ---------
cd "$TMP"
"$MS" testbed --preset tiny --quiet --out tb >testbed.log 2>&1 || die "testbed failed"
cat >spec.yaml <<EOF
name: two-nodes
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
schedule: {batch_seconds: 0, peer_timeout: $PEER_TIMEOUT_S}
EOF
PLANNED="$("$MS" sweep spec.yaml --plan 2>&1 | sed -n 's/^total: \([0-9]*\) configs$/\1/p')"
[ -n "$PLANNED" ] && [ "$PLANNED" -gt 0 ] || die "could not read the planned config count from sweep --plan"

# --- 1. reference: one node, shared memory ----------------------------------------------------
mpirun -np 2 --bind-to none --oversubscribe "$MS" sweep --quiet spec.yaml >ref.log 2>&1 || die "single-node reference run failed"
export_sorted ref.h5 ref
[ "$(($(wc -l <ref/configs.csv) - 1))" -eq "$PLANNED" ] || die "reference holds $(($(wc -l <ref/configs.csv) - 1)) configs, plan has $PLANNED"
say "reference: $PLANNED configs on one node"

# --- 2. clean run over the two nodes ------------------------------------------------------------
bytes0=$(veth_bytes)
MS_TEST_FAIL_CONFIG="" mpirun_two_nodes clean.log clean-ranks.log spec.yaml --group-size 2 --output clean.h5
wait "$MPIRUN_PID" || die "clean two-node run failed (exit $?)"
MPIRUN_PID=""
bytes=$(($(veth_bytes) - bytes0))
check_placement clean-ranks.log
# Every config gathers the merged model in its group, and each group has one rank per node: each
# rank's shard crosses the wire to its peer, so about one model (the safetensors file less its
# header) per config goes over the veth. Ask for three quarters of that: ranks talking through
# anything but TCP on the veth would leave it near zero.
model_bytes=$(stat -c %s tb/base/model.safetensors)
((bytes >= PLANNED * model_bytes * 3 / 4)) || die "only $bytes bytes crossed the veth for $PLANNED configs of a $model_bytes-byte model"
export_sorted clean.h5 clean
same_numbers ref clean "clean two-node run"
say "clean run: ranks 0,2 on ms-node-a and 1,3 on ms-node-b, $bytes bytes over TCP (veth), archive equals the reference"

# --- 3. a node lost mid-sweep: node B twice, then node A (rank 0: the coordinator and the
# archive's writer, and mpirun) twice ----------------------------------------------------------
# lose_node NODE MODE LOG RUN: a paced run into kill.h5; once it has run RUN configs (its progress
# line, printed every second: polling the archive itself is too slow on a loaded machine), node
# NODE (a or b) is lost:
#   kill:   SIGKILL of every process in the node; its kernel still closes the TCP connections, so
#           the other node sees them reset at once (a node whose processes died, e.g. the OOM killer);
#   silent: the wire is cut first (both veth ends down), then the same kill: nothing reaches the
#           other node any more, as when a node loses power or the network partitions. Only TCP
#           keepalive on the out-of-band link between mpirun and orted can tell (see OOB_KEEPALIVE).
# Every process of the other node (mpirun, or orted, and the ranks there) must be gone within
# KILL_BOUND_S; when node B was lost, mpirun must exit non-zero. The partial archive must verify
# (node A's loss kills its writer mid-sweep) and hold more configs than before and fewer than the
# plan. Sets PARTIAL (configs committed).
PARTIAL=0
lose_node() {
  local node=$1 mode=$2 log=$3 run=$4 done_now victims names t_kill status took left how lost other before=$PARTIAL
  if [ "$node" = a ]; then lost=$NS_A; other=$NS_B; else lost=$NS_B; other=$NS_A; fi
  MS_TEST_FAIL_CONFIG=any:any:pace mpirun_two_nodes "$log" "$node-$mode-ranks.log" spec.yaml --group-size 2 \
    --output kill.h5 --progress-interval 1
  done_now=0
  for _ in $(seq 600); do
    done_now="$(sed -n 's/.*progress: \([0-9]*\)\/[0-9]* configs.*/\1/p' "$log" | tail -n1)"
    ((${done_now:-0} >= run)) && break
    kill -0 "$MPIRUN_PID" 2>/dev/null || break
    sleep 0.2
  done
  kill -0 "$MPIRUN_PID" 2>/dev/null || die "$node $mode: the paced run ended before node ${node^^} could be lost"
  ((${done_now:-0} >= run)) || die "$node $mode: the paced run reports ${done_now:-0} configs run (wanted $run first)"
  check_placement "$node-$mode-ranks.log"
  victims="$(ip netns pids "$lost")"
  [ -n "$victims" ] || die "$node $mode: no process in node ${node^^} to kill"
  names="$(for p in $victims; do cat "/proc/$p/comm" 2>/dev/null; done | sort | uniq -c | tr -s ' \n' ' ')"
  t_kill=$SECONDS
  if [ "$mode" = silent ]; then
    ip -n "$NS_B" link set veth-b down
    ip -n "$NS_A" link set veth-a down
  fi
  for p in $victims; do kill -KILL "$p" 2>/dev/null || true; done
  say "node ${node^^} $mode: killed every process of node ${node^^} ($names); the run had reported $done_now configs run"
  # The job has ended when nothing of it is left in the other node (and mpirun, in node A, is gone).
  status=""
  for _ in $(seq $((KILL_BOUND_S * 10))); do
    if ! kill -0 "$MPIRUN_PID" 2>/dev/null && [ -z "$(ip netns pids "$other")" ]; then
      set +e; wait "$MPIRUN_PID"; status=$?; set -e
      break
    fi
    sleep 0.1
  done
  took=$((SECONDS - t_kill))
  if [ -z "$status" ]; then
    left="$(ip netns pids "$other" | tr '\n' ',' | sed 's/,$//')"
    [ -n "$left" ] && ps -o pid,stat,etime,cmd -p "$left" >&2 || true
    ip netns exec "$other" ss -tnpo >&2 || true
    die "$node $mode: the job did not end within ${KILL_BOUND_S}s of losing node ${node^^}"
  fi
  MPIRUN_PID=""
  ((status != 0)) || die "$node $mode: mpirun exited 0 after losing node ${node^^}"
  how="neither mpirun's nor the engine's message found in $log"
  [ "$node" = a ] && how="mpirun was lost with node A; node B's orted and ranks ended on their own"
  grep -q "ORTE has lost communication with a remote daemon" "$log" && how="mpirun lost its orted in node B"
  grep -q "made no progress" "$log" && how="the engine's schedule.peer_timeout"
  "$MS" archive verify kill.h5 >"$node-$mode-verify.log" 2>&1 || die "$node $mode: the partial archive does not verify"
  PARTIAL=$(committed_configs kill.h5)
  ((PARTIAL < PLANNED)) || die "$node $mode: the archive is complete although node ${node^^} was lost mid-sweep"
  ((PARTIAL > before)) || die "$node $mode: the run committed nothing before node ${node^^} was lost"
  say "node ${node^^} $mode: job ended ${took}s after the loss (mpirun exit $status; $how); partial archive verifies, $PARTIAL configs"
  if [ "$mode" = silent ]; then  # mend the wire; node A's address is local again for mpirun
    ip -n "$NS_A" link set veth-a up
    ip -n "$NS_B" link set veth-b up
  fi
}
# resumes LOG N: the run of LOG started from the N configs committed before it
resumes() { grep -q "$2 already in" "$1" || die "$1: the run did not resume from the $2 committed configs: $(grep 'configs planned' "$1")"; }
lose_node b kill b-kill.log $((PLANNED / 5))
prev=$PARTIAL
lose_node b silent b-silent.log 3
resumes b-silent.log "$prev"
prev=$PARTIAL
lose_node a kill a-kill.log 3
resumes a-kill.log "$prev"
prev=$PARTIAL
lose_node a silent a-silent.log 3
resumes a-silent.log "$prev"
partial=$PARTIAL

# --- 4. rerun on both nodes: resume -----------------------------------------------------------
MS_TEST_FAIL_CONFIG="" mpirun_two_nodes rerun.log rerun-ranks.log spec.yaml --group-size 2 --output kill.h5
wait "$MPIRUN_PID" || die "the rerun on both nodes failed (exit $?)"
MPIRUN_PID=""
check_placement rerun-ranks.log
grep -q "$partial already in" rerun.log || die "the rerun did not resume from the $partial committed configs: $(grep 'configs planned' rerun.log)"
"$MS" archive verify kill.h5 >verify.log 2>&1 || die "the resumed archive does not verify: $(cat verify.log)"
export_sorted kill.h5 resumed
dups="$(cut -d, -f1 resumed/configs.csv | uniq -d | head -n 3)"
[ -z "$dups" ] || die "configs committed twice: $dups"
same_numbers ref resumed "resumed after losing each node twice"
say "rerun resumed ($partial already in the archive), verifies, $PLANNED configs exactly once, equal to the reference"
say "pass"
