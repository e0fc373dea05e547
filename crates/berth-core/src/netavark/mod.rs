//! berth as podman's network backend, the pure part: netavark's JSON as
//! podman 4.3 sends it (and netavark 2.x's additions), checked field by
//! field into what berth does with it, and berth's answers written back in
//! netavark's shapes. The binary (`crates/berth/src/netavark/`) only reads
//! the input, makes the daemon requests planned here and prints the result.
//!
//! - [`Input`]: stdin of `setup` and `teardown` (netavark's `NetworkOptions`):
//!   the container, its port mappings and, per network, the per-container
//!   options (`networks`, a map or a list) and the full network
//!   (`network_info`, podman's network file).
//! - `plan`: every field checked; a [`SetupPlan`] of berth requests, or a
//!   [`Refusal`] naming what berth cannot honour.
//! - `status`: the StatusBlock answer, and the decisions that need the
//!   daemon's view (an existing network or container).
//! - `create`: `netavark create` (podman 5+), completing a network definition.
//!
//! Unknown fields are refused: a field berth does not know is one it cannot
//! honour, and a silently different network is worse than an error.

pub mod create;
mod fuzz;
mod plan;
mod status;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

pub use fuzz::fuzz_one;
pub use plan::{check_netns_path, plan_setup, publish_specs, NetPlan, SetupPlan, Subnet as PlannedSubnet};
pub use status::{
    check_network, existing_container, facts_from_endpoints, facts_from_inspect, status_block, teardown_plan, Existing, Facts, NetworkMatch,
    Teardown,
};

/// Label of a berth container set up for podman: podman's container id.
pub const LABEL_CONTAINER_ID: &str = "podman.containerID";
/// The search domain podman's containers get on networks with DNS
/// (aardvark-dns's); berth's resolver answers `NAME.dns.podman` as `NAME`.
pub const SEARCH_DOMAIN: &str = "dns.podman";
/// The netavark release whose contract berth speaks (Debian 12's, podman 4.3's).
pub const NETAVARK_VERSION: &str = "1.4.0";

/// netavark's error answer: `{"error": MESSAGE}` on stdout and exit status
/// 1 (podman then prints `Error: netavark: MESSAGE`). Data on the wire,
/// like the CNI error object, not a Rust error enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<crate::CoreError> for Refusal {
    fn from(e: crate::CoreError) -> Self {
        Refusal(e.to_string())
    }
}

impl Refusal {
    /// The JSON podman reads.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": self.0})
    }
}

pub fn refuse<T>(msg: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(msg.into()))
}

/// stdin of `setup` and `teardown`: netavark's `NetworkOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub container_id: String,
    pub container_name: String,
    /// netavark 2.x, for DHCP leases only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// A map name → options (podman 4.3) or a list of `{"name", ...}` (5+), in the order given.
    #[serde(deserialize_with = "map_or_list")]
    pub networks: Vec<NamedPerNetwork>,
    pub network_info: BTreeMap<String, NetInfo>,
    /// The container's own DNS servers (its resolver's upstreams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_servers: Option<Vec<IpAddr>>,
}

/// A network as podman defines it (`network_info` values; the same shape
/// as podman's `NETWORK_CONFIG_DIR/NAME.json` and `netavark create`'s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetInfo {
    pub name: String,
    pub id: String,
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface: Option<String>,
    /// RFC 3339; metadata, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<Subnet>>,
    pub ipv6_enabled: bool,
    pub internal: bool,
    pub dns_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam_options: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_dns_servers: Option<Vec<IpAddr>>,
    /// Metadata (`podman network create --label`), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub subnet: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// `--ip-range`: where podman's own IPAM picks addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_range: Option<LeaseRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ip: Option<IpAddr>,
}

/// netavark 2.x: a static route in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_type: Option<String>,
}

/// One `-p` as podman sends it: host ports `host_port..host_port+range`
/// to container ports `container_port..` (podman merges adjacent `-p`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// "" means every host address.
    pub host_ip: String,
    pub container_port: u16,
    pub host_port: u16,
    pub range: u16,
    /// `tcp`, `udp`, or several joined by commas.
    pub protocol: String,
}

/// The per-container options of one network (`networks` values).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerNetwork {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_ips: Option<Vec<IpAddr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_mac: Option<String>,
    pub interface_name: String,
    /// netavark 2.x: driver options per container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// `networks` in its list form (podman 5+): the name beside the options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPerNetwork {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_ips: Option<Vec<IpAddr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_mac: Option<String>,
    pub interface_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

impl NamedPerNetwork {
    fn named(name: String, p: PerNetwork) -> Self {
        NamedPerNetwork { name, static_ips: p.static_ips, aliases: p.aliases, static_mac: p.static_mac, interface_name: p.interface_name, options: p.options }
    }
}

/// `networks` as a map (podman 4.3) or a list (podman 5+), in the order
/// given; a network named twice is refused rather than one of them dropped.
fn map_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NamedPerNetwork>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<NamedPerNetwork>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of network options or a list of them")
        }
        fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
            let mut out: Vec<NamedPerNetwork> = Vec::new();
            while let Some((name, opts)) = m.next_entry::<String, PerNetwork>()? {
                if out.iter().any(|n| n.name == name) {
                    return Err(de::Error::custom(format!("network {name} is given twice")));
                }
                out.push(NamedPerNetwork::named(name, opts));
            }
            Ok(out)
        }
        fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Self::Value, S::Error> {
            let mut out: Vec<NamedPerNetwork> = Vec::new();
            while let Some(n) = s.next_element::<NamedPerNetwork>()? {
                if out.iter().any(|o| o.name == n.name) {
                    return Err(de::Error::custom(format!("network {} is given twice", n.name)));
                }
                out.push(n);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// Parses stdin of `setup`/`teardown`, with netavark's wording for a
/// document that is not one.
pub fn parse_input(bytes: &[u8]) -> Result<Input, Refusal> {
    serde_json::from_slice(bytes).map_err(|e| Refusal(format!("failed to load network options: {e}")))
}

/// `version` (netavark's shape; `default_fw_driver` as 2.x has it).
pub fn version_json(berth_version: &str) -> serde_json::Value {
    serde_json::json!({
        "version": NETAVARK_VERSION,
        "commit": format!("berth {berth_version}"),
        "build_time": "",
        "target": format!("{}-unknown-linux-gnu", std::env::consts::ARCH),
        "default_fw_driver": "berth",
    })
}

#[cfg(test)]
mod tests;
