#!/bin/bash
# slurm_cluster.sh - a real Slurm cluster on this machine for the multinode tests: a private
# munged, slurmctld and one slurmd per node, everything under one directory (config, state,
# logs, pid files, munge key); nothing in /etc is touched and the system's munge/Slurm (if
# any) are not used. Adapted from the infra recipe (Slurm 22.05, munge 0.5).
#
#   slurm_cluster.sh start DIR NODES [NETNS_PREFIX]   start and wait until every node is idle
#   slurm_cluster.sh client DIR CMD [ARGS...]         run a Slurm client (sbatch, scontrol, ...)
#   slurm_cluster.sh stop DIR                         stop exactly the daemons started for DIR
#
# Modes:
# - loopback (no NETNS_PREFIX): nodes n1..nN, all on 127.0.0.1 with the machine's host name,
#   one slurmd -N n<i> each on its own port.
# - network namespaces (NETNS_PREFIX=P, made by netns_hosts.sh): node P-h<i> is a host of its
#   own: netns P-h<i> with address 10.200.0.<i>, its own UTS host name and /etc/hosts (bind
#   mounted in a private mount namespace: nsenter + unshare, not `ip netns exec`, which
#   remounts /sys and hides the cgroup file system slurmd needs). slurmctld runs on P-h1, and
#   clients must run inside a namespace too: use `client`, which runs them on P-h1.
#
# Notes:
# - Ports: SLURM_TEST_PORT_BASE (default 27817; slurmctld = BASE, slurmd = BASE+1 in netns
#   mode, BASE+4.. in loopback mode): not Slurm's defaults, so a system Slurm is not disturbed.
#   `start` refuses ports already in use.
# - Export SLURM_CONF=DIR/etc/slurm.conf for clients (`client` does it).
# - stop: SIGTERM to the pids in the daemons' own pid files (slurmd, then slurmctld, then
#   munged), SIGKILL after 10 s. It does not remove DIR: the caller owns it.
set -euo pipefail

log() { echo "[slurm_cluster $(date +%T.%3N)] $*" >&2; }
die() { log "$*"; exit 1; }

cmd=${1:-}
D=${2:-}
[ -n "$cmd" ] && [ -n "$D" ] ||
    die "usage: $0 start DIR NODES [NETNS_PREFIX] | client DIR CMD... | stop DIR"
PB=${SLURM_TEST_PORT_BASE:-27817}
export SLURM_CONF=$D/etc/slurm.conf
MUNGE_SOCK=$D/munge/munge.socket

# Runs a command "on" namespace host $1 (see Modes).
in_ns() {
    local ns=$1
    shift
    nsenter --net="/run/netns/$ns" unshare --mount --propagation private \
        sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "/etc/netns/$ns/hosts" "$@"
}

# Runs a Slurm client where it can reach slurmctld.
client() {
    local ns
    ns=$(cat "$D/netns" 2>/dev/null || true)
    if [ -n "$ns" ]; then in_ns "$ns-h1" "$@"; else "$@"; fi
}

port_in_use() {  # true if something listens on 127.0.0.1:$1 (root namespace)
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_conf() {
    local nn=$1 ns=$2 ctl nodeline partnodes cpus
    cpus=$(nproc)
    if [ -n "$ns" ]; then
        ctl="$ns-h1(10.200.0.1)"
        nodeline="NodeName=$ns-h[1-$nn] NodeAddr=10.200.0.[1-$nn] Port=$((PB + 1))"
        partnodes="$ns-h[1-$nn]"
    else
        ctl="$(hostname -s)(127.0.0.1)"
        nodeline="NodeName=n[1-$nn] NodeHostname=$(hostname -s) NodeAddr=127.0.0.1"
        nodeline+=" Port=[$((PB + 4))-$((PB + 3 + nn))]"
        partnodes="n[1-$nn]"
    fi
    cat > "$SLURM_CONF" <<EOF
ClusterName=dragonx-test
SlurmctldHost=$ctl
SlurmctldPort=$PB
SlurmdPort=$((PB + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$D/etc/plugstack.conf
# no cgroups (containers, VMs without delegation); task/none: no CPU binding at all
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
MessageTimeout=10
MailProg=/bin/true
$nodeline CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$partnodes Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    : > "$D/etc/plugstack.conf"
}

start() {
    local nn=${1:?number of nodes} ns=${2:-}
    for tool in munged mungekey slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null ||
            die "$tool is not installed (scripts/install-deps.sh multinode)"
    done
    if [ -z "$ns" ]; then
        for p in "$PB" $(seq $((PB + 4)) $((PB + 3 + nn))); do
            port_in_use "$p" && die "port $p is in use (set SLURM_TEST_PORT_BASE)"
        done
    fi
    mkdir -p "$D"/{etc,state,spool,log,munge,run}
    chmod 0700 "$D" "$D/munge"
    echo "$ns" > "$D/netns"
    mungekey --create --keyfile="$D/munge/munge.key" --force
    chmod 0600 "$D/munge/munge.key"
    write_conf "$nn" "$ns"

    log "munged"
    munged --socket="$MUNGE_SOCK" --key-file="$D/munge/munge.key" --pid-file="$D/munge/munged.pid" \
        --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed" --force
    for _ in $(seq 50); do [ -S "$MUNGE_SOCK" ] && break; sleep 0.1; done
    log "slurmctld"
    if [ -n "$ns" ]; then
        in_ns "$ns-h1" unshare --uts sh -c "hostname $ns-h1 && exec slurmctld -f '$SLURM_CONF' -i"
    else
        slurmctld -f "$SLURM_CONF" -i
    fi
    for _ in $(seq 100); do client scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
    for i in $(seq 1 "$nn"); do
        if [ -n "$ns" ]; then
            log "slurmd on $ns-h$i (netns, own address and host name)"
            mkdir -p "$D/spool/$ns-h$i"
            in_ns "$ns-h$i" unshare --uts sh -c "hostname $ns-h$i && exec slurmd -f '$SLURM_CONF'"
        else
            log "slurmd -N n$i"
            mkdir -p "$D/spool/n$i"
            slurmd -f "$SLURM_CONF" -N "n$i"
        fi
    done
    local states=""
    for _ in $(seq 300); do
        states=$(client sinfo -h -N -o '%N %T' 2>/dev/null | sort -u || true)
        if [ -n "$states" ] && ! echo "$states" | grep -vq ' idle$'; then
            log "all $nn nodes idle"
            return 0
        fi
        sleep 0.2
    done
    log "nodes not idle after 60 s:"
    echo "$states" >&2
    return 1
}

kill_pidfiles() {  # SIGTERM the pids in the given pid files, SIGKILL after 10 s
    local pids=() f p
    for f in "$@"; do
        [ -s "$f" ] || continue
        p=$(cat "$f")
        if kill -0 "$p" 2>/dev/null; then kill "$p"; pids+=("$p"); fi
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$p" 2>/dev/null; then log "SIGKILL $p"; kill -9 "$p"; fi
    done
    rm -f "$@"
}

stop() {
    kill_pidfiles "$D"/run/slurmd-*.pid
    kill_pidfiles "$D/run/slurmctld.pid"
    kill_pidfiles "$D/munge/munged.pid"
    log "stopped"
}

case "$cmd" in
start) shift 2; start "$@" ;;
client) shift 2; client "$@" ;;
stop) stop ;;
*) die "unknown command $cmd" ;;
esac
