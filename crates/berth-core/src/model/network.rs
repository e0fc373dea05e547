//! Networks: a driver (a Linux bridge on this host, an overlay spanning
//! hosts, or macvlan on a host interface) with at most one address block
//! per family.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Name of the network the daemon creates at start (Docker's `bridge`).
pub const DEFAULT_NETWORK: &str = "berth0";
/// `--network bridge` means the default network, as in Docker.
pub const DEFAULT_NETWORK_ALIAS: &str = "bridge";

/// What kind of network this is, with what only that kind has. Each
/// variant has its own planner (`crate::driver`): a new kind of network is
/// a new variant and a new planner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Driver {
    /// A Linux bridge on this host (Docker's `bridge` driver).
    Bridge(BridgeDriver),
    /// One network over many hosts: a bridge on each host, joined to the
    /// other hosts' bridges by routes through a VXLAN device (Docker's
    /// `overlay` driver; see `crate::driver::overlay`).
    Overlay(OverlayDriver),
    /// Containers as MAC addresses of their own on a host interface, on
    /// the LAN that interface is on (Docker's `macvlan` driver, bridge mode).
    Macvlan(MacvlanDriver),
}

/// What an overlay network is, the same on every host (kept in the cluster
/// store), plus this host's part of it (`vtep`, never sent to the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayDriver {
    /// The bridge on each host (`bth-` and 10 hex digits of the id).
    pub bridge: String,
    /// The VXLAN device on each host (`btx-` and 10 hex digits of the id).
    pub tunnel: String,
    /// The VXLAN network identifier (24 bits), unique in the cluster.
    pub vni: u32,
    /// UDP port of the VXLAN packets between hosts (IANA's 4789 by default).
    pub port: u16,
    /// Prefix length of the address blocks hosts lease (`-o host_block=24`).
    pub host_prefix: u8,
    /// `--mtu` as given; None: each host takes its underlay's MTU − 50.
    pub user_mtu: Option<u32>,
    /// This host's tunnel endpoint, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep: Option<Vtep>,
}

/// This host's end of an overlay's tunnels: the address VXLAN packets are
/// sent from (`--cluster-advertise`) and the interface holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vtep {
    pub addr: IpAddr,
    pub dev: String,
    /// This host's name in the cluster (the MAC of its VXLAN device derives from it).
    pub node: String,
}

/// A macvlan network: containers' interfaces are macvlan children of
/// `parent` in bridge mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacvlanDriver {
    /// The host interface (on every host, for a global network).
    pub parent: String,
    /// Global networks: prefix of the address slices hosts lease (0: local network).
    #[serde(default)]
    pub host_prefix: u8,
}

/// The bridge of a bridge network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeDriver {
    /// Name of the Linux bridge device.
    pub name: String,
    /// False when the bridge existed before berth (e.g. `--bridge br0` with
    /// a NIC enslaved): berth then never creates, reconfigures or deletes it.
    pub owned: bool,
}

impl Driver {
    /// Docker's driver name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Driver::Bridge(_) => "bridge",
            Driver::Overlay(_) => "overlay",
            Driver::Macvlan(_) => "macvlan",
        }
    }
}

/// One address block of a network. `ip_range` is the part of the subnet
/// containers are given addresses from (Docker's `--ip-range`/`fixed-cidr`);
/// a per-host slice of a shared subnet is just a narrower `ip_range`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    pub subnet: IpNet,
    pub gateway: IpAddr,
    pub ip_range: Option<IpNet>,
    /// True when the user chose the subnet (Docker only allows `--ip` then).
    pub user_subnet: bool,
}

impl IpamConfig {
    /// The block addresses are allocated from.
    pub fn pool(&self) -> IpNet {
        self.ip_range.unwrap_or(self.subnet)
    }

    pub fn is_ipv6(&self) -> bool {
        self.subnet.addr().is_ipv6()
    }
}

/// Typed network options (`-o KEY=VALUE`); parsed once, never looked up by
/// string afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOptions {
    /// Inter-container communication on this network.
    pub icc: bool,
    /// Masquerade traffic that leaves the network for anywhere else.
    pub masquerade: bool,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions { icc: true, masquerade: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: Driver,
    /// Address blocks: at most one per family, IPv4 first. An IPv6-only
    /// network has only an IPv6 one.
    pub ipam: Vec<IpamConfig>,
    pub internal: bool,
    pub mtu: u32,
    pub options: NetworkOptions,
    /// The options exactly as the user gave them, shown by `inspect`.
    pub raw_options: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// The daemon's default network (`berth0`): cannot be removed.
    pub predefined: bool,
    /// Defined in the cluster store, seen by every host (Docker's scope
    /// `global`/`swarm`); false: this host's own (`local`).
    #[serde(default)]
    pub global: bool,
    /// Global networks: the address blocks this host holds (leased in the
    /// cluster store); its containers get addresses from these only, so no
    /// two hosts hand out the same one and none waits on the store for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<IpNet>,
}

impl Network {
    /// The IPv4 block, if the network has one.
    pub fn ipv4(&self) -> Option<&IpamConfig> {
        self.ipam.iter().find(|c| !c.is_ipv6())
    }

    /// The IPv6 block, if the network has one (Docker's `EnableIPv6`).
    pub fn ipv6(&self) -> Option<&IpamConfig> {
        self.ipam.iter().find(|c| c.is_ipv6())
    }

    /// The block of the family of `ip`.
    pub fn ipam_for(&self, ip: IpAddr) -> Option<&IpamConfig> {
        self.ipam.iter().find(|c| c.is_ipv6() == ip.is_ipv6())
    }

    /// Upstream servers of the network's resolver (`-o dns_servers=A,B`,
    /// checked when set; changed by `POST /networks/NAME/dns`); empty:
    /// the host's. Kept as the option text so `inspect` shows it as set.
    pub fn dns_servers(&self) -> Vec<IpAddr> {
        self.raw_options.get("dns_servers").map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect()).unwrap_or_default()
    }

    /// The host-side device containers of this network are attached
    /// through, which the firewall names in its sets: the bridge (of a
    /// bridge or overlay network) or the parent interface (macvlan).
    pub fn bridge(&self) -> &str {
        match &self.driver {
            Driver::Bridge(b) => &b.name,
            Driver::Overlay(o) => &o.bridge,
            Driver::Macvlan(m) => &m.parent,
        }
    }

    /// Whether the host has a bridge of this network (bridge and overlay
    /// networks; a macvlan network has none: its containers are on the LAN).
    pub fn has_bridge(&self) -> bool {
        !matches!(self.driver, Driver::Macvlan(_))
    }

    /// Whether berth created the network's device (and may delete it).
    pub fn owns_bridge(&self) -> bool {
        match &self.driver {
            Driver::Bridge(b) => b.owned,
            Driver::Overlay(_) => true,
            Driver::Macvlan(_) => false,
        }
    }

    /// The overlay's VXLAN device, for an overlay network.
    pub fn tunnel(&self) -> Option<&str> {
        match &self.driver {
            Driver::Overlay(o) => Some(&o.tunnel),
            _ => None,
        }
    }

    /// `local` or `global`, as `network ls` shows it.
    pub fn scope(&self) -> &'static str {
        if self.global {
            "global"
        } else {
            "local"
        }
    }
}
