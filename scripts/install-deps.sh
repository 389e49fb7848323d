#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages dragonx builds and tests with.
# Idempotent and quiet: prints nothing and touches nothing when everything is there.
# Needs root (or sudo) only when something is missing.
#
#   scripts/install-deps.sh              what the build and the default tests need
#   scripts/install-deps.sh multinode    also what the `multinode` test suite needs: a real
#                                        local Slurm cluster (slurmctld, slurmd, munge) and the
#                                        tools for network namespaces (iproute2, util-linux)
set -euo pipefail

packages=(
    g++ meson ninja-build pkg-config
    libfabric-dev libfabric-bin libasio-dev libspdlog-dev libfmt-dev libcli11-dev
    nlohmann-json3-dev libxxhash-dev libssl-dev catch2
    redis-server redis-tools
    mpich libmpich-dev
)
case "${1:-}" in
"") ;;
multinode) packages+=(slurmctld slurmd slurm-client munge iproute2 util-linux) ;;
*)
    echo "usage: scripts/install-deps.sh [multinode]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
