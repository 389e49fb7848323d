#!/bin/bash
# ssh_test.sh - `dragonx run --hostlist` / `--hostfile` over ssh, with a stub ssh on PATH
# (tests/multinode/stub-ssh/ssh: records its options and host, then runs the remote command
# on this machine, with its stdin, which carries the run secret).
#
# Checks: ssh is chosen by itself when hosts are given; one ssh per host, in the given order,
# each with -oBatchMode=yes; the head sees the hosts by name and a process ran on each other
# one; -N 2 takes the first two hosts of a host file; -N 4 of 3 hosts fails naming both; a
# host whose ssh fails ends the run at once with a message naming it; a bad
# DRAGONX_LAUNCHER_ADDRESS is named. No run leaves its run directory behind.
source "$(dirname "$0")/lib.sh"

watch_leftovers
dir=$(mktemp -d /tmp/dragonx-ssh-test.XXXXXX)
on_exit "rm -rf '$dir'"
cd "$dir"
export PATH=$MULTINODE_DIR/stub-ssh:$PATH STUB_SSH_LOG=$dir/ssh.log
export DRAGONX_TMPDIR=$dir/tmp  # our runs' directories, checked at the end
mkdir "$DRAGONX_TMPDIR"
dragonx() { timeout 60 "$DRAGONX_BUILD/dragonx" "$@"; }
hello=$DRAGONX_BUILD/examples/multinode_hello

log "--hostlist hb,ha,hc (automatic: ssh)"
dragonx run --hostlist hb,ha,hc "$hello" $(hello_args) > out1 2>&1 ||
    fail "the run failed ($?); output:$(printf '\n'; cat out1)"
check_hello out1 3 hb ha hc
# The ssh calls run at once and log in any order; the node index each got shows the order.
expected="options=-oBatchMode=yes host=ha node=1
options=-oBatchMode=yes host=hb node=0
options=-oBatchMode=yes host=hc node=2"
[ "$(sort ssh.log)" = "$expected" ] || fail "unexpected ssh calls:$(printf '\n'; cat ssh.log)"

log "--wlm ssh --hostfile (3 hosts) -N 2"
printf '# our hosts\nh1\n\nh2  # the second\nh3\n' > hosts
: > ssh.log
dragonx run --wlm ssh --hostfile hosts -N 2 "$hello" $(hello_args) > out2 2>&1 ||
    fail "the run failed ($?); output:$(printf '\n'; cat out2)"
check_hello out2 2 h1 h2
[ "$(grep -c . ssh.log)" = 2 ] || fail "expected 2 ssh calls:$(printf '\n'; cat ssh.log)"

log "-N 4 of 3 hosts"
if dragonx run --hostfile hosts -N 4 /bin/true > out3 2>&1; then
    fail "-N 4 of 3 hosts succeeded"
fi
grep -q -- "-N 4 asks for 4 nodes, but the host list has only 3" out3 ||
    fail "unexpected message:$(printf '\n'; cat out3)"

log "a host that ssh cannot reach"
mkdir fail-ssh
cat > fail-ssh/ssh <<'EOS'
#!/bin/bash
# ssh that cannot reach host "down"
case " $* " in
*" down "*) echo "ssh: connect to host down port 22: No route to host" >&2; exit 255 ;;
esac
exec "$MULTINODE_DIR/stub-ssh/ssh" "$@"
EOS
chmod +x fail-ssh/ssh
start=$(date +%s)
export MULTINODE_DIR
if PATH=$dir/fail-ssh:$PATH dragonx run --hostlist up,down /bin/true > out4 2>&1; then
    fail "a run with an unreachable host succeeded"
fi
grep -q "ssh to down (node 1) exited with status 255 before every node reported" out4 ||
    fail "unexpected message:$(printf '\n'; cat out4)"
[ $(($(date +%s) - start)) -lt 20 ] || fail "the failure took more than 20 s to notice"
log "ok: $(grep 'run failed' out4)"

log "DRAGONX_LAUNCHER_ADDRESS that names nothing"
if DRAGONX_LAUNCHER_ADDRESS=nowhere.invalid dragonx run --hostlist a /bin/true > out5 2>&1; then
    fail "a run with a bad DRAGONX_LAUNCHER_ADDRESS succeeded"
fi
grep -q "DRAGONX_LAUNCHER_ADDRESS='nowhere.invalid' is not an IPv4 address" out5 ||
    fail "unexpected message:$(printf '\n'; cat out5)"

left=$(ls -A "$DRAGONX_TMPDIR/dragonx-$(id -u)" 2>/dev/null)
[ -z "$left" ] || fail "run directories left in $DRAGONX_TMPDIR: $left"
log "ok: no run directory left"
