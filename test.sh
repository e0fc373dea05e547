#!/usr/bin/env bash
# Runs berth's whole test suite (as root on Debian/Ubuntu). Unit tests need
# nothing; root tests each run in their own network namespace and need the
# packages below. Afterwards the host must show no berth links, namespaces
# or nft tables: the check at the end fails the run otherwise.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then echo "test.sh: run as root (root tests create namespaces)" >&2; exit 1; fi
./scripts/deps.sh nftables iproute2 socat iputils-ping conntrack procps iperf3 dnsutils ca-certificates tcpdump curl
# The real programs berth serves and is tested against: podman (with runc
# and conmon), dockerd, containerd, the CNI reference plugins, netavark, a
# busybox tree for their containers, and etcd (with protoc and the protobuf
# well-known types, which the etcd client's build needs).
./scripts/deps.sh podman runc conmon docker.io containerd containernetworking-plugins netavark busybox-static \
  etcd-server etcd-client protobuf-compiler libprotobuf-dev
command -v cargo >/dev/null 2>&1 || ./scripts/deps.sh cargo
cargo test --workspace --locked -- --test-threads "${BERTH_TEST_THREADS:-4}"
./scripts/check-host-clean.sh
