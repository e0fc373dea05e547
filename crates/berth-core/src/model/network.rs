//! Networks: a driver (today a Linux bridge; the overlay and macvlan
//! drivers are further variants) with at most one address block per
//! family.

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

    /// The host-side device containers of this network are attached
    /// through (the bridge), which the firewall names in its sets.
    pub fn bridge(&self) -> &str {
        match &self.driver {
            Driver::Bridge(b) => &b.name,
        }
    }

    /// Whether berth created the network's device (and may delete it).
    pub fn owns_bridge(&self) -> bool {
        match &self.driver {
            Driver::Bridge(b) => b.owned,
        }
    }
}
