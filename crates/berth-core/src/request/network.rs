//! `POST /networks/create`: a network of one driver with at most one
//! address block per family, chosen from the pools when not given.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{BridgeDriver, Driver, IpamConfig, MacvlanDriver, Network, NetworkOptions, OverlayDriver, DEFAULT_NETWORK, DEFAULT_NETWORK_ALIAS};
use crate::names::validate_name;
use crate::subnets::{check_usable, choose_subnet, overlaps, parse_ip, parse_subnet, AddressPool};
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
    /// IPv6 on: the IPv6 subnet given, or one from the pools.
    #[serde(rename = "EnableIPv6", default)]
    pub enable_ipv6: bool,
    /// IPv4 on (the default); false makes an IPv6-only network.
    #[serde(rename = "EnableIPv4", default)]
    pub enable_ipv4: Option<bool>,
    #[serde(rename = "IPAM", default)]
    pub ipam: Option<IpamRequest>,
    #[serde(rename = "Internal", default)]
    pub internal: bool,
    #[serde(rename = "MTU", default)]
    pub mtu: Option<u32>,
    #[serde(rename = "Options", default)]
    pub options: BTreeMap<String, String>,
    /// An id the caller keeps for the network (podman's, so both name it
    /// alike); berth makes one when none is given.
    #[serde(rename = "Id", default)]
    pub id: Option<String>,
}

/// What validation needs to know about the world.
pub struct NetworkContext<'a> {
    /// Existing networks: (name, bridge, subnets).
    pub networks: Vec<(&'a str, &'a str, Vec<IpNet>)>,
    /// Host addresses' networks and non-default routes (to avoid for automatic subnets).
    pub host_nets: &'a [IpNet],
    /// Pools of both families (defaults filled in).
    pub pools: &'a [AddressPool],
    pub default_mtu: u32,
    pub default_icc: bool,
    /// Set when the daemon is in a cluster: what a global network must
    /// stay clear of. None: single host (`-d overlay` is refused).
    pub cluster: Option<ClusterContext<'a>>,
}

/// What the cluster store already holds that a new global network must
/// not collide with.
pub struct ClusterContext<'a> {
    /// VXLAN ids in use, with the network using each.
    pub vnis: &'a BTreeMap<u32, String>,
}

/// The first VXLAN id berth hands out by itself (Docker's overlay driver
/// starts at 4096 too; below is left for hand-made VXLANs).
pub const FIRST_VNI: u32 = 4096;
const MAX_VNI: u32 = (1 << 24) - 1;

/// The IANA port for VXLAN (the kernel's own default is Linux's older 8472).
pub const VXLAN_PORT: u16 = 4789;

/// Names that can never be user networks.
pub fn is_reserved_network_name(name: &str) -> bool {
    matches!(name, DEFAULT_NETWORK | DEFAULT_NETWORK_ALIAS | "host" | "none")
}

/// Parsed `-o` options (Docker's long keys are accepted too). Driver
/// options are checked against the driver by [`validate_network_create`].
#[derive(Default)]
pub struct ParsedOptions {
    pub options: NetworkOptions,
    pub bridge_name: Option<String>,
    pub mtu: Option<u32>,
    /// Overlay: `-o vni=N` (Docker: `com.docker.network.driver.overlay.vxlanid_list`).
    pub vni: Option<u32>,
    /// Overlay: `-o vxlan_port=N`.
    pub vxlan_port: Option<u16>,
    /// Global networks: `-o host_block=N`, the prefix of hosts' address blocks.
    pub host_block: Option<u8>,
    /// Macvlan: `-o parent=IFACE`.
    pub parent: Option<String>,
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(CoreError::InvalidOption { key: key.into(), reason: format!("{v:?} is not true or false") }),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
    v.parse().map_err(|_| CoreError::InvalidOption { key: key.into(), reason: format!("{v:?} is not a number in range") })
}

