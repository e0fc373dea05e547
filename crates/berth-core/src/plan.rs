//! The planner: from the model to the kernel objects we want.
//!
//! These small value types are what the Linux shell is asked to make real;
//! the reconciler compares them with what the kernel has.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::IpamConfig;

/// Interface alias (`ip link set DEV alias berth`) that marks a link as
/// berth's: the reconciler only ever deletes links carrying it.
pub const OWNER_ALIAS: &str = "berth";

/// Bridge device of a user-defined network: `bth-` and 10 hex digits of its id
/// (15 bytes is the kernel's limit).
pub fn bridge_name(network_id: &str) -> String {
    format!("bth-{}", &network_id[..10.min(network_id.len())])
}

/// VXLAN device of an overlay network on every host: `btx-` and the same
/// 10 hex digits as its bridge.
pub fn tunnel_name(network_id: &str) -> String {
    format!("btx-{}", &network_id[..10.min(network_id.len())])
}

/// The MAC of a host's VXLAN device on one overlay network, derived from
/// the network's id and the host's name (FNV-1a), so every other host can
/// compute it without asking: the neighbour entry that sends a remote
/// block's traffic to that host's device needs it. Locally administered,
/// unicast.
pub fn vtep_mac(network_id: &str, node: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in network_id.bytes().chain([0u8]).chain(node.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    format!("02:b7:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// Host end of an endpoint's veth pair: `bthv` and 11 hex digits of its id.
pub fn veth_name(endpoint_id: &str) -> String {
    format!("bthv{}", &endpoint_id[..11.min(endpoint_id.len())])
}

/// The container's end of a veth pair a runtime moves into its namespace
/// itself (dockerd, for a plugin's endpoint): made in the host's
/// namespace as `bthc` + the host end's digits, renamed by the runtime.
pub fn handoff_name(host_ifname: &str) -> String {
    format!("bthc{}", host_ifname.strip_prefix("bthv").unwrap_or(host_ifname))
}

/// A MAC derived from the IPv4 address (02:42 + the four address bytes, as
/// Docker did): when an address is reused, neighbours' ARP entries stay
/// right. IPv6-only endpoints take theirs from the endpoint id.
pub fn mac_for(ip: IpAddr, endpoint_id: &str) -> String {
    let bytes: [u8; 4] = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => {
            let h = endpoint_id.as_bytes();
            let hx = |i: usize| u8::from_str_radix(std::str::from_utf8(&h[i..i + 2]).unwrap_or("00"), 16).unwrap_or(0);
            [hx(0), hx(2), hx(4), hx(6)]
        }
    };
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2], bytes[3])
}

/// A fixed MAC for a bridge, derived from its network's id. A bridge without
/// one takes the lowest MAC of its ports and recomputes that (walking every
/// port) each time a port comes or goes: with a fixed address, adding the
/// 1000th container costs what adding the first did.
pub fn bridge_mac(network_id: &str) -> String {
    let h = network_id.as_bytes();
    let hx = |i: usize| h.get(i..i + 2).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| u8::from_str_radix(s, 16).ok()).unwrap_or(0);
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", hx(0) | 0x80, hx(2), hx(4), hx(6))
}

/// The kernel objects a network needs on this host, made by its driver's
/// planner (`crate::driver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkPlan {
    Bridge(BridgePlan),
    /// The host's bridge of an overlay network and its VXLAN device.
    Overlay(OverlayPlan),
    /// Nothing on the host: a macvlan network's interfaces are made per
    /// endpoint, on the parent interface.
    Macvlan { parent: String },
}

/// One host's part of an overlay network. The bridge carries the
/// network's gateway with the whole subnet's prefix (every host has the
/// same gateway, as in Docker) and answers ARP for addresses routed
/// through the tunnel (`proxy_arp`), so containers reach other hosts'
/// containers as if they were on their own segment. The VXLAN device is
/// a routed (L3) device, not a bridge port: traffic for another host's
/// address block is routed to it (see [`TunnelPeers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayPlan {
    pub bridge: BridgePlan,
    /// None until the host knows its tunnel address (`--cluster-advertise`).
    pub tunnel: Option<TunnelPlan>,
}

/// `ip link add NAME address MAC mtu M type vxlan id VNI local ADDR dev DEV
/// dstport PORT nolearning noproxy nol2miss nol3miss; ip addr add HOST/32
/// dev NAME; ip link set NAME up`. Learning is off: every remote MAC the
/// device sends to is one of the static entries berth writes (one per
/// remote host), so nothing on the wire can redirect traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPlan {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// This host's underlay address (`--cluster-advertise`).
    pub local: IpAddr,
    /// The underlay interface holding `local`.
    pub dev: String,
    pub mac: String,
    pub mtu: u32,
    /// This host's own address on the overlay (the first of its first
    /// block), so that the host's own packets to other hosts' containers
    /// have a source those hosts route back here.
    pub host_addr: Option<IpAddr>,
}

