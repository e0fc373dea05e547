//! From a CNI call to berth requests, and from berth's answer to the CNI
//! result.
//!
//! One CNI attachment — (network name, `CNI_CONTAINERID`, `CNI_IFNAME`), the
//! key the spec gives state — is one berth container of kind "attached",
//! named by a pure function of that key ([`container_name`]), so DEL finds
//! it without a lookup and without the namespace, and labelled with the key
//! ([`labels`]) so GC finds every attachment of a network.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};

use super::config::{PluginConfig, PortMapping};
use super::env::CniArgs;
use super::result::{CniResult, Dns, Interface, IpConfig, Route};
use super::CniError;

pub const LABEL_NETWORK: &str = "cni.network";
pub const LABEL_CONTAINER_ID: &str = "cni.containerID";
pub const LABEL_IFNAME: &str = "cni.ifname";
pub const LABEL_NETNS: &str = "cni.netns";

/// The identity of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment<'a> {
    /// The CNI network name (the configuration's `name`).
    pub network: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
}

/// FNV-1a, 64 bits: stable across releases and machines (std's hasher is not).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        // A NUL between parts: ("ab", "c") and ("a", "bc") differ.
        let sep: &[u8] = if i > 0 { b"\0" } else { b"" };
        for b in sep.iter().copied().chain(p.bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// `cni-` + the first 12 characters of the container id + `-` + 10 hex
/// digits of a hash of the whole key: readable in `berth ps`, at most 27
/// characters, a valid berth name for every valid container id, and the
/// same on every call for the same attachment.
pub fn container_name(a: &Attachment) -> String {
    let short: String = a.container_id.chars().take(12).collect();
    let h = fnv1a(&[a.network, a.container_id, a.ifname]);
    format!("cni-{short}-{:010x}", h >> 24)
}

/// The labels berth keeps on the container: the attachment's key (GC
/// matches on it), the namespace it was given, the pod name, and the
/// configuration's `args.cni.labels`.
pub fn labels(a: &Attachment, netns: &str, args: &CniArgs, conf: &PluginConfig) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in &conf.arg_labels {
        m.insert(k.clone(), json!(v));
    }
    m.insert(LABEL_NETWORK.into(), json!(a.network));
    m.insert(LABEL_CONTAINER_ID.into(), json!(a.container_id));
    m.insert(LABEL_IFNAME.into(), json!(a.ifname));
    m.insert(LABEL_NETNS.into(), json!(netns));
    if let Some(p) = &args.pod_name {
        m.insert("cni.k8sPodName".into(), json!(p));
    }
    if let Some(p) = &args.pod_namespace {
        m.insert("cni.k8sPodNamespace".into(), json!(p));
    }
    Value::Object(m)
}

fn host_part(ip: Option<IpAddr>) -> String {
    match ip {
        None => String::new(),
        Some(IpAddr::V6(a)) => format!("[{a}]:"),
        Some(IpAddr::V4(a)) => format!("{a}:"),
    }
}

/// `portMappings` as berth's `-p` specs. Runtimes expand ranges into one
/// entry per port; runs of consecutive host and container ports (same
/// address and protocol) become one range again, which berth publishes as
/// one set of map elements.
pub fn publish_specs(ms: &[PortMapping]) -> Vec<String> {
    let mut sorted: Vec<&PortMapping> = ms.iter().collect();
    sorted.sort_by_key(|m| (m.host_ip, m.protocol.clone(), m.host_port, m.container_port));
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut j = i;
        while j + 1 < sorted.len() {
            let (a, b) = (sorted[j], sorted[j + 1]);
            let next = b.host_ip == a.host_ip && b.protocol == a.protocol && b.host_port as u32 == a.host_port as u32 + 1 && b.container_port as u32 == a.container_port as u32 + 1;
            if !next {
                break;
            }
            j += 1;
        }
        let last = sorted[j];
        let hp = if j > i { format!("{}-{}", first.host_port, last.host_port) } else { first.host_port.to_string() };
        let cp = if j > i { format!("{}-{}", first.container_port, last.container_port) } else { first.container_port.to_string() };
        out.push(format!("{}{hp}:{cp}/{}", host_part(first.host_ip), first.protocol));
        i = j + 1;
    }
    out
}

/// Whether berth's default network is meant (it has no names or aliases).
fn is_default_network(n: &str) -> bool {
    n == crate::model::DEFAULT_NETWORK || n == crate::model::DEFAULT_NETWORK_ALIAS
}

/// The static addresses asked for, at most one per family. First source
/// wins: the delegated IPAM plugin, `runtimeConfig.ips`, `args.cni.ips`,
/// `CNI_ARGS` `IP=`.
fn static_ips(conf: &PluginConfig, args: &CniArgs, ipam: &[IpAddr]) -> Result<(Option<IpAddr>, Option<IpAddr>), CniError> {
    let source: &[IpAddr] = [ipam, &conf.runtime.ips, &conf.arg_ips, &args.ips].into_iter().find(|s| !s.is_empty()).unwrap_or(&[]);
    let (mut v4, mut v6) = (None, None);
    for ip in source {
        let slot = if ip.is_ipv6() { &mut v6 } else { &mut v4 };
        if slot.is_some() {
            return Err(CniError::config(format!("more than one {} address asked for ({source:?}): berth gives an attachment one address per family", if ip.is_ipv6() { "IPv6" } else { "IPv4" })));
        }
        *slot = Some(*ip);
    }
    Ok((v4, v6))
}

