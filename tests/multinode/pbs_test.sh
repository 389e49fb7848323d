#!/bin/bash
# pbs_test.sh - examples/batch/pbs_job.sh under the fake PBS harness (tests/multinode/fake-pbs:
# fake-qsub-run sets up a PBS job's environment with a 3-host PBS_NODEFILE and runs the script;
# its PALS-style mpiexec starts one rank per host here, with PALS_NODEID/PMI_RANK set).
#
# Checks: `dragonx run` detects PBS by itself, the head sees the 3 hosts of the node file by
# name (node-1..node-3), a process ran on each other node, and its channel message came. Then the same with -N 2 through
# DRAGONX_PBS_LAUNCH (a template of our own), and -N 4 must fail naming 4 and 3.
#
#   pbs_test.sh          every "host" is this machine (host names only)
#   pbs_test.sh netns    hosts are network namespaces with their own addresses and host names
#                        (FAKE_PBS_EXEC=netns:...): only the first case; skipped where
#                        namespaces cannot be made
source "$(dirname "$0")/lib.sh"

mode=${1:-local}
watch_leftovers
dir=$(mktemp -d /tmp/dragonx-pbs-test.XXXXXX)
on_exit "rm -rf '$dir'"
cd "$dir"
qsub_run() { timeout 120 "$MULTINODE_DIR/fake-pbs/fake-qsub-run" "$@"; }
export DRAGONX_BUILD DRAGONX_HEAD_ARGS=$(hello_args)
unset DRAGONX_PBS_LAUNCH

if [ "$mode" = netns ]; then
    [ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
    command -v ip >/dev/null && command -v nsenter >/dev/null ||
        skip "ip (iproute2) and nsenter (util-linux) are needed for network namespaces"
    prefix=dxp$$
    if ! "$MULTINODE_DIR/netns_hosts.sh" up "$prefix" 3 2>"$dir/netns.err"; then
        skip "cannot create network namespaces here: $(tail -1 "$dir/netns.err")"
    fi
    on_exit "'$MULTINODE_DIR/netns_hosts.sh' down '$prefix'"
    log "fake qsub on 3 namespace hosts, the default PALS mpiexec template"
    FAKE_PBS_EXEC=netns:$prefix qsub_run -N 3 "$DRAGONX_SOURCE/examples/batch/pbs_job.sh" \
        > out1 2>&1 || fail "the PBS job failed ($?); output:$(printf '\n'; cat out1)"
    check_hello out1 3 "$prefix-h1" "$prefix-h2" "$prefix-h3" \
        --hosts "$prefix-h1" "$prefix-h2" "$prefix-h3"
    exit 0
fi

log "fake qsub: 3 hosts, the default PALS mpiexec template"
qsub_run -N 3 "$DRAGONX_SOURCE/examples/batch/pbs_job.sh" > out1 2>&1 ||
    fail "the PBS job failed ($?); output:$(printf '\n'; cat out1)"
check_hello out1 3 node-1 node-2 node-3

log "fake qsub: -N 2 with DRAGONX_PBS_LAUNCH (a template of our own)"
job=$dir/job2.sh
cat > "$job" <<EOS
#!/bin/bash
#PBS -l select=3:ncpus=1:mpiprocs=1
cd "\$PBS_O_WORKDIR"
export DRAGONX_PBS_LAUNCH='mpiexec -n {nnodes} -ppn 1 -hosts {nodelist}'
exec "$DRAGONX_BUILD/dragonx" run -N 2 "$DRAGONX_BUILD/examples/multinode_hello" $DRAGONX_HEAD_ARGS
EOS
qsub_run -N 3 --ppn 2 "$job" > out2 2>&1 ||
    fail "the -N 2 job failed ($?); output:$(printf '\n'; cat out2)"
check_hello out2 2 node-1 node-2

log "fake qsub: -N 4 in a 3-host job must fail, naming both numbers"
cat > "$job" <<EOS
#!/bin/bash
exec "$DRAGONX_BUILD/dragonx" run -N 4 /bin/true
EOS
if qsub_run -N 3 "$job" > out3 2>&1; then fail "-N 4 of 3 hosts succeeded"; fi
grep -q -- "-N 4 asks for 4 nodes, but the PBS job .* has only 3" out3 ||
    fail "unexpected message for -N 4:$(printf '\n'; cat out3)"
log "ok: $(cat out3)"
