#!/bin/bash
# slurm_test.sh - examples/batch/slurm_job.sh under a real Slurm cluster started here.
#
#   slurm_test.sh            3 nodes n1..n3 on this host (loopback; one slurmd per node)
#   slurm_test.sh netns      3 hosts in network namespaces, each with its own address and
#                            host name (skipped where namespaces cannot be made)
#
# Starts munged, slurmctld and 3 slurmd under a fresh temporary directory on non-default ports
# (tests/multinode/slurm_cluster.sh), submits the batch script with sbatch -N 3, waits for it
# by polling `scontrol show job` (bounded), and checks its output: the head saw the 3 nodes by
# their Slurm names, and a process ran on each other node (in netns mode: on another host).
# and its channel message came.
# Then `dragonx cleanup` inside an allocation (salloc -N 3) must run on all 3 nodes.
# Stops the daemons it started by pid and removes what it made, whatever happens.
source "$(dirname "$0")/lib.sh"

mode=${1:-loopback}
[ "$(id -u)" = 0 ] || skip "needs root (the test cluster runs slurmd as root)"
for tool in munged mungekey slurmctld slurmd sbatch scontrol srun; do
    command -v "$tool" >/dev/null ||
        skip "$tool is not installed (scripts/install-deps.sh multinode)"
done
watch_leftovers

dir=$(mktemp -d /tmp/dragonx-slurm-test.XXXXXX)
on_exit "rm -rf '$dir'"
cluster() { "$MULTINODE_DIR/slurm_cluster.sh" "$@"; }

prefix=""
if [ "$mode" = netns ]; then
    command -v ip >/dev/null && command -v nsenter >/dev/null ||
        skip "ip (iproute2) and nsenter (util-linux) are needed for network namespaces"
    prefix=dxs$$
    if ! "$MULTINODE_DIR/netns_hosts.sh" up "$prefix" 3 2>"$dir/netns.err"; then
        skip "cannot create network namespaces here: $(tail -1 "$dir/netns.err")"
    fi
    on_exit "'$MULTINODE_DIR/netns_hosts.sh' down '$prefix'"
    names=("$prefix-h1" "$prefix-h2" "$prefix-h3")
    hosts=(--hosts "${names[@]}")
else
    names=(n1 n2 n3)
    hosts=()
fi

on_exit "'$MULTINODE_DIR/slurm_cluster.sh' stop '$dir/cluster' 2>/dev/null"
cluster start "$dir/cluster" 3 $prefix || fail "the Slurm cluster did not start"

# sbatch -N 3: the job's script runs on the first node and calls `dragonx run` there.
cd "$dir"
job=$(cluster client "$dir/cluster" sbatch --parsable -N 3 --output="$dir/job-%j.out" \
    --export="ALL,DRAGONX_BUILD=$DRAGONX_BUILD" \
    "$DRAGONX_SOURCE/examples/batch/slurm_job.sh" $(hello_args)) || fail "sbatch failed"
job=${job%%;*}
log "submitted job $job"
on_exit "'$MULTINODE_DIR/slurm_cluster.sh' client '$dir/cluster' scancel '$job' 2>/dev/null"

state=""
for _ in $(seq 600); do  # 120 s
    state=$(cluster client "$dir/cluster" scontrol show job "$job" 2>/dev/null |
        grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
    case "$state" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;;
    esac
    sleep 0.2
done
out=$dir/job-$job.out
log "job $job: $state"
[ "$state" = COMPLETED ] ||
    fail "job $job ended $state; its output:$(printf '\n'; cat "$out" 2>/dev/null)"
check_hello "$out" 3 "${names[@]}" "${hosts[@]}"

# dragonx cleanup inside an allocation runs on every node (srun --label: "<task>: ...").
stale=dragonx-r$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')-n1-multinode-test
touch "/dev/shm/$stale"
on_exit "rm -f '/dev/shm/$stale'"
cluster client "$dir/cluster" timeout 60 salloc -N 3 "$DRAGONX_BUILD/dragonx" cleanup --dry-run \
    > cleanup1 2>&1 || fail "dragonx cleanup --dry-run failed:$(printf '\n'; cat cleanup1)"
for task in 0 1 2; do
    grep -q "^$task: would remove /dev/shm/$stale" cleanup1 ||
        fail "cleanup --dry-run did not run on node $task:$(printf '\n'; cat cleanup1)"
done
[ -e "/dev/shm/$stale" ] || fail "cleanup --dry-run removed /dev/shm/$stale"
cluster client "$dir/cluster" timeout 60 salloc -N 3 "$DRAGONX_BUILD/dragonx" cleanup \
    > cleanup2 2>&1 || fail "dragonx cleanup failed:$(printf '\n'; cat cleanup2)"
grep -q "cleaning up the 3 node(s) of the slurm allocation" cleanup2 &&
    [ ! -e "/dev/shm/$stale" ] ||
    fail "cleanup did not clean the allocation:$(printf '\n'; cat cleanup2)"
log "ok: dragonx cleanup ran on the 3 nodes"
