#!/usr/bin/env bash
# Installs what berth needs on Debian/Ubuntu (as root), builds it and puts
# the binary in /usr/local/bin. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then echo "install.sh: run as root (berth manages bridges, namespaces and nftables)" >&2; exit 1; fi
# Runtime: nftables (the nft program), iproute2, socat and ping (used by
# `berth demo`), conntrack (inspecting NAT state), procps.
./scripts/deps.sh nftables iproute2 socat iputils-ping conntrack procps ca-certificates
if ! command -v cargo >/dev/null 2>&1; then
  ./scripts/deps.sh cargo
fi
cargo build --release --locked -p berth
install -m 0755 target/release/berth /usr/local/bin/berth
echo "installed $(/usr/local/bin/berth --version) to /usr/local/bin/berth"
