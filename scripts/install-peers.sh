#!/usr/bin/env bash
# scripts/install-peers.sh: installs the engines `berth bench` compares berth
# with (run as root, Debian/Ubuntu):
#   netavark                      /usr/lib/podman/netavark
#   containernetworking-plugins   /usr/lib/cni/{bridge,host-local,portmap}
#   docker.io                     only for its standalone docker-proxy binary
#   iperf3, jq
# Only missing packages are installed (scripts/deps.sh). docker.io's (and
# containerd's) maintainer scripts would start dockerd/containerd, which would
# change the host's network (docker0, iptables chains): a temporary
# policy-rc.d forbids service starts during the install, and a daemon that got
# started anyway (one that was not running before) is stopped afterwards.
# After installing, `berth bench` prints the peers' figures beside berth's.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers.sh: run as root" >&2
  exit 1
fi
here=$(cd "$(dirname "$0")" && pwd)

running() { pgrep -x "$1" >/dev/null 2>&1; }
dockerd_before=0; containerd_before=0
running dockerd && dockerd_before=1
running containerd && containerd_before=1

policy=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
  if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary, from berth scripts/install-peers.sh: no service starts\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  made_policy=1
fi

"$here/deps.sh" netavark containernetworking-plugins docker.io iperf3 jq

# Stop the daemons the packages may have started (only those that were not
# running before), by process id.
stop() {
  local name=$1 pids p i
  pids=$(pgrep -x "$name" || true)
  [ -z "$pids" ] && return 0
  echo "stopping $name started by the package install (pid $(echo $pids))"
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 50); do
    running "$name" || return 0
    sleep 0.2
  done
  for p in $(pgrep -x "$name" || true); do kill -KILL "$p" 2>/dev/null || true; done
}
[ "$dockerd_before" = 0 ] && stop dockerd
[ "$containerd_before" = 0 ] && stop containerd

# Where the peers are; berth bench looks in the same places.
proxy=$(dpkg -L docker.io 2>/dev/null | grep -E '/docker-proxy$' | head -1 || true)
echo "netavark:     /usr/lib/podman/netavark ($(/usr/lib/podman/netavark --version 2>/dev/null || echo missing))"
echo "CNI plugins:  /usr/lib/cni ($(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo missing))"
echo "docker-proxy: ${proxy:-missing} (docker.io $(dpkg-query -W -f='${Version}' docker.io 2>/dev/null || echo missing))"
echo "iperf3:       $(command -v iperf3 || echo missing)"
