//! berth as a CNI plugin, the pure part: parsing what a runtime hands the
//! plugin (the configuration on stdin, the `CNI_*` environment, `CNI_ARGS`),
//! turning it into berth requests, and writing results and errors in the
//! version the runtime asked for. The binary (`crates/berth/src/cni/`) only
//! reads stdin and the environment, execs delegated IPAM plugins and makes
//! the one request to the daemon.
//!
//! Spec: CNI 1.1.0 (and 0.3.0, 0.3.1, 0.4.0, 1.0.0 for their results).

mod config;
mod env;
mod error;
mod plan;
mod result;

pub use config::{parse_config, DnsConf, IpRange, Ipam, PluginConfig, PortMapping, RuntimeConfig};
pub use env::{parse_cni_args, validate_container_id, validate_ifname, CniArgs, Command};
pub use error::{code, CniError};
pub use plan::{attach_body, container_name, labels, network_create_body, publish_specs, result_from_endpoints, Attachment, LABEL_CONTAINER_ID, LABEL_IFNAME, LABEL_NETWORK, LABEL_NETNS};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};

/// The versions berth speaks, oldest first. 0.1.0 and 0.2.0 (results with
/// `ip4`/`ip6`) are not among them: no runtime of this decade sends them.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version, used to label answers when the input names none.
pub const CURRENT_VERSION: &str = "1.1.0";

/// A spec version berth speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V030,
    V031,
    V040,
    V100,
    V110,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        Some(match s {
            "0.3.0" => Version::V030,
            "0.3.1" => Version::V031,
            "0.4.0" => Version::V040,
            "1.0.0" => Version::V100,
            "1.1.0" => Version::V110,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Version::V030 => "0.3.0",
            Version::V031 => "0.3.1",
            Version::V040 => "0.4.0",
            Version::V100 => "1.0.0",
            Version::V110 => "1.1.0",
        }
    }

    /// 0.3.x and 0.4.0 results carry `ips[].version`; 1.0 dropped it.
    pub fn is_0x(&self) -> bool {
        *self < Version::V100
    }
}

/// The answer to VERSION: never fails, needs nothing but the version the
/// runtime named (echoed when berth speaks it, as the spec's example does).
pub fn version_answer(stdin: &[u8]) -> serde_json::Value {
    let asked = serde_json::from_slice::<serde_json::Value>(stdin).ok().and_then(|v| v.get("cniVersion").and_then(|s| s.as_str()).map(str::to_string));
    let label = asked.filter(|a| Version::parse(a).is_some()).unwrap_or_else(|| CURRENT_VERSION.to_string());
    serde_json::json!({"cniVersion": label, "supportedVersions": SUPPORTED_VERSIONS})
}

#[cfg(test)]
mod tests;
