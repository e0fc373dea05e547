#!/usr/bin/env bash
# Fails if berth state leaked into this (the host's) network namespace, or
# if a test left a process, a mount or a cgroup behind: berth links,
# namespaces and nft tables; the services tests start (etcd, dockerd,
# containerd, conmon, podman, berth daemons and shims, iperf3) running
# from a test's directory; mounts under a test's directory; cgroups named
# for tests.
set -u
leaks=""
l=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(berth|bth)' || true)
[ -n "$l" ] && leaks+=" links: $l"
n=$(ip netns list 2>/dev/null | grep -E 'berth|bth' || true)
[ -n "$n" ] && leaks+=" namespaces: $n"
t=$(nft list tables 2>/dev/null | grep -i berth || true)
[ -n "$t" ] && leaks+=" nft tables: $t"
p=$(ps -eo pid=,args= 2>/dev/null | grep -E '(^| |/)(etcd|dockerd|containerd|containerd-shim[a-z0-9-]*|conmon|podman|berth|iperf3)( |$)' | grep -E '/tmp/berth-' | grep -v grep || true)
[ -n "$p" ] && leaks+=" processes: $p"
m=$(grep -E ' /tmp/berth-' /proc/mounts 2>/dev/null | awk '{print $2}' || true)
[ -n "$m" ] && leaks+=" mounts: $m"
c=$(find /sys/fs/cgroup -maxdepth 3 -type d -name 'berth-test*' 2>/dev/null || true)
[ -n "$c" ] && leaks+=" cgroups: $c"
if [ -n "$leaks" ]; then echo "berth state leaked into the host:$leaks" >&2; exit 1; fi
echo "host clean: no berth links, namespaces, nft tables, leftover test processes, mounts or cgroups"
