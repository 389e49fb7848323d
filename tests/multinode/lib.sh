# lib.sh - shared by the multinode test scripts (sourced, not run).
#
# Environment (set by tests/meson.build):
#   DRAGONX_BUILD   the build directory (dragonx, dragonx-runtime, examples/multinode_hello)
#   DRAGONX_SOURCE  the source directory (examples/batch/, tests/multinode/)
#
# What it gives a test:
# - skip MESSAGE: exit 77 (meson's "skipped") with the reason.
# - fail MESSAGE: print it and exit 1 (the EXIT trap still cleans up).
# - on_exit CMD: run CMD (a string) at exit, last registered first.
# - watch_leftovers: remembers the dragonx shm objects and dragonx processes of this build
#   that exist now; at exit, any new one is reported (and the test fails), and processes are
#   SIGKILLed by pid.
# - check_hello OUTPUT_FILE NNODES NAMES... [--hosts HOSTS...]: checks multinode_hello's
#   output (see examples/05_multinode/multinode_hello.cpp).
set -uo pipefail

: "${DRAGONX_BUILD:?DRAGONX_BUILD must name the build directory}"
: "${DRAGONX_SOURCE:?DRAGONX_SOURCE must name the source directory}"
MULTINODE_DIR=$DRAGONX_SOURCE/tests/multinode

log() { echo "[$(basename "$0") $(date +%T.%3N)] $*" >&2; }
skip() { log "SKIP: $*"; exit 77; }
fail() { log "FAIL: $*"; exit 1; }

_exit_actions=()
on_exit() { _exit_actions=("$1" "${_exit_actions[@]}"); }
_run_exit_actions() {
    local rc=$? action
    for action in "${_exit_actions[@]}"; do
        eval "$action" || rc=1
    done
    exit "$rc"
}
trap _run_exit_actions EXIT

# Pids of processes running this build's dragonx or dragonx-runtime.
dragonx_pids() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        case "$exe" in
        "$DRAGONX_BUILD/dragonx" | "$DRAGONX_BUILD/dragonx-runtime") echo "${p#/proc/}" ;;
        esac
    done | sort
}

shm_objects() { ls /dev/shm 2>/dev/null | grep '^dragonx-' | sort || true; }

_check_leftovers() {
    local new_pids new_shm rc=0 p
    new_pids=$(comm -13 <(echo "$_pids_before") <(dragonx_pids))
    if [ -n "$new_pids" ]; then
        log "dragonx processes left over (killed now):"
        for p in $new_pids; do ps -o pid=,args= -p "$p" >&2 || true; kill -9 "$p" 2>/dev/null; done
        rc=1
    fi
    new_shm=$(comm -13 <(echo "$_shm_before") <(shm_objects))
    if [ -n "$new_shm" ]; then
        log "shm objects left over in /dev/shm (removed now):"
        echo "$new_shm" >&2
        for p in $new_shm; do rm -f "/dev/shm/$p"; done
        rc=1
    fi
    return $rc
}

watch_leftovers() {
    _pids_before=$(dragonx_pids)
    _shm_before=$(shm_objects)
    on_exit _check_leftovers
}

# Waits up to $2 seconds for a process (by pid) to end.
wait_gone() {
    local pid=$1 i
    for i in $(seq $(($2 * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}

check_hello() {
    local out=$1 nnodes=$2
    shift 2
    local names=() hosts=() i
    while [ $# -gt 0 ] && [ "$1" != --hosts ]; do names+=("$1"); shift; done
    [ $# -gt 0 ] && shift && hosts=("$@")
    local list
    list=$(IFS=,; echo "${names[*]}" | sed 's/,/, /g')
    grep -qF "multinode_hello: $nnodes node(s): $list" "$out" ||
        fail "the head did not see $nnodes nodes ($list); output:$(printf '\n'; cat "$out")"
    for ((i = 1; i < nnodes; i++)); do
        local line="child on node $i (${names[$i]})"
        [ ${#hosts[@]} -gt 0 ] && line+=", host ${hosts[$i]}"
        grep -F "$line" "$out" | grep -qF "where it was sent" ||
            fail "no process ran on node $i (${names[$i]}): no '$line';" \
                "output:$(printf '\n'; cat "$out")"
        grep -qF "received \"hello from node $i\"" "$out" ||
            fail "no channel message from node $i; output:$(printf '\n'; cat "$out")"
    done
    grep -qE "processes ran on $((nnodes - 1)) other node\(s\).*: ok$" "$out" ||
        fail "multinode_hello did not report success; output:$(printf '\n'; cat "$out")"
    log "ok: $nnodes nodes (${names[*]}), a process and a channel message from each other node"
}

# The head program's arguments (none: it exchanges channel messages by default).
hello_args() {
    :
}
