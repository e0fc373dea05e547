//! Bodies of `run`, `attach` and `network connect`, and the small parsers
//! they share (links, environment, static addresses).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{Link, Network};
use crate::names::validate_name;
use crate::{CoreError, Result};

/// `POST /containers/run`: create and start a container (`berth run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RunRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub network: Option<String>,
    /// `--ip`: a static IPv4 address.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// `--ip6`: a static IPv6 address.
    #[serde(default)]
    pub ip6: Option<IpAddr>,
    #[serde(default)]
    pub network_aliases: Vec<String>,
    #[serde(default)]
    pub expose: Vec<String>,
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub publish_all: bool,
    #[serde(default)]
    pub links: Vec<String>,
    #[serde(default)]
    pub link_env: bool,
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    #[serde(default)]
    pub env: Vec<String>,
    pub cmd: Vec<String>,
}

/// `POST /containers/attach`: network a namespace someone else made. One
/// network with the flat fields, or several with `Networks` (what a
/// runtime that sets up all of a container's networks at once needs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct AttachRequest {
    pub netns: String,
    pub name: String,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub ip: Option<IpAddr>,
    #[serde(default)]
    pub ip6: Option<IpAddr>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ifname: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub networks: Vec<AttachNetwork>,
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub expose: Vec<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Upstream servers for the container's names lookups (its resolver
    /// forwards to these rather than the network's or the host's).
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// The caller holds the published host ports itself (podman does).
    #[serde(default)]
    pub ports_reserved: bool,
    /// The runtime moves the container's end of each veth pair into its
    /// namespace and configures it there (addresses, up, default route):
    /// dockerd does, for a plugin's endpoint, after the plugin's Join.
    /// berth makes the pair in its own namespace (the container's end as
    /// `plan::handoff_name`) and adds no address or route inside; `Netns`
    /// need not be a namespace yet (dockerd mounts it later).
    #[serde(default)]
    pub handoff: bool,
}

/// One network of an attach request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct AttachNetwork {
    pub network: String,
    #[serde(default)]
    pub ip: Option<IpAddr>,
    #[serde(default)]
    pub ip6: Option<IpAddr>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ifname: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl AttachRequest {
    /// The networks asked for: `Networks`, or the one the flat fields
    /// name (the default network when none is named).
    pub fn networks(&self) -> Vec<AttachNetwork> {
        if !self.networks.is_empty() {
            return self.networks.clone();
        }
        vec![AttachNetwork {
            network: self.network.clone().unwrap_or_else(|| crate::model::DEFAULT_NETWORK.to_string()),
            ip: self.ip,
            ip6: self.ip6,
            mac: self.mac.clone(),
            ifname: self.ifname.clone(),
            aliases: self.aliases.clone(),
        }]
    }

    /// The flat fields and `Networks` together are ambiguous.
    pub fn check_shape(&self) -> Result<()> {
        let flat = self.network.is_some() || self.ip.is_some() || self.ip6.is_some() || self.mac.is_some() || self.ifname.is_some() || !self.aliases.is_empty();
        if flat && !self.networks.is_empty() {
            return Err(CoreError::InvalidAttach("give either Networks or Network/Ip/Ip6/Mac/Ifname/Aliases, not both".into()));
        }
        Ok(())
    }
}

/// A MAC a caller asks for: six hex pairs, unicast (lowest bit of the
/// first octet clear), not all zeros. Returned lowercase.
pub fn parse_mac(s: &str) -> Result<String> {
    let parts: Vec<&str> = s.split(':').collect();
    let bytes: Option<Vec<u8>> = (parts.len() == 6).then(|| parts.iter().map(|p| if p.len() == 2 { u8::from_str_radix(p, 16).ok() } else { None }).collect()).flatten();
    match bytes {
        Some(b) if b[0] & 1 == 0 && b.iter().any(|x| *x != 0) => Ok(s.to_ascii_lowercase()),
        _ => Err(CoreError::InvalidMac(s.to_string())),
    }
}

/// `POST /networks/{name}/connect` (Docker's shape, flattened).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConnect {
    #[serde(rename = "Container")]
    pub container: String,
    #[serde(rename = "IPAddress", default)]
    pub ip: Option<IpAddr>,
    #[serde(rename = "IPv6Address", default)]
    pub ip6: Option<IpAddr>,
    #[serde(rename = "Aliases", default)]
    pub aliases: Vec<String>,
    #[serde(rename = "MacAddress", default)]
    pub mac: Option<String>,
    /// berth's: the interface name inside the container.
    #[serde(rename = "InterfaceName", default)]
    pub ifname: Option<String>,
}