/// `POST /containers/attach` for an ADD.
pub fn attach_body(conf: &PluginConfig, a: &Attachment, netns: &str, args: &CniArgs, ipam_ips: &[IpAddr]) -> Result<Value, CniError> {
    let (ip, ip6) = static_ips(conf, args, ipam_ips)?;
    let mac = match conf.runtime.mac.as_ref().or(args.mac.as_ref()) {
        Some(m) => Some(crate::request::parse_mac(m).map_err(|e| CniError::config(e.to_string()))?),
        None => None,
    };
    let mut aliases: Vec<String> = Vec::new();
    if !is_default_network(&conf.network) {
        // podman's aliases, then its container name (K8S_POD_NAME), so
        // containers find each other by the names their runtime gave them.
        for al in conf.runtime.aliases.iter().chain(args.pod_name.iter()) {
            if crate::names::validate_name(al).is_ok() && !aliases.contains(al) {
                aliases.push(al.clone());
            }
        }
    }
    let mut net = json!({"Network": conf.network, "Ifname": a.ifname, "Aliases": aliases});
    if let Some(i) = ip {
        net["Ip"] = json!(i.to_string());
    }
    if let Some(i) = ip6 {
        net["Ip6"] = json!(i.to_string());
    }
    if let Some(m) = mac {
        net["Mac"] = json!(m);
    }
    Ok(json!({
        "Netns": netns,
        "Name": container_name(a),
        "Networks": [net],
        "Publish": publish_specs(&conf.runtime.port_mappings),
        "Labels": labels(a, netns, args, conf),
    }))
}

/// The smallest CIDR that is exactly `start..=end`, if there is one.
fn exact_cidr(start: IpAddr, end: IpAddr) -> Option<IpNet> {
    let (s, e) = (crate::ipam::to_u128(start), crate::ipam::to_u128(end));
    let bits: u32 = if start.is_ipv6() { 128 } else { 32 };
    if start.is_ipv6() != end.is_ipv6() || e < s {
        return None;
    }
    let size = e - s + 1;
    if !size.is_power_of_two() || s % size != 0 {
        return None;
    }
    IpNet::new(start, (bits - size.trailing_zeros()) as u8).ok()
}

/// One address block per family the network should have: (subnet, gateway, range).
type Block = (IpNet, Option<IpAddr>, Option<IpNet>);

/// The blocks a configuration asks for: `subnet`/`gateway`/`ipRange`, else
/// the runtime's `ipRanges` (first range of each set), else the subnets of
/// the addresses a delegated IPAM plugin gave.
pub fn wanted_blocks(conf: &PluginConfig, ipam: Option<&CniResult>) -> Result<Vec<Block>, CniError> {
    let family = |v6: bool| move |ip: &IpAddr| ip.is_ipv6() == v6;
    let mut out: Vec<Block> = Vec::new();
    if !conf.subnets.is_empty() {
        for s in &conf.subnets {
            let v6 = s.addr().is_ipv6();
            let gw = conf.gateways.iter().copied().find(family(v6));
            let range = conf.ip_ranges.iter().copied().find(|r| r.addr().is_ipv6() == v6);
            out.push((*s, gw, range));
        }
    } else if !conf.runtime.ip_ranges.is_empty() {
        for set in &conf.runtime.ip_ranges {
            let Some(r) = set.first() else { continue };
            let range = match (r.range_start, r.range_end) {
                (None, None) => None,
                (s, e) => {
                    let s = s.unwrap_or_else(|| r.subnet.network());
                    let e = e.unwrap_or_else(|| r.subnet.broadcast());
                    Some(exact_cidr(s, e).ok_or_else(|| CniError::config(format!("ipRanges: {s}-{e} is not a CIDR block; berth allocates from a subnet or a CIDR range within it")))?)
                }
            };
            out.push((r.subnet, r.gateway, range));
        }
    } else if let Some(res) = ipam {
        for ip in &res.ips {
            out.push((ip.address.trunc(), ip.gateway, None));
        }
    } else if !conf.gateways.is_empty() || !conf.ip_ranges.is_empty() {
        return Err(CniError::config("gateway and ipRange need a subnet"));
    }
    Ok(out)
}