/// What sends an overlay's traffic to the other hosts, per remote host
/// (flannel's layout): `bridge fdb replace MAC dev TUNNEL dst VTEP self
/// permanent`, `ip neigh replace VTEP lladdr MAC dev TUNNEL nud permanent`
/// and, per block the host holds, `ip route replace BLOCK via VTEP dev
/// TUNNEL onlink src HOST_ADDR`. Three entries per remote host and one per
/// extra block: it grows with hosts, never with containers, and a
/// container start on another host changes nothing here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelPeers {
    pub tunnel: String,
    /// Source hint of the routes (this host's overlay address).
    pub src: Option<IpAddr>,
    pub peers: Vec<TunnelPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TunnelPeer {
    /// The remote host's underlay address.
    pub vtep: IpAddr,
    /// The MAC of its VXLAN device on this network ([`vtep_mac`]).
    pub mac: String,
    /// Its address blocks of this network.
    pub blocks: Vec<IpNet>,
}

/// A bridge we want: `ip link add NAME address MAC type bridge; ip addr add
/// ADDR dev NAME nodad; ip link set NAME mtu M up` (IPv6 on the bridge only
/// when the network has an IPv6 block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePlan {
    pub name: String,
    pub mac: String,
    /// Gateway addresses with the subnet's prefix, e.g. 172.17.0.1/16 and fd00::1/64.
    pub addresses: Vec<IpNet>,
    pub mtu: u32,
    /// Only owned bridges are created, configured and deleted by berth.
    pub owned: bool,
}

pub fn gateway_cidr(c: &IpamConfig) -> IpNet {
    IpNet::new(c.gateway, c.subnet.prefix_len()).expect("prefix checked at validation")
}

/// How an endpoint's host side is attached to its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortPlan {
    /// A veth pair whose host end is a port of `bridge`:
    /// `ip link add HOST address HOST_MAC master BRIDGE type veth peer ...`.
    /// The host end carries the bridge's own MAC, the same for every port
    /// of a network: it is a bridge port only (no address, no IPv6), so
    /// its MAC is never on the wire; and the bridge keeps one local
    /// forwarding entry per distinct port MAC, which it walks whenever a
    /// port is added (`br_fdb_unsync_static`): with one shared MAC that
    /// walk stays one entry long however many containers there are.
    BridgePort { bridge: String, host_mac: String },
    /// No host end: the container's interface is a macvlan child of
    /// `parent` in bridge mode, made directly inside the container's
    /// namespace under its final name: `ip link add link PARENT name
    /// IFNAME netns NS address MAC type macvlan mode bridge`.
    Macvlan { parent: String },
}

/// A container's end of a network:
/// `ip link add HOST type veth peer name IFNAME netns NS address MAC;
///  ip link set HOST up; ip -n NS addr add ADDR dev IFNAME nodad (each
///  family); ip -n NS link set IFNAME up; ip -n NS route add default via GW
///  (and ip -6 ... via GW6)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPlan {
    pub host_ifname: String,
    pub ifname: String,
    pub mac: String,
    /// One per family of the network.
    pub addresses: Vec<IpNet>,
    /// Default routes via these gateways (only the first network with a
    /// gateway of a family gives the container its default route of it).
    pub default_gateways: Vec<IpAddr>,
    pub mtu: u32,
    pub port: PortPlan,
}

impl EndpointPlan {
    /// The bridge the host end is a port of (a macvlan endpoint's parent).
    pub fn bridge(&self) -> &str {
        match &self.port {
            PortPlan::BridgePort { bridge, .. } => bridge,
            PortPlan::Macvlan { parent } => parent,
        }
    }

    /// Whether the endpoint's interface lives only in the container (a
    /// macvlan child): it is removed there, not through a host end.
    pub fn in_container_only(&self) -> bool {
        matches!(self.port, PortPlan::Macvlan { .. })
    }

    /// Whether the container's end needs IPv6 (an IPv6 address to carry).
    pub fn has_ipv6(&self) -> bool {
        self.addresses.iter().any(|a| a.addr().is_ipv6())
    }
}

/// The next free `ethN` name in a container.
pub fn next_ifname<'a>(taken: impl Iterator<Item = &'a str>) -> String {
    let taken: Vec<&str> = taken.collect();
    (0..).map(|i| format!("eth{i}")).find(|n| !taken.contains(&n.as_str())).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(bridge_name(&id), "bth-0123456789");
        assert_eq!(veth_name(&id), "bthv0123456789a");
        assert!(veth_name(&id).len() <= 15 && bridge_name(&id).len() <= 15);
    }

    #[test]
    fn vtep_macs_differ_per_host_and_network() {
        let a = vtep_mac("0123456789", "host-a");
        assert_eq!(a, vtep_mac("0123456789", "host-a"));
        assert_ne!(a, vtep_mac("0123456789", "host-b"));
        assert_ne!(a, vtep_mac("0123456780", "host-a"));
        assert!(a.starts_with("02:b7:") && a.len() == 17, "{a}");
        assert_eq!(tunnel_name(&"ab".repeat(32)), "btx-ababababab");
    }

    #[test]
    fn mac_from_ipv4() {
        assert_eq!(mac_for("172.17.0.2".parse().unwrap(), ""), "02:42:ac:11:00:02");
    }

    #[test]
    fn ifnames() {
        assert_eq!(next_ifname(["eth0", "eth2"].into_iter()), "eth1");
        assert_eq!(next_ifname(std::iter::empty()), "eth0");
    }
}
