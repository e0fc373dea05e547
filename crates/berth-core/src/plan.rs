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

/// Host end of an endpoint's veth pair: `bthv` and 11 hex digits of its id.
pub fn veth_name(endpoint_id: &str) -> String {
    format!("bthv{}", &endpoint_id[..11.min(endpoint_id.len())])
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
    /// The bridge the host end is a port of.
    pub fn bridge(&self) -> &str {
        match &self.port {
            PortPlan::BridgePort { bridge, .. } => bridge,
        }
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
    fn mac_from_ipv4() {
        assert_eq!(mac_for("172.17.0.2".parse().unwrap(), ""), "02:42:ac:11:00:02");
    }

    #[test]
    fn ifnames() {
        assert_eq!(next_ifname(["eth0", "eth2"].into_iter()), "eth1");
        assert_eq!(next_ifname(std::iter::empty()), "eth0");
    }
}
