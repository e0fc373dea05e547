//! API request bodies and their validation into model values.
//!
//! The JSON shapes follow Docker's Engine API where one exists (`Name`,
//! `Driver`, `IPAM.Config[].Subnet/Gateway/IPRange`, `Internal`, `Options`).
//! Unknown fields are refused rather than ignored, so a typo is an error and
//! not a silently different network.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{Driver, IpamConfig, Network, NetworkOptions, DEFAULT_NETWORK, DEFAULT_NETWORK_ALIAS};
use crate::names::validate_name;
use crate::subnets::{choose_subnet, overlaps, parse_ip, parse_subnet, AddressPool};
use crate::{CoreError, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamConfigRequest {
    #[serde(rename = "Subnet", default)]
    pub subnet: Option<String>,
    #[serde(rename = "Gateway", default)]
    pub gateway: Option<String>,
    #[serde(rename = "IPRange", default)]
    pub ip_range: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamRequest {
    #[serde(rename = "Config", default)]
    pub config: Vec<IpamConfigRequest>,
}

/// `POST /networks/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Driver", default)]
    pub driver: Option<String>,
    #[serde(rename = "IPAM", default)]
    pub ipam: Option<IpamRequest>,
    #[serde(rename = "Internal", default)]
    pub internal: bool,
    #[serde(rename = "MTU", default)]
    pub mtu: Option<u32>,
    #[serde(rename = "Options", default)]
    pub options: BTreeMap<String, String>,
}

/// What validation needs to know about the world.
pub struct NetworkContext<'a> {
    /// Existing networks: (name, bridge, subnets).
    pub networks: Vec<(&'a str, &'a str, Vec<IpNet>)>,
    /// Host addresses' networks and non-default routes (to avoid for automatic subnets).
    pub host_nets: &'a [IpNet],
    pub pools: &'a [AddressPool],
    pub default_mtu: u32,
    pub default_icc: bool,
}

/// Names that can never be user networks.
pub fn is_reserved_network_name(name: &str) -> bool {
    matches!(name, DEFAULT_NETWORK | DEFAULT_NETWORK_ALIAS | "host" | "none")
}

/// Parsed `-o` options (Docker's long keys are accepted too).
pub struct ParsedOptions {
    pub options: NetworkOptions,
    pub bridge_name: Option<String>,
    pub mtu: Option<u32>,
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(CoreError::InvalidOption { key: key.into(), reason: format!("{v:?} is not true or false") }),
    }
}

pub fn parse_options(raw: &BTreeMap<String, String>, default_icc: bool) -> Result<ParsedOptions> {
    let mut p = ParsedOptions { options: NetworkOptions { icc: default_icc, masquerade: true }, bridge_name: None, mtu: None };
    for (k, v) in raw {
        match k.as_str() {
            "icc" | "com.docker.network.bridge.enable_icc" => p.options.icc = parse_bool(k, v)?,
            "masquerade" | "com.docker.network.bridge.enable_ip_masquerade" => p.options.masquerade = parse_bool(k, v)?,
            "mtu" | "com.docker.network.driver.mtu" => {
                p.mtu = Some(v.parse().map_err(|_| CoreError::InvalidOption { key: k.clone(), reason: format!("{v:?} is not a number") })?)
            }
            "bridge_name" | "com.docker.network.bridge.name" => {
                validate_ifname(v).map_err(|reason| CoreError::InvalidOption { key: k.clone(), reason })?;
                p.bridge_name = Some(v.clone());
            }
            _ => {
                return Err(CoreError::InvalidOption {
                    key: k.clone(),
                    reason: "unknown option (known: icc, masquerade, mtu, bridge_name)".into(),
                })
            }
        }
    }
    Ok(p)
}

/// Linux interface names: 1–15 bytes of `[a-zA-Z0-9_.-]`, not `.`/`..`.
pub fn validate_ifname(v: &str) -> std::result::Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 15
        && v != "."
        && v != ".."
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("{v:?} is not a valid interface name (1-15 characters of a-z, A-Z, 0-9, '_', '.', '-')"))
    }
}

pub fn check_mtu(mtu: u32) -> Result<u32> {
    if (68..=65535).contains(&mtu) {
        Ok(mtu)
    } else {
        Err(CoreError::InvalidMtu(mtu))
    }
}

