//! Networks: a bridge (later also an overlay) with one or more subnets.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Name of the network the daemon creates at start (Docker's `bridge`).
pub const DEFAULT_NETWORK: &str = "berth0";
/// `--network bridge` means the default network, as in Docker.
pub const DEFAULT_NETWORK_ALIAS: &str = "bridge";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
}

impl Driver {
    pub fn as_str(&self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
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
    pub ipam: Vec<IpamConfig>,
    pub internal: bool,
    pub mtu: u32,
    pub options: NetworkOptions,
    /// The options exactly as the user gave them, shown by `inspect`.
    pub raw_options: BTreeMap<String, String>,
    /// Name of the Linux bridge device.
    pub bridge: String,
    /// False when the bridge existed before berth (e.g. `--bridge br0` with a
    /// NIC enslaved): berth then never deletes it.
    pub bridge_owned: bool,
    /// Seconds since the epoch.
    pub created: u64,
    /// The daemon's default network (`berth0`): cannot be removed.
    pub predefined: bool,
}

impl Network {
    /// The first IPv4 block, which is what containers' `eth` addresses come from.
    pub fn ipv4(&self) -> Option<&IpamConfig> {
        self.ipam.iter().find(|c| c.subnet.addr().is_ipv4())
    }
}