/// `--ip` and `--ip6` for one network: each of its own family, and only
/// for a family the network has. Returns them as the attachment keeps them.
pub fn check_static_ips(net: &Network, ip: Option<IpAddr>, ip6: Option<IpAddr>) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for (given, v6, flag, family) in [(ip, false, "--ip", "IPv4"), (ip6, true, "--ip6", "IPv6")] {
        let Some(addr) = given else { continue };
        if addr.is_ipv6() != v6 {
            return Err(CoreError::WrongFamily { flag, family, ip: addr });
        }
        let has = if v6 { net.ipv6().is_some() } else { net.ipv4().is_some() };
        if !has {
            let hint = if v6 { " (create it with --ipv6)" } else { "" };
            return Err(CoreError::NoSubnetOfFamily { network: net.name.clone(), family, flag, hint });
        }
        out.push(addr);
    }
    Ok(out)
}

/// Parses `--link NAME[:ALIAS]` (alias defaults to the name).
pub fn parse_link(s: &str) -> Result<Link> {
    let (name, alias) = match s.split_once(':') {
        Some((n, a)) => (n, a),
        None => (s, s),
    };
    let name = name.strip_prefix('/').unwrap_or(name);
    validate_name(name)?;
    validate_name(alias)?;
    Ok(Link { name: name.to_string(), alias: alias.to_string() })
}

/// Parses `--env KEY=VALUE`.
pub fn parse_env(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => Ok((k.to_string(), v.to_string())),
        _ => Err(CoreError::InvalidEnv(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BridgeDriver, Driver, IpamConfig, NetworkOptions};

    fn net(subnets: &[&str]) -> Network {
        Network {
            id: "0".repeat(64),
            name: "n".into(),
            driver: Driver::Bridge(BridgeDriver { name: "b".into(), owned: true }),
            ipam: subnets
                .iter()
                .map(|s| {
                    let subnet: ipnet::IpNet = s.parse().unwrap();
                    IpamConfig { subnet, gateway: subnet.network(), ip_range: None, user_subnet: true }
                })
                .collect(),
            internal: false,
            mtu: 1500,
            options: NetworkOptions::default(),
            raw_options: Default::default(),
            created: 0,
            predefined: false,
            global: false,
            blocks: vec![],
        }
    }

    #[test]
    fn static_addresses_per_family() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let dual = net(&["10.1.0.0/24", "fd00:1::/64"]);
        assert_eq!(check_static_ips(&dual, ip("10.1.0.5"), ip("fd00:1::5")).unwrap().len(), 2);
        assert!(matches!(check_static_ips(&dual, ip("fd00:1::5"), None), Err(CoreError::WrongFamily { flag: "--ip", .. })));
        assert!(matches!(check_static_ips(&dual, None, ip("10.1.0.5")), Err(CoreError::WrongFamily { flag: "--ip6", .. })));
        let v4 = net(&["10.1.0.0/24"]);
        let e = check_static_ips(&v4, None, ip("fd00:1::5")).unwrap_err();
        assert!(e.to_string().contains("has no IPv6 subnet, so --ip6 cannot be used on it (create it with --ipv6)"), "{e}");
        let v6 = net(&["fd00:1::/64"]);
        assert!(matches!(check_static_ips(&v6, ip("10.1.0.5"), None), Err(CoreError::NoSubnetOfFamily { flag: "--ip", .. })));
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:42:AC:11:00:02").unwrap(), "02:42:ac:11:00:02");
        for bad in ["01:00:5e:00:00:01", "00:00:00:00:00:00", "02:42:ac:11:00", "02:42:ac:11:00:0g", "0242ac110002", "2:42:ac:11:0:2"] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_and_links() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("=x"), Err(CoreError::InvalidEnv("=x".into())));
        assert_eq!(parse_link("db").unwrap(), Link { name: "db".into(), alias: "db".into() });
        assert_eq!(parse_link("/db:primary").unwrap().alias, "primary");
        assert!(parse_link("db:a b").is_err());
    }
}
