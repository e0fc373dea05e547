#!/usr/bin/env bash
# Installs what berth needs on Debian/Ubuntu (as root), builds it and puts
# the binary in /usr/local/bin, with the links other programs exec it by:
# /usr/local/libexec/berth/netavark (podman's network backend) and
# /opt/cni/bin/berth, /usr/lib/cni/berth (the CNI plugin). Safe to run again.
#
#   ./install.sh            install
#   ./install.sh --podman   also make podman use berth as its network backend
#                           (a drop-in in /etc/containers/containers.conf.d;
#                           your other podman settings are left alone)
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then echo "install.sh: run as root (berth manages bridges, namespaces and nftables)" >&2; exit 1; fi
podman=0
for a in "$@"; do
  case "$a" in
    --podman) podman=1 ;;
    *) echo "install.sh: unknown option $a (known: --podman)" >&2; exit 2 ;;
  esac
done
# Runtime: nftables (the nft program), iproute2, socat and ping (used by
# `berth demo`), conntrack (inspecting NAT state), procps; etcd for the
# demo's hosts sharing an overlay (berth itself only needs an etcd
# somewhere it can reach). Build: protoc and the protobuf well-known types
# (the etcd client's protos are compiled at build time).
./scripts/deps.sh nftables iproute2 socat iputils-ping conntrack procps ca-certificates etcd-server protobuf-compiler libprotobuf-dev
if ! command -v cargo >/dev/null 2>&1; then
  ./scripts/deps.sh cargo
fi
cargo build --release --locked -p berth
install -m 0755 target/release/berth /usr/local/bin/berth
install -d /usr/local/libexec/berth /opt/cni/bin /usr/lib/cni
ln -sfn /usr/local/bin/berth /usr/local/libexec/berth/netavark
ln -sfn /usr/local/bin/berth /opt/cni/bin/berth
ln -sfn /usr/local/bin/berth /usr/lib/cni/berth
echo "installed $(/usr/local/bin/berth --version) to /usr/local/bin/berth (and as netavark and a CNI plugin)"
if [ "$podman" = 1 ]; then
  install -d /etc/containers/containers.conf.d
  cat > /etc/containers/containers.conf.d/50-berth.conf <<'CONF'
# Written by berth's install.sh --podman: podman's network backend is berth
# (in netavark's place). Remove this file to go back to netavark.
[network]
network_backend = "netavark"

[engine]
helper_binaries_dir = ["/usr/local/libexec/berth", "/usr/local/libexec/podman", "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman"]
CONF
  echo "podman now uses berth as its network backend (/etc/containers/containers.conf.d/50-berth.conf)"
fi