pub fn parse_options(raw: &BTreeMap<String, String>, default_icc: bool) -> Result<ParsedOptions> {
    let mut p = ParsedOptions { options: NetworkOptions { icc: default_icc, masquerade: true }, ..Default::default() };
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
            "vni" | "com.docker.network.driver.overlay.vxlanid_list" => {
                let vni: u32 = parse_num(k, v)?;
                if !(1..=MAX_VNI).contains(&vni) {
                    return Err(CoreError::InvalidOption { key: k.clone(), reason: format!("{vni} is not a VXLAN id (1 to {MAX_VNI})") });
                }
                p.vni = Some(vni);
            }
            "vxlan_port" => {
                let port: u16 = parse_num(k, v)?;
                if port == 0 {
                    return Err(CoreError::InvalidOption { key: k.clone(), reason: "port 0 is not a port".into() });
                }
                p.vxlan_port = Some(port);
            }
            "host_block" => p.host_block = Some(parse_num(k, v.trim_start_matches('/'))?),
            "parent" => {
                validate_ifname(v).map_err(|reason| CoreError::InvalidOption { key: k.clone(), reason })?;
                p.parent = Some(v.clone());
            }
            "macvlan_mode" if v == "bridge" => {}
            "macvlan_mode" => {
                return Err(CoreError::InvalidOption { key: k.clone(), reason: format!("mode {v:?} is not supported (berth uses bridge mode)") })
            }
            // Upstream servers of the network's resolver (podman's `network create --dns`).
            "dns_servers" => {
                for ip in v.split(',').filter(|s| !s.trim().is_empty()) {
                    crate::subnets::parse_ip(ip).map_err(|_| CoreError::InvalidOption { key: k.clone(), reason: format!("{ip:?} is not an IP address") })?;
                }
            }
            _ => {
                return Err(CoreError::InvalidOption {
                    key: k.clone(),
                    reason: "unknown option (known: icc, masquerade, mtu, bridge_name, dns_servers; overlay: vni, vxlan_port, host_block; macvlan: parent, host_block)".into(),
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

/// An MTU the kernel takes; IPv6 needs at least 1280 (RFC 8200).
pub fn check_mtu(mtu: u32, ipv6: bool) -> Result<u32> {
    let min = if ipv6 { 1280 } else { 68 };
    if (min..=65535).contains(&mtu) {
        Ok(mtu)
    } else {
        Err(CoreError::InvalidMtu(mtu))
    }
}

/// Docker's `--subnet`, `--gateway` and `--ip-range` flags (each
/// repeatable) as IPAM configs: each gateway and range goes with the
/// subnet that contains it.
pub fn pair_ipam_flags(subnets: &[String], gateways: &[String], ranges: &[String]) -> Result<Vec<IpamConfigRequest>> {
    let nets = subnets.iter().map(|s| parse_subnet(s)).collect::<Result<Vec<IpNet>>>()?;
    if nets.is_empty() {
        if !gateways.is_empty() {
            return Err(CoreError::NeedsSubnet("--gateway"));
        }
        if !ranges.is_empty() {
            return Err(CoreError::NeedsSubnet("--ip-range"));
        }
    }
    let mut out: Vec<IpamConfigRequest> =
        subnets.iter().map(|s| IpamConfigRequest { subnet: Some(s.clone()), gateway: None, ip_range: None }).collect();
    // The subnet containing `ip`; else the only one of its family (whose
    // validation then says what is wrong with the pair).
    let owner = |ip: IpAddr, what: &'static str, value: &str| -> Result<usize> {
        if let Some(i) = nets.iter().position(|n| n.contains(&ip)) {
            return Ok(i);
        }
        let same: Vec<usize> = (0..nets.len()).filter(|i| nets[*i].addr().is_ipv6() == ip.is_ipv6()).collect();
        match same.as_slice() {
            [i] => Ok(*i),
            _ => Err(CoreError::NotInAnySubnet { what, value: value.to_string() }),
        }
    };
    for g in gateways {
        let i = owner(parse_ip(g)?, "gateway", g)?;
        out[i].gateway = Some(g.clone());
    }
    for r in ranges {
        let i = owner(parse_subnet(r)?.network(), "ip-range", r)?;
        out[i].ip_range = Some(r.clone());
    }
    Ok(out)
}

/// The smallest subnet a family can allocate from: a gateway and at least
/// one container besides the reserved addresses.
fn check_size(subnet: &IpNet) -> Result<()> {
    let max_prefix = if subnet.addr().is_ipv6() { 126 } else { 30 };
    if subnet.prefix_len() > max_prefix {
        return Err(CoreError::SubnetTooSmall(*subnet));
    }
    Ok(())
}

/// The first address after the network address: Docker's default gateway.
fn first_host(subnet: &IpNet) -> IpAddr {
    crate::ipam::from_u128(crate::ipam::to_u128(subnet.network()) + 1, subnet.addr())
}

/// Builds one IPAM block from what the user gave, or (no subnet) from the
/// pools of family `v6`.
fn build_ipam(req: &IpamConfigRequest, v6: bool, ctx: &NetworkContext) -> Result<IpamConfig> {
    let (subnet, user_subnet) = match &req.subnet {
        Some(s) => {
            let subnet = parse_subnet(s)?;
            check_usable(&subnet)?;
            check_size(&subnet)?;
            if let Some((other_name, _, nets)) = ctx.networks.iter().find(|n| n.2.iter().any(|o| overlaps(o, &subnet))) {
                let other = *nets.iter().find(|o| overlaps(o, &subnet)).unwrap();
                return Err(CoreError::SubnetOverlapsNetwork { subnet, network: other_name.to_string(), other });
            }
            (subnet, true)
        }
        None => {
            let taken: Vec<IpNet> = ctx.networks.iter().flat_map(|n| n.2.iter().copied()).collect();
            (choose_subnet(ctx.pools, v6, &taken, ctx.host_nets)?, false)
        }
    };
    let gateway = match &req.gateway {
        Some(g) => {
            let g = parse_ip(g)?;
            if !subnet.contains(&g) {
                return Err(CoreError::GatewayOutsideSubnet { gateway: g, subnet });
            }
            // IPv6 has no broadcast address; its network address is the
            // subnet-router anycast address, which no host may take.
            if g == subnet.network() || (!v6 && g == subnet.broadcast()) {
                return Err(CoreError::GatewayReserved(g));
            }
            g
        }
        None => first_host(&subnet),
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

/// The family of an IPAM request (that of its subnet; a request without
/// one is refused earlier when it has a gateway or range).
fn request_family(c: &IpamConfigRequest) -> Result<Option<bool>> {
    match &c.subnet {
        Some(s) => Ok(Some(parse_subnet(s)?.addr().is_ipv6())),
        None if c.gateway.is_some() => Err(CoreError::NeedsSubnet("--gateway")),
        None if c.ip_range.is_some() => Err(CoreError::NeedsSubnet("--ip-range")),
        None => Ok(None),
    }
}

/// The IPAM blocks of a network: the subnets given (at most one per
/// family; an IPv6 one turns IPv6 on) and, for each family that is on
/// and has none, one from the pools. IPv4 first.
pub fn build_network_ipam(req: &NetworkCreate, ctx: &NetworkContext) -> Result<Vec<IpamConfig>> {
    let cfgs = req.ipam.as_ref().map(|i| i.config.clone()).unwrap_or_default();
    let (mut v4, mut v6): (Option<IpamConfigRequest>, Option<IpamConfigRequest>) = (None, None);
    for c in cfgs {
        match request_family(&c)? {
            Some(true) if v6.is_some() => return Err(CoreError::TwoSubnetsOfAFamily("IPv6")),
            Some(false) if v4.is_some() => return Err(CoreError::TwoSubnetsOfAFamily("IPv4")),
            Some(true) => v6 = Some(c),
            Some(false) => v4 = Some(c),
            None => {}
        }
    }
    let want_v4 = req.enable_ipv4.unwrap_or(true);
    if let (false, Some(c)) = (want_v4, &v4) {
        return Err(CoreError::Ipv4Disabled(parse_subnet(c.subnet.as_deref().unwrap_or_default())?));
    }
    let want_v6 = req.enable_ipv6 || v6.is_some();
    if !want_v4 && !want_v6 {
        return Err(CoreError::NoFamily);
    }
    let mut out = Vec::new();
    for (on, given, is_v6) in [(want_v4, v4, false), (want_v6, v6, true)] {
        if on {
            out.push(build_ipam(&given.unwrap_or_default(), is_v6, ctx)?);
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bridge,
    Overlay,
    Macvlan,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Bridge => "bridge",
            Kind::Overlay => "overlay",
            Kind::Macvlan => "macvlan",
        }
    }
}

/// Refuses options that belong to another driver.
fn check_driver_options(kind: Kind, opts: &ParsedOptions, name: &str) -> Result<()> {
    let refuse = |opt: &str, only: &str| CoreError::DriverRefuses {
        driver: kind.name(),
        network: name.to_string(),
        reason: format!("option {opt} applies to {only} networks only"),
    };
    if kind != Kind::Bridge && opts.bridge_name.is_some() {
        return Err(refuse("bridge_name", "bridge"));
    }
    if kind != Kind::Overlay && opts.vni.is_some() {
        return Err(refuse("vni", "overlay"));
    }
    if kind != Kind::Overlay && opts.vxlan_port.is_some() {
        return Err(refuse("vxlan_port", "overlay"));
    }
    if kind != Kind::Macvlan && opts.parent.is_some() {
        return Err(refuse("parent", "macvlan"));
    }
    Ok(())
}

/// The VXLAN id of a new overlay: the one asked for if free, else the
/// lowest free one from [`FIRST_VNI`].
fn choose_vni(want: Option<u32>, taken: &BTreeMap<u32, String>) -> Result<u32> {
    match want {
        Some(v) => match taken.get(&v) {
            Some(net) => Err(CoreError::VniInUse { vni: v, network: net.clone() }),
            None => Ok(v),
        },
        None => (FIRST_VNI..=MAX_VNI).find(|v| !taken.contains_key(v)).ok_or(CoreError::VnisExhausted),
    }
}

/// Validates a `network create` request into a [`Network`]. A global
/// network (overlay, or macvlan in a cluster) comes out without this
/// host's part (blocks, tunnel end, MTU of an automatic overlay MTU: 0):
/// the daemon adds those when it takes the network up.
pub fn validate_network_create(req: &NetworkCreate, ctx: &NetworkContext, id: &str, now: u64) -> Result<Network> {
    validate_name(&req.name)?;
    if is_reserved_network_name(&req.name) || ctx.networks.iter().any(|n| n.0 == req.name) {
        return Err(CoreError::DuplicateNetwork(req.name.clone()));
    }
    let kind = match req.driver.as_deref() {
        None | Some("") | Some("bridge") => Kind::Bridge,
        Some("overlay") => Kind::Overlay,
        Some("macvlan") => Kind::Macvlan,
        Some(other) => return Err(CoreError::UnknownDriver(other.to_string())),
    };
    if kind == Kind::Overlay && ctx.cluster.is_none() {
        return Err(CoreError::OverlayNeedsCluster);
    }
    let global = kind != Kind::Bridge && ctx.cluster.is_some();
    let opts = parse_options(&req.options, ctx.default_icc)?;
    check_driver_options(kind, &opts, &req.name)?;
    let refuse = |reason: String| CoreError::DriverRefuses { driver: kind.name(), network: req.name.clone(), reason };
    if kind == Kind::Macvlan && req.ipam.as_ref().is_none_or(|i| i.config.iter().all(|c| c.subnet.is_none())) {
        return Err(refuse("give the LAN's subnet: --subnet CIDR (and --gateway, the LAN's router, if it is not the subnet's first address)".into()));
    }
    if global && (req.enable_ipv6 || req.enable_ipv4 == Some(false)) {
        return Err(refuse("networks that span hosts are IPv4 only in this release (hosts lease IPv4 address blocks)".into()));
    }
    let bridge = opts.bridge_name.clone().unwrap_or_else(|| crate::plan::bridge_name(id));
    if kind == Kind::Bridge {
        if let Some(other) = ctx.networks.iter().find(|n| n.1 == bridge) {
            return Err(CoreError::InvalidOption {
                key: "bridge_name".into(),
                reason: format!("bridge {bridge} is already used by network {}", other.0),
            });
        }
    }
    let ipam = build_network_ipam(req, ctx)?;
    if global && ipam.iter().any(|c| c.is_ipv6()) {
        return Err(refuse("networks that span hosts are IPv4 only in this release (hosts lease IPv4 address blocks)".into()));
    }
    let has_v6 = ipam.iter().any(|c| c.is_ipv6());
    let user_mtu = req.mtu.or(opts.mtu).map(|m| check_mtu(m, has_v6)).transpose()?;
    if !global && opts.host_block.is_some() {
        return Err(refuse("option host_block applies to networks that span hosts (overlay, or macvlan with a cluster store)".into()));
    }
    let host_prefix = match ipam.first() {
        Some(c) if global => {
            let pool = c.pool();
            let p = opts.host_block.unwrap_or_else(|| crate::cluster::blocks::default_prefix(pool.prefix_len()));
            crate::cluster::blocks::check_prefix(&pool, p).map_err(|reason| CoreError::InvalidOption { key: "host_block".into(), reason })?;
            p
        }
        _ => 0,
    };
    let (driver, mtu) = match kind {
        Kind::Bridge => (Driver::Bridge(BridgeDriver { name: bridge, owned: true }), user_mtu.unwrap_or(check_mtu(ctx.default_mtu, has_v6)?)),
        Kind::Overlay => {
            let vnis = ctx.cluster.as_ref().map(|c| c.vnis).expect("overlay checked for a cluster above");
            let o = OverlayDriver {
                bridge,
                tunnel: crate::plan::tunnel_name(id),
                vni: choose_vni(opts.vni, vnis)?,
                port: opts.vxlan_port.unwrap_or(VXLAN_PORT),
                host_prefix,
                user_mtu,
                vtep: None,
            };
            (Driver::Overlay(o), user_mtu.unwrap_or(0))
        }
        Kind::Macvlan => {
            let Some(parent) = opts.parent.clone() else {
                return Err(refuse("name the host interface its containers go out on: -o parent=IFACE".into()));
            };
            (Driver::Macvlan(MacvlanDriver { parent, host_prefix }), user_mtu.unwrap_or(check_mtu(ctx.default_mtu, has_v6)?))
        }
    };
    Ok(Network {
        id: id.to_string(),
        name: req.name.clone(),
        driver,
        ipam,
        internal: req.internal,
        mtu,
        options: opts.options,
        raw_options: req.options.clone(),
        created: now,
        predefined: false,
        global,
        blocks: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subnets::{default_pools, with_default_pools};

    fn ctx<'a>(nets: Vec<(&'a str, &'a str, Vec<IpNet>)>, host: &'a [IpNet], pools: &'a [AddressPool]) -> NetworkContext<'a> {
        NetworkContext { networks: nets, host_nets: host, pools, default_mtu: 1500, default_icc: true, cluster: None }
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

    fn flags(subnets: &[&str], gws: &[&str], ranges: &[&str]) -> NetworkCreate {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        NetworkCreate {
            name: "n".into(),
            ipam: Some(IpamRequest { config: pair_ipam_flags(&s(subnets), &s(gws), &s(ranges)).unwrap() }),
            ..Default::default()
        }
    }

    #[test]
    fn valid_network() {
        let pools = default_pools();
        let n = validate_network_create(&req("web", Some("10.5.0.0/16"), None, Some("10.5.1.0/24")), &ctx(vec![], &[], &pools), "ab".repeat(32).as_str(), 1).unwrap();
        assert_eq!(n.ipam[0].gateway.to_string(), "10.5.0.1");
        assert_eq!(n.bridge(), "bth-ababababab");
        assert!(n.options.icc && n.options.masquerade);
        assert!(n.ipv6().is_none());
    }

    #[test]
    fn dual_stack_and_ipv6_only() {
        let pools = with_default_pools(vec![], b"seed");
        let c = ctx(vec![], &[], &pools);
        let id = "0".repeat(64);
        let n = validate_network_create(&flags(&["10.6.0.0/24", "fd00:6::/64"], &["fd00:6::fe"], &["fd00:6::/80"]), &c, &id, 0).unwrap();
        assert_eq!(n.ipam.len(), 2);
        let v6 = n.ipv6().unwrap();
        assert_eq!((v6.gateway.to_string(), v6.ip_range.unwrap().to_string()), ("fd00:6::fe".into(), "fd00:6::/80".into()));
        // --ipv6 alone: IPv4 from the IPv4 pools, a /64 from the ULA pool.
        let mut r = NetworkCreate { name: "auto6".into(), enable_ipv6: true, ..Default::default() };
        let n = validate_network_create(&r, &c, &id, 0).unwrap();
        assert_eq!(n.ipv4().unwrap().subnet.to_string(), "172.17.0.0/16");
        let s6 = n.ipv6().unwrap().subnet;
        assert!(s6.to_string().starts_with("fd") && s6.prefix_len() == 64 && !n.ipv6().unwrap().user_subnet, "{s6}");
        // --ipv4=false: IPv6 only.
        r.enable_ipv4 = Some(false);
        let n = validate_network_create(&r, &c, &id, 0).unwrap();
        assert!(n.ipv4().is_none() && n.ipv6().is_some());
        r.enable_ipv6 = false;
        assert_eq!(validate_network_create(&r, &c, &id, 0), Err(CoreError::NoFamily));
    }

    #[test]
    fn bad_inputs_have_specific_errors() {
        let pools = with_default_pools(vec![], b"seed");
        let existing = vec![("other", "bth-1", vec!["10.5.0.0/16".parse().unwrap(), "fd00:5::/64".parse().unwrap()])];
        let c = ctx(existing, &[], &pools);
        let id = "0".repeat(64);
        let e = |r: NetworkCreate| validate_network_create(&r, &c, &id, 0).unwrap_err();
        assert!(matches!(e(req("a", Some("10.6.0.0/33"), None, None)), CoreError::InvalidCidr(_)));
        assert!(matches!(e(req("a", Some("10.6.0.0/16"), Some("10.7.0.1"), None)), CoreError::GatewayOutsideSubnet { .. }));
        assert!(matches!(e(req("a", Some("10.6.0.0/16"), None, Some("10.7.0.0/24"))), CoreError::RangeOutsideSubnet { .. }));
        assert!(matches!(e(req("a", Some("10.5.3.0/24"), None, None)), CoreError::SubnetOverlapsNetwork { .. }));
        assert!(matches!(e(req("a", Some("fd00:5::/80"), None, None)), CoreError::SubnetOverlapsNetwork { .. }), "overlapping IPv6");
        assert!(matches!(e(req("a", Some("fd00:7::/64"), Some("fd00:8::1"), None)), CoreError::GatewayOutsideSubnet { .. }), "IPv6 gateway outside");
        assert!(matches!(e(req("a", Some("fd00:7::/64"), Some("fd00:7::"), None)), CoreError::GatewayReserved(_)));
        assert!(matches!(e(req("a", Some("fd00:7::/127"), None, None)), CoreError::SubnetTooSmall(_)), "/127");
        assert!(matches!(e(req("a", Some("fe80::/64"), None, None)), CoreError::SubnetUnusable { kind: "link-local", .. }));
        assert!(matches!(e(req("a", Some("ff05::/64"), None, None)), CoreError::SubnetUnusable { kind: "multicast", .. }));
        assert!(matches!(e(req("a", None, Some("10.6.0.1"), None)), CoreError::NeedsSubnet("--gateway")));
        assert!(matches!(e(req("other", None, None, None)), CoreError::DuplicateNetwork(_)));
        assert!(matches!(e(req("bridge", None, None, None)), CoreError::DuplicateNetwork(_)));
        assert!(matches!(e(req("bad name", None, None, None)), CoreError::InvalidName(_)));
        assert!(matches!(e(req("a", Some("10.6.0.0/31"), None, None)), CoreError::SubnetTooSmall(_)));
        let mut r = flags(&["10.6.0.0/24", "10.7.0.0/24"], &[], &[]);
        assert_eq!(e(r.clone()), CoreError::TwoSubnetsOfAFamily("IPv4"));
        r = flags(&["10.6.0.0/24"], &[], &[]);
        r.enable_ipv4 = Some(false);
        r.enable_ipv6 = true;
        assert!(matches!(e(r), CoreError::Ipv4Disabled(_)));
        let mut r = req("a", Some("fd00:9::/64"), None, None);
        r.mtu = Some(1200);
        assert_eq!(e(r), CoreError::InvalidMtu(1200), "IPv6 needs 1280");
        let mut r = req("a", None, None, None);
        r.options.insert("icc".into(), "maybe".into());
        assert!(matches!(e(r), CoreError::InvalidOption { .. }));
        let mut r = req("a", None, None, None);
        r.options.insert("bridge_name".into(), "x;y".into());
        assert!(matches!(e(r), CoreError::InvalidOption { .. }));
        let mut r = req("a", None, None, None);
        r.driver = Some("ipvlan".into());
        assert!(matches!(e(r), CoreError::UnknownDriver(_)));
        let mut r = req("a", None, None, None);
        r.driver = Some("overlay".into());
        assert_eq!(e(r), CoreError::OverlayNeedsCluster, "no cluster store");
        let mut r = req("a", Some("192.168.1.0/24"), None, None);
        r.driver = Some("macvlan".into());
        assert!(matches!(e(r), CoreError::DriverRefuses { .. }), "macvlan needs a parent");
        let mut r = req("a", Some("192.168.1.0/24"), None, None);
        r.options.insert("parent".into(), "eth0".into());
        assert!(matches!(e(r), CoreError::DriverRefuses { .. }), "parent on a bridge network");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(matches!(pair_ipam_flags(&s(&["10.6.0.0/24"]), &s(&["fd00::1"]), &[]), Err(CoreError::NotInAnySubnet { .. })), "no IPv6 subnet");
        assert!(matches!(pair_ipam_flags(&s(&["10.6.0.0/24", "10.7.0.0/24"]), &s(&["10.9.0.1"]), &[]), Err(CoreError::NotInAnySubnet { .. })));
        let one = pair_ipam_flags(&s(&["10.6.0.0/24", "fd00::/64"]), &s(&["10.9.0.1"]), &[]).unwrap();
        assert_eq!(one[0].gateway.as_deref(), Some("10.9.0.1"), "paired with the only IPv4 subnet, to be refused with its name");
        assert!(matches!(pair_ipam_flags(&[], &[], &s(&["10.9.0.0/24"])), Err(CoreError::NeedsSubnet("--ip-range"))));
    }

    #[test]
    fn overlay_and_macvlan_networks() {
        let pools = default_pools();
        let mut vnis = BTreeMap::new();
        let mut c = ctx(vec![], &[], &pools);
        c.cluster = Some(ClusterContext { vnis: &vnis });
        let id = "0".repeat(64);
        let mut r = req("ov", Some("10.200.0.0/16"), None, None);
        r.driver = Some("overlay".into());
        let n = validate_network_create(&r, &c, &id, 0).unwrap();
        let Driver::Overlay(o) = &n.driver else { panic!() };
        assert_eq!((o.vni, o.port, o.host_prefix, n.mtu, n.global), (4096, 4789, 24, 0, true));
        assert_eq!((o.bridge.as_str(), o.tunnel.as_str()), ("bth-0000000000", "btx-0000000000"));
        assert_eq!(n.ipam[0].gateway.to_string(), "10.200.0.1");
        r.options.insert("vni".into(), "77".into());
        r.options.insert("host_block".into(), "26".into());
        r.mtu = Some(1400);
        let n = validate_network_create(&r, &c, &id, 0).unwrap();
        let Driver::Overlay(o) = &n.driver else { panic!() };
        assert_eq!((o.vni, o.host_prefix, o.user_mtu, n.mtu), (77, 26, Some(1400), 1400));
        vnis.insert(77, "other".into());
        vnis.insert(4096, "other".into());
        let mut c = ctx(vec![], &[], &pools);
        c.cluster = Some(ClusterContext { vnis: &vnis });
        assert!(matches!(validate_network_create(&r, &c, &id, 0), Err(CoreError::VniInUse { vni: 77, .. })));
        r.options.remove("vni");
        let n = validate_network_create(&r, &c, &id, 0).unwrap();
        assert!(matches!(&n.driver, Driver::Overlay(o) if o.vni == 4097), "lowest free id");
        let e = |r: NetworkCreate| validate_network_create(&r, &c, &id, 0).unwrap_err();
        let mut bad = r.clone();
        bad.enable_ipv6 = true;
        assert!(matches!(e(bad), CoreError::DriverRefuses { .. }), "IPv4 only");
        let mut bad = r.clone();
        bad.options.insert("host_block".into(), "8".into());
        assert!(matches!(e(bad), CoreError::InvalidOption { .. }));
        let mut bad = r.clone();
        bad.options.insert("parent".into(), "eth0".into());
        assert!(matches!(e(bad), CoreError::DriverRefuses { .. }));
        // macvlan in a cluster: global, per-host slices of the range.
        let mut m = req("lan", Some("192.168.50.0/24"), Some("192.168.50.254"), Some("192.168.50.128/25"));
        m.driver = Some("macvlan".into());
        m.options.insert("parent".into(), "eth1".into());
        let n = validate_network_create(&m, &c, &id, 0).unwrap();
        assert!(n.global && matches!(&n.driver, Driver::Macvlan(d) if d.parent == "eth1" && d.host_prefix == 29), "{:?}", n.driver);
        // ... and local without one.
        let n = validate_network_create(&m, &ctx(vec![], &[], &pools), &id, 0).unwrap();
        assert!(!n.global);
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
        assert!(serde_json::from_str::<NetworkCreate>(r#"{"Name":"a","Internal":true,"EnableIPv6":true}"#).is_ok());
    }
}