/// Builds the IPAM block from what the user gave; `None` subnet picks one from
/// the pools.
pub fn build_ipam(req: &IpamConfigRequest, ctx: &NetworkContext, name: &str) -> Result<IpamConfig> {
    let taken: Vec<IpNet> = ctx.networks.iter().flat_map(|n| n.2.iter().copied()).collect();
    let (subnet, user_subnet) = match &req.subnet {
        Some(s) => {
            let subnet = parse_subnet(s)?;
            if let Some((other_name, _, nets)) = ctx.networks.iter().find(|n| n.2.iter().any(|o| overlaps(o, &subnet))) {
                let other = *nets.iter().find(|o| overlaps(o, &subnet)).unwrap();
                return Err(CoreError::SubnetOverlapsNetwork { subnet, network: other_name.to_string(), other });
            }
            (subnet, true)
        }
        None => {
            if req.gateway.is_some() || req.ip_range.is_some() {
                return Err(CoreError::InvalidConfig("--gateway and --ip-range need --subnet".into()));
            }
            (choose_subnet(ctx.pools, &taken, ctx.host_nets)?, false)
        }
    };
    if subnet.addr().is_ipv6() {
        return Err(CoreError::InvalidConfig(format!(
            "network {name}: IPv6 subnets are not supported yet ({subnet})"
        )));
    }
    if subnet.prefix_len() > 30 {
        return Err(CoreError::SubnetTooSmall(subnet));
    }
    let gateway = match &req.gateway {
        Some(g) => {
            let g = parse_ip(g)?;
            if !subnet.contains(&g) {
                return Err(CoreError::GatewayOutsideSubnet { gateway: g, subnet });
            }
            if g == subnet.network() || g == subnet.broadcast() {
                return Err(CoreError::GatewayReserved(g));
            }
            g
        }
        None => crate::ipam::from_u128(crate::ipam::to_u128(subnet.network()) + 1, subnet.addr()),
    };
    let ip_range = match &req.ip_range {
        Some(r) => {
            let range = parse_subnet(r)?;
            if !(subnet.contains(&range.network()) && subnet.contains(&range.broadcast())) {
                return Err(CoreError::RangeOutsideSubnet { range, subnet });
            }
            Some(range)
        }
        None => None,
    };
    Ok(IpamConfig { subnet, gateway, ip_range, user_subnet })
}

/// Validates a `network create` request into a [`Network`].
pub fn validate_network_create(req: &NetworkCreate, ctx: &NetworkContext, id: &str, now: u64) -> Result<Network> {
    validate_name(&req.name)?;
    if is_reserved_network_name(&req.name) || ctx.networks.iter().any(|n| n.0 == req.name) {
        return Err(CoreError::DuplicateNetwork(req.name.clone()));
    }
    match req.driver.as_deref() {
        None | Some("") | Some("bridge") => {}
        Some(other) => return Err(CoreError::UnknownDriver(other.to_string())),
    }
    let opts = parse_options(&req.options, ctx.default_icc)?;
    let bridge = opts.bridge_name.clone().unwrap_or_else(|| crate::plan::bridge_name(id));
    if let Some(other) = ctx.networks.iter().find(|n| n.1 == bridge) {
        return Err(CoreError::InvalidOption {
            key: "bridge_name".into(),
            reason: format!("bridge {bridge} is already used by network {}", other.0),
        });
    }
    let mtu = check_mtu(req.mtu.or(opts.mtu).unwrap_or(ctx.default_mtu))?;
    let cfgs = req.ipam.as_ref().map(|i| i.config.clone()).unwrap_or_default();
    if cfgs.len() > 1 {
        return Err(CoreError::InvalidConfig("only one IPAM config (one IPv4 subnet) per network is supported".into()));
    }
    let ipam = build_ipam(cfgs.first().unwrap_or(&IpamConfigRequest::default()), ctx, &req.name)?;
    Ok(Network {
        id: id.to_string(),
        name: req.name.clone(),
        driver: Driver::Bridge,
        ipam: vec![ipam],
        internal: req.internal,
        mtu,
        options: opts.options,
        raw_options: req.options.clone(),
        bridge,
        bridge_owned: true,
        created: now,
        predefined: false,
    })
}

