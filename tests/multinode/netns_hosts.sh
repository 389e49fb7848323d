#!/bin/bash
# netns_hosts.sh - N fake hosts for the multinode tests: network namespaces PREFIX-h1..hN
# with addresses 10.200.0.1..N on eth0, joined by a bridge in a namespace of its own
# (PREFIX-sw), so the root namespace gets no address or route. Needs root (CAP_NET_ADMIN).
#
#   netns_hosts.sh up PREFIX N      creates them, and /etc/netns/PREFIX-h<i>/hosts naming all
#   netns_hosts.sh down PREFIX      deletes exactly these namespaces and their /etc/netns files,
#                                   after SIGKILLing any process still inside one (by pid)
#
# Notes:
# - The namespaces have no default route: nothing sent inside them leaves the machine. Never
#   probe 10.200.0.x from the root namespace (that goes to the root namespace's gateway).
# - `up` fails (exit 1, nothing left behind) where namespaces cannot be made.
set -euo pipefail

cmd=${1:-}
P=${2:-}
[ -n "$cmd" ] && [ -n "$P" ] || { echo "usage: $0 up PREFIX N | down PREFIX" >&2; exit 2; }

down() {
    local ns
    local all
    all=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$P-(sw|h[0-9]+)$" || true)
    for ns in $all; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns"
        rm -rf "/etc/netns/$ns"
    done
    rmdir /etc/netns 2>/dev/null || true
}

up() {
    local n=${1:?number of hosts} i j ns
    trap down ERR
    ip netns add "$P-sw"
    ip -n "$P-sw" link set lo up
    ip -n "$P-sw" link add br0 type bridge
    ip -n "$P-sw" link set br0 up
    for i in $(seq 1 "$n"); do
        ns=$P-h$i
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip -n "$ns" link add eth0 type veth peer name "veth$i" netns "$P-sw"
        ip -n "$P-sw" link set "veth$i" master br0 up
        ip -n "$ns" addr add "10.200.0.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        mkdir -p "/etc/netns/$ns"
        {
            echo "127.0.0.1 localhost"
            for j in $(seq 1 "$n"); do echo "10.200.0.$j $P-h$j"; done
        } > "/etc/netns/$ns/hosts"
    done
    trap - ERR
}

case "$cmd" in
up) up "${3:-3}" ;;
down) down ;;
*) echo "usage: $0 up PREFIX N | down PREFIX" >&2; exit 2 ;;
esac