/// `POST /networks/create` for a network the configuration names and
/// berth does not have yet.
pub fn network_create_body(conf: &PluginConfig, ipam: Option<&CniResult>) -> Result<Value, CniError> {
    let blocks = wanted_blocks(conf, ipam)?;
    let config: Vec<Value> = blocks
        .iter()
        .map(|(s, g, r)| {
            let mut c = json!({"Subnet": s.to_string()});
            if let Some(g) = g {
                c["Gateway"] = json!(g.to_string());
            }
            if let Some(r) = r {
                c["IPRange"] = json!(r.to_string());
            }
            c
        })
        .collect();
    let has6 = blocks.iter().any(|b| b.0.addr().is_ipv6());
    let has4 = blocks.iter().any(|b| b.0.addr().is_ipv4());
    let mut opts = serde_json::Map::new();
    if let Some(icc) = conf.icc {
        opts.insert("icc".into(), json!(icc.to_string()));
    }
    if let Some(m) = conf.ip_masq {
        opts.insert("masquerade".into(), json!(m.to_string()));
    }
    if let Some(b) = &conf.bridge {
        opts.insert("bridge_name".into(), json!(b));
    }
    let mut body = json!({
        "Name": conf.network,
        "Driver": "bridge",
        "EnableIPv6": conf.ipv6 || has6,
        "EnableIPv4": has4 || blocks.is_empty(),
        "IPAM": {"Config": config},
        "Internal": conf.internal,
        "Options": opts,
    });
    if let Some(m) = conf.mtu {
        body["MTU"] = json!(m);
    }
    Ok(body)
}

fn s<'a>(v: &'a Value, k: &str) -> Result<&'a str, CniError> {
    v.get(k).and_then(Value::as_str).ok_or_else(|| CniError::new(super::code::INTERNAL, "unexpected answer from the berth daemon", format!("no {k} in {v}")))
}

/// The result of an ADD from berth's answer (the attach response's
/// `Endpoints`): the bridge, the host end of the veth pair and the
/// container's interface, like the reference bridge plugin reports them;
/// one address per family with its gateway; a default route per gateway;
/// the network's resolver as nameserver. Checks the addresses against the
/// blocks the configuration asked for (a network that already existed
/// with other subnets is an error, not a silent difference).
pub fn result_from_endpoints(endpoints: &Value, conf: &PluginConfig, netns: &str, ipam: Option<&CniResult>) -> Result<CniResult, CniError> {
    let eps = endpoints.as_array().ok_or_else(|| CniError::new(super::code::INTERNAL, "unexpected answer from the berth daemon", format!("Endpoints is {endpoints}")))?;
    let ep = eps.first().ok_or_else(|| CniError::new(super::code::INTERNAL, "unexpected answer from the berth daemon", "no endpoint"))?;
    let mtu = ep.get("Mtu").and_then(Value::as_u64).map(|m| m as u32);
    let opt = |k: &str| ep.get(k).and_then(Value::as_str).map(str::to_string);
    let mut r = CniResult::default();
    r.interfaces.push(Interface { name: s(ep, "Bridge")?.to_string(), mac: opt("BridgeMac"), mtu, ..Default::default() });
    r.interfaces.push(Interface { name: s(ep, "HostIfname")?.to_string(), mac: opt("HostMac"), mtu, ..Default::default() });
    r.interfaces.push(Interface { name: s(ep, "Ifname")?.to_string(), mac: opt("Mac"), mtu, sandbox: Some(netns.to_string()), ..Default::default() });
    let blocks = wanted_blocks(conf, ipam)?;
    for a in ep.get("Addresses").and_then(Value::as_array).into_iter().flatten() {
        let addr: IpNet = s(a, "Address")?.parse().map_err(|_| CniError::new(super::code::INTERNAL, "unexpected answer from the berth daemon", format!("address {a}")))?;
        let gateway: Option<IpAddr> = a.get("Gateway").and_then(Value::as_str).and_then(|g| g.parse().ok());
        if let Some((want, _, _)) = blocks.iter().find(|b| b.0.addr().is_ipv6() == addr.addr().is_ipv6()) {
            if addr.trunc() != *want {
                return Err(CniError::config(format!("berth network {:?} already exists with subnet {}, but the configuration asks for {want}", conf.network, addr.trunc())));
            }
        }
        r.ips.push(IpConfig { address: addr, gateway, interface: Some(2) });
        if let Some(g) = gateway {
            let any: IpNet = if g.is_ipv6() { "::/0".parse().unwrap() } else { "0.0.0.0/0".parse().unwrap() };
            r.routes.push(Route::new(any, Some(g)));
        }
    }
    for (want, _, _) in &blocks {
        if !r.ips.iter().any(|ip| ip.address.addr().is_ipv6() == want.addr().is_ipv6()) {
            return Err(CniError::config(format!("berth network {:?} already exists without a subnet like {want}", conf.network)));
        }
    }
    let resolver: Vec<String> = ep.get("Dns").and_then(Value::as_array).into_iter().flatten().filter_map(|d| d.as_str().map(str::to_string)).collect();
    let rt = conf.runtime.dns.as_ref().or(conf.dns.as_ref());
    r.dns = Dns {
        // berth's resolver answers names and forwards the rest; without one
        // (the default network) the runtime's or configuration's servers.
        nameservers: if resolver.is_empty() { rt.map(|d| d.nameservers.iter().map(|n| n.to_string()).collect()).unwrap_or_default() } else { resolver },
        domain: rt.and_then(|d| d.domain.clone()),
        search: rt.map(|d| d.search.clone()).unwrap_or_default(),
        options: rt.map(|d| d.options.clone()).unwrap_or_default(),
    };
    Ok(r)
}