/// `POST /networks/{name}/connect` (Docker's shape).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConnect {
    #[serde(rename = "Container")]
    pub container: String,
    #[serde(rename = "IPAddress", default)]
    pub ip: Option<IpAddr>,
    #[serde(rename = "Aliases", default)]
    pub aliases: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subnets::default_pools;

    fn ctx<'a>(nets: Vec<(&'a str, &'a str, Vec<IpNet>)>, host: &'a [IpNet], pools: &'a [AddressPool]) -> NetworkContext<'a> {
        NetworkContext { networks: nets, host_nets: host, pools, default_mtu: 1500, default_icc: true }
    }

    fn req(name: &str, subnet: Option<&str>, gw: Option<&str>, range: Option<&str>) -> NetworkCreate {
        NetworkCreate {
            name: name.into(),
            ipam: Some(IpamRequest {
                config: vec![IpamConfigRequest { subnet: subnet.map(Into::into), gateway: gw.map(Into::into), ip_range: range.map(Into::into) }],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn valid_network() {
        let pools = default_pools();
        let n = validate_network_create(&req("web", Some("10.5.0.0/16"), None, Some("10.5.1.0/24")), &ctx(vec![], &[], &pools), "ab".repeat(32).as_str(), 1).unwrap();
        assert_eq!(n.ipam[0].gateway.to_string(), "10.5.0.1");
        assert_eq!(n.bridge, "bth-ababababab");
        assert!(n.options.icc && n.options.masquerade);
    }

    #[test]
    fn bad_inputs_have_specific_errors() {
        let pools = default_pools();
        let existing = vec![("other", "bth-1", vec!["10.5.0.0/16".parse().unwrap()])];
        let c = ctx(existing, &[], &pools);
        let id = "0".repeat(64);
        let e = |r: NetworkCreate| validate_network_create(&r, &c, &id, 0).unwrap_err();
        assert!(matches!(e(req("a", Some("10.6.0.0/33"), None, None)), CoreError::InvalidCidr(_)));
        assert!(matches!(e(req("a", Some("10.6.0.0/16"), Some("10.7.0.1"), None)), CoreError::GatewayOutsideSubnet { .. }));
        assert!(matches!(e(req("a", Some("10.6.0.0/16"), None, Some("10.7.0.0/24"))), CoreError::RangeOutsideSubnet { .. }));
        assert!(matches!(e(req("a", Some("10.5.3.0/24"), None, None)), CoreError::SubnetOverlapsNetwork { .. }));
        assert!(matches!(e(req("other", None, None, None)), CoreError::DuplicateNetwork(_)));
        assert!(matches!(e(req("bridge", None, None, None)), CoreError::DuplicateNetwork(_)));
        assert!(matches!(e(req("bad name", None, None, None)), CoreError::InvalidName(_)));
        assert!(matches!(e(req("a", Some("10.6.0.0/31"), None, None)), CoreError::SubnetTooSmall(_)));
        let mut r = req("a", None, None, None);
        r.options.insert("icc".into(), "maybe".into());
        assert!(matches!(e(r), CoreError::InvalidOption { .. }));
        let mut r = req("a", None, None, None);
        r.options.insert("bridge_name".into(), "x;y".into());
        assert!(matches!(e(r), CoreError::InvalidOption { .. }));
        let mut r = req("a", None, None, None);
        r.driver = Some("macvlan".into());
        assert!(matches!(e(r), CoreError::UnknownDriver(_)));
    }

    #[test]
    fn automatic_subnet_avoids_host_routes() {
        let pools = default_pools();
        let host: Vec<IpNet> = vec!["172.18.0.0/16".parse().unwrap()];
        let nets = vec![("berth0", "berth0", vec!["172.17.0.0/16".parse().unwrap()])];
        let n = validate_network_create(&req("a", None, None, None), &ctx(nets, &host, &pools), &"0".repeat(64), 0).unwrap();
        assert_eq!(n.ipam[0].subnet.to_string(), "172.19.0.0/16");
        assert!(!n.ipam[0].user_subnet);
    }

    #[test]
    fn unknown_json_fields_are_refused() {
        assert!(serde_json::from_str::<NetworkCreate>(r#"{"Name":"a","Subnet":"10.0.0.0/8"}"#).is_err());
        assert!(serde_json::from_str::<NetworkCreate>(r#"{"Name":"a","Internal":true}"#).is_ok());
    }
}

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
    #[serde(default)]
    pub ip: Option<IpAddr>,
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

/// `POST /containers/attach`: network a namespace someone else made.
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
    pub publish: Vec<String>,
    #[serde(default)]
    pub expose: Vec<String>,
}

/// Parses `--link NAME[:ALIAS]` (alias defaults to the name).
pub fn parse_link(s: &str) -> Result<crate::model::Link> {
    let (name, alias) = match s.split_once(':') {
        Some((n, a)) => (n, a),
        None => (s, s),
    };
    let name = name.strip_prefix('/').unwrap_or(name);
    validate_name(name)?;
    validate_name(alias)?;
    Ok(crate::model::Link { name: name.to_string(), alias: alias.to_string() })
}

/// Parses `--env KEY=VALUE`.
pub fn parse_env(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => Ok((k.to_string(), v.to_string())),
        _ => Err(CoreError::InvalidConfig(format!("invalid environment variable {s:?}: expected KEY=VALUE"))),
    }
}

/// `POST /policies`: `berth policy deny|allow --from CIDR --to CONTAINER[:PORT[-END][/PROTO]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PolicyRequest {
    pub action: String,
    pub from: String,
    pub to: String,
}

/// Validates a policy request (the container need not exist yet: policies
/// name containers and apply whenever one of that name runs).
pub fn validate_policy(req: &PolicyRequest, id: &str) -> Result<crate::model::Policy> {
    use crate::model::{Policy, PolicyAction, PolicyTarget};
    let action = match req.action.as_str() {
        "deny" => PolicyAction::Deny,
        "allow" => PolicyAction::Allow,
        other => return Err(CoreError::InvalidConfig(format!("policy action {other:?}: use allow or deny"))),
    };
    let from = req.from.trim();
    let net: IpNet = if from.contains('/') {
        crate::subnets::parse_cidr_any(from)?
    } else {
        IpNet::from(crate::subnets::parse_ip(from)?)
    };
    let ipnet::IpNet::V4(from) = net.trunc() else {
        return Err(CoreError::InvalidConfig(format!("policy source {from}: only IPv4 sources are supported")));
    };
    let (container, rest) = match req.to.split_once(':') {
        Some((c, r)) => (c, Some(r)),
        None => (req.to.as_str(), None),
    };
    validate_name(container)?;
    let (ports, proto) = match rest {
        None => (None, None),
        Some(r) => {
            let (p, proto) = match r.split_once('/') {
                Some((p, "tcp")) => (p, Some(crate::model::Proto::Tcp)),
                Some((p, "udp")) => (p, Some(crate::model::Proto::Udp)),
                Some((_, other)) => return Err(CoreError::InvalidPort { spec: req.to.clone(), reason: format!("unknown protocol {other:?}") }),
                None => (r, Some(crate::model::Proto::Tcp)),
            };
            let range = crate::ports::parse_expose(&format!("{p}/tcp"))
                .map_err(|_| CoreError::InvalidPort { spec: req.to.clone(), reason: format!("{p:?} is not a port or port range") })?;
            (Some((range[0].port, range[range.len() - 1].port)), proto)
        }
    };
    Ok(Policy { id: id.to_string(), action, from, to: PolicyTarget { container: container.to_string(), ports, proto } })
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    fn req(a: &str, f: &str, t: &str) -> PolicyRequest {
        PolicyRequest { action: a.into(), from: f.into(), to: t.into() }
    }

    #[test]
    fn parses_targets() {
        let p = validate_policy(&req("deny", "10.200.55.3", "fourcentos:80"), "x").unwrap();
        assert_eq!(p.from.to_string(), "10.200.55.3/32");
        assert_eq!((p.to.container.as_str(), p.to.ports, p.to.proto), ("fourcentos", Some((80, 80)), Some(crate::model::Proto::Tcp)));
        let p = validate_policy(&req("allow", "10.0.0.0/8", "db"), "x").unwrap();
        assert_eq!((p.to.ports, p.to.proto), (None, None));
        let p = validate_policy(&req("deny", "10.1.2.3/16", "dns:53/udp"), "x").unwrap();
        assert_eq!(p.from.to_string(), "10.1.0.0/16");
        assert_eq!(p.to.proto, Some(crate::model::Proto::Udp));
        let p = validate_policy(&req("deny", "10.1.2.3", "web:8000-8010"), "x").unwrap();
        assert_eq!(p.to.ports, Some((8000, 8010)));
    }

    #[test]
    fn refuses_bad_policies() {
        for (a, f, t) in [("drop", "10.0.0.1", "x"), ("deny", "nonsense", "x"), ("deny", "::1", "x"), ("deny", "10.0.0.1", "x;y"), ("deny", "10.0.0.1", "x:0"), ("deny", "10.0.0.1", "x:80/icmp"), ("deny", "10.0.0.1", "x:90-80")] {
            assert!(validate_policy(&req(a, f, t), "x").is_err(), "{a} {f} {t}");
        }
    }
}
