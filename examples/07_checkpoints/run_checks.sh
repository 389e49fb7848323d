#!/usr/bin/env bash
# run_checks.sh - the checks of restart_train and persist_train, which take several runs each:
# a run interrupted and carried on must print the same losses as one run straight through.
#
#   examples/07_checkpoints/run_checks.sh <dragonx> <restart_train> <persist_train> [K]
#
# (the meson test example_checkpoint_restart_persist passes the programs of the build). Each
# `dragonx run --wlm local -N 2` runs under `timeout 120`, in a fresh temporary directory
# (restart records and persisted files go there; removed at the end). With K steps (default 4):
# - restart: restart_train --steps 2K --no-keep against restart_train --steps K (destroyed with
#   allow_restart) then --restart --steps K --expect-step K; their `step` lines must match,
#   the kept memory (/dev/shm/dragonx-kept-<name>-*) must exist between the two and be gone
#   after the second.
# - persistence: persist_train --mode validate --steps K (2K steps in one go) against --mode
#   persist --steps K then --mode restore --steps K; their `step` lines must match; then --mode
#   replay, whose every checkpoint must hold a state of the validate run, and which must remove
#   the files.
# Dictionary names carry this shell's pid, so runs of the check at once do not meet.
#
# Exit code 0 when every run succeeded and everything matched; 1 otherwise (a message says what
# differed or which run failed, with its output); 2 for a bad command line.
set -euo pipefail

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: run_checks.sh <dragonx> <restart_train> <persist_train> [K]" >&2
    exit 2
fi
dragonx=$(realpath "$1")
restart_train=$(realpath "$2")
persist_train=$(realpath "$3")
k=${4:-4}
restart_name=restart_demo_$$
persist_name=persist_train_$$

work=$(mktemp -d)
cleanup() {
    local rc=$?
    # A failed run may have kept its managers' memory: the names carry our dictionary's name.
    rm -f /dev/shm/dragonx-kept-"$restart_name"-* /dev/shm/dragonx-kept-"$persist_name"-*
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
cd "$work"

fail() {
    echo "run_checks: FAILED: $*"
    exit 1
}

# run <label> <program> <args...>: runs it on two virtual nodes, its output into <label>.out.
run() {
    local label=$1
    shift
    local rc=0
    echo "== $label: $(basename "$1") ${*:2}"
    timeout 120 "$dragonx" run --wlm local -N 2 "$@" >"$label.out" 2>&1 || rc=$?
    cat "$label.out"
    if [ "$rc" -ne 0 ]; then
        fail "$label exited with $rc$([ "$rc" -eq 124 ] && echo ' (timed out after 120 s)')"
    fi
}

# same_steps <what> <file with the straight run> <files of the interrupted run...>
same_steps() {
    local what=$1 straight=$2
    shift 2
    grep '^step ' "$straight" >straight.steps || true
    cat "$@" | grep '^step ' >interrupted.steps || true
    if [ ! -s straight.steps ]; then
        fail "$what: the straight run printed no step lines"
    fi
    if ! diff -u straight.steps interrupted.steps; then
        fail "$what: the interrupted run's losses differ from the straight run's (diff above)"
    fi
    echo "run_checks: $what: $(wc -l <straight.steps) step(s) match"
}

kept() { compgen -G "/dev/shm/dragonx-kept-$restart_name-*" >/dev/null; }

# ---- restart from kept memory ---------------------------------------------------------------
run restart_straight "$restart_train" --steps $((2 * k)) --no-keep --name "${restart_name}_a"
run restart_first "$restart_train" --steps "$k" --name "$restart_name"
kept || fail "restart: no kept memory (/dev/shm/dragonx-kept-$restart_name-*) after the first run"
run restart_second "$restart_train" --steps "$k" --restart --expect-step "$k" \
    --name "$restart_name"
same_steps restart restart_straight.out restart_first.out restart_second.out
if kept; then
    fail "restart: kept memory left after the restarted run destroyed its dictionary:" \
        /dev/shm/dragonx-kept-"$restart_name"-*
fi

# ---- persistence: persist, restore, replay ----------------------------------------------------
data=$work/data
run persist_straight "$persist_train" --mode validate --steps "$k"  # 2K steps
run persist_first "$persist_train" --mode persist --steps "$k" --dir "$data" \
    --name "$persist_name"
run persist_second "$persist_train" --mode restore --steps "$k" --dir "$data" \
    --name "$persist_name"
same_steps persistence persist_straight.out persist_first.out persist_second.out
run persist_replay "$persist_train" --mode replay --dir "$data" --name "$persist_name"
replayed=0
while read -r _ _ c _ n _ loss _; do
    grep -Fqx "step $n loss $loss" persist_straight.out ||
        fail "replay: checkpoint $c holds step $n with loss $loss, not a state of the straight run"
    replayed=$((replayed + 1))
done < <(grep '^replay: checkpoint ' persist_replay.out)
[ "$replayed" -gt 0 ] || fail "replay: no checkpoint replayed"
[ ! -e "$data" ] || fail "replay: $data is still there: $(ls "$data")"
echo "run_checks: replay: $replayed checkpoint(s) hold states of the straight run"
echo "run_checks: ok"
