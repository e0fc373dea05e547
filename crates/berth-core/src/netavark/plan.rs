//! `setup`'s input checked field by field into berth requests. Everything
//! podman can send is either honoured or refused here with a message
//! naming the network, the field and why; nothing is dropped silently.
//!
//! What each field becomes:
//! - a network (`network_info`): a berth network of the same name and id,
//!   bridge `network_interface`, the subnets and gateways podman chose,
//!   `internal`, `options.mtu`, `network_dns_servers` as its resolver's
//!   upstreams (`-o dns_servers=`); `isolate` is what berth does anyway
//!   (every network is isolated from the others, netavark 2's default);
//! - the per-container options: one entry of an attach request
//!   (`static_ips` → `Ip`/`Ip6`, `static_mac` → `Mac`, `interface_name` →
//!   `Ifname`, `aliases` → `Aliases` on networks with DNS);
//! - `port_mappings`: `-p` specifications; `dns_servers`: the container's
//!   resolver upstreams; `container_id`: a label.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use super::{refuse, Input, NamedPerNetwork, NetInfo, PortMapping, Refusal, LABEL_CONTAINER_ID};
use crate::names::validate_name;
use crate::request::{parse_mac, validate_ifname};

/// One subnet as berth makes it: podman's subnet and gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub subnet: IpNet,
    pub gateway: IpAddr,
}

/// One network of the container: the berth network it needs and the
/// container's place on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPlan {
    pub name: String,
    pub id: String,
    pub bridge: String,
    /// In podman's order (the StatusBlock lists them so).
    pub subnets: Vec<Subnet>,
    pub internal: bool,
    pub dns_enabled: bool,
    /// None: berth's default.
    pub mtu: Option<u32>,
    /// The network's resolver upstreams (`network_dns_servers`).
    pub dns_servers: Vec<IpAddr>,
    pub ifname: String,
    /// One per subnet, in subnet order.
    pub ips: Vec<IpAddr>,
    pub mac: Option<String>,
    /// Only on networks with DNS (podman's aliases mean names, nothing else).
    pub aliases: Vec<String>,
}

/// A whole `setup`: the container, its networks (in interface order, so
/// the first one, `eth0`, carries the default route) and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupPlan {
    pub container_id: String,
    pub container_name: String,
    pub networks: Vec<NetPlan>,
    pub publish: Vec<String>,
    /// The container's own resolver upstreams (`dns_servers`).
    pub dns: Vec<IpAddr>,
}

fn csv(ips: &[IpAddr]) -> String {
    ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

impl NetPlan {
    pub fn gateways(&self) -> Vec<IpAddr> {
        self.subnets.iter().map(|s| s.gateway).collect()
    }

    fn ip(&self, v6: bool) -> Option<IpAddr> {
        self.ips.iter().copied().find(|i| i.is_ipv6() == v6)
    }

    /// `POST /networks/create` for this network.
    pub fn create_body(&self) -> Value {
        let mut options = Map::new();
        options.insert("bridge_name".into(), json!(self.bridge));
        if !self.dns_servers.is_empty() {
            options.insert("dns_servers".into(), json!(csv(&self.dns_servers)));
        }
        let v6 = self.subnets.iter().any(|s| s.subnet.addr().is_ipv6());
        let v4 = self.subnets.iter().any(|s| s.subnet.addr().is_ipv4());
        let mut body = json!({
            "Name": self.name,
            "Id": self.id,
            "Driver": "bridge",
            "EnableIPv6": v6,
            "EnableIPv4": v4,
            "IPAM": {"Config": self.subnets.iter().map(|s| json!({"Subnet": s.subnet.to_string(), "Gateway": s.gateway.to_string()})).collect::<Vec<_>>()},
            "Internal": self.internal,
            "Options": options,
        });
        if let Some(m) = self.mtu {
            body["MTU"] = json!(m);
        }
        body
    }

    /// This network's entry in an attach request.
    pub fn attach_entry(&self) -> Value {
        let mut e = json!({"Network": self.name, "Ifname": self.ifname, "Aliases": self.aliases});
        if let Some(ip) = self.ip(false) {
            e["Ip"] = json!(ip);
        }
        if let Some(ip) = self.ip(true) {
            e["Ip6"] = json!(ip);
        }
        if let Some(m) = &self.mac {
            e["Mac"] = json!(m);
        }
        e
    }

    /// `POST /networks/NAME/connect` (podman's `network connect`).
    pub fn connect_body(&self, container: &str) -> Value {
        let mut b = json!({"Container": container, "Aliases": self.aliases, "InterfaceName": self.ifname});
        if let Some(ip) = self.ip(false) {
            b["IPAddress"] = json!(ip);
        }
        if let Some(ip) = self.ip(true) {
            b["IPv6Address"] = json!(ip);
        }
        if let Some(m) = &self.mac {
            b["MacAddress"] = json!(m);
        }
        b
    }
}

impl SetupPlan {
    /// `POST /containers/attach`: the namespace podman made, with every network at once.
    pub fn attach_body(&self, netns: &str) -> Value {
        let mut b = json!({
            "Netns": netns,
            "Name": self.container_name,
            "Networks": self.networks.iter().map(NetPlan::attach_entry).collect::<Vec<_>>(),
            "Publish": self.publish,
            "Labels": {LABEL_CONTAINER_ID: self.container_id},
            // podman's conmon holds the host ports open (podman's own
            // reservation): berth checks only its own mappings.
            "PortsReserved": true,
        });
        if !self.dns.is_empty() {
            b["Dns"] = json!(self.dns);
        }
        b
    }
}

/// A 64-hex id (podman's container and network ids).
fn check_id(what: &str, id: &str) -> Result<(), Refusal> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        refuse(format!("{what} {id:?} is not a 64-digit hexadecimal id"))
    }
}

/// Network options (`podman network create -o`): the ones berth honours,
/// refusals for the rest. Returns the MTU asked for.
pub(super) fn network_options(net: &str, opts: &BTreeMap<String, String>, bridge: &str) -> Result<Option<u32>, Refusal> {
    let mut mtu = None;
    for (k, v) in opts {
        let bad = |why: &str| refuse(format!("network {net}: option {k}={v:?}: {why}"));
        match k.as_str() {
            "mtu" | "com.docker.network.driver.mtu" => match v.parse::<u32>() {
                Ok(0) => {}
                Ok(m) => mtu = Some(m),
                Err(_) => return bad("not a number"),
            },
            // berth isolates every network from every other (netavark 2's
            // default, "strict"): `true` and `strict` are what it does anyway.
            "isolate" => match v.as_str() {
                "true" | "strict" => {}
                "false" => return bad("berth isolates every network from the others (as Docker and netavark 2 do) and cannot open it to them"),
                _ => return bad("use true, strict or false"),
            },
            "com.docker.network.bridge.name" if v == bridge => {}
            "com.docker.network.bridge.name" => return bad(&format!("the bridge is network_interface ({bridge}); give one name")),
            "mode" if v.is_empty() || v == "managed" => {}
            "mode" => return bad("berth manages its bridges (mode managed); unmanaged bridges are not supported"),
            "no_default_route" if matches!(v.as_str(), "false" | "0" | "") => {}
            "no_default_route" => return bad("berth routes through the container's first network with a gateway and cannot leave that route out"),
            "metric" => return bad("berth gives one default route, through the container's first network (eth0), so route metrics are not supported"),
            "vlan" => return bad("berth's bridges do not filter VLANs"),
            "vrf" => return bad("berth does not put bridges into VRFs"),
            _ => return bad("not supported by berth (it honours mtu, isolate, mode=managed and com.docker.network.bridge.name)"),
        }
    }
    Ok(mtu)
}

/// The subnets of a network: at most one per family, each with a gateway
/// inside it, IPv6 ones only with `ipv6_enabled`.
fn subnets(info: &NetInfo) -> Result<Vec<Subnet>, Refusal> {
    let net = &info.name;
    let given = info.subnets.as_deref().unwrap_or_default();
    if given.is_empty() {
        return refuse(format!("network {net} has no subnets: berth gives every container an address from its network's subnets"));
    }
    let mut out: Vec<Subnet> = Vec::new();
    for s in given {
        let subnet = s.subnet;
        if subnet.trunc() != subnet {
            return refuse(format!("network {net}: subnet {subnet} is not a network address (did you mean {}?)", subnet.trunc()));
        }
        if out.iter().any(|o| o.subnet.addr().is_ipv6() == subnet.addr().is_ipv6()) {
            let fam = if subnet.addr().is_ipv6() { "IPv6" } else { "IPv4" };
            return refuse(format!("network {net} has more than one {fam} subnet: a berth network has at most one IPv4 and one IPv6 subnet"));
        }
        let Some(gateway) = s.gateway else {
            return refuse(format!("network {net}: subnet {subnet} has no gateway; berth's networks always have one (the bridge's address)"));
        };
        if !subnet.contains(&gateway) || gateway == subnet.network() || (subnet.addr().is_ipv4() && gateway == subnet.broadcast()) {
            return refuse(format!("network {net}: gateway {gateway} is not a usable address of subnet {subnet}"));
        }
        if let Some(r) = &s.lease_range {
            for ip in [r.start_ip, r.end_ip].into_iter().flatten() {
                if !subnet.contains(&ip) {
                    return refuse(format!("network {net}: lease range address {ip} is outside subnet {subnet}"));
                }
            }
        }
        out.push(Subnet { subnet, gateway });
    }
    let has_v6 = out.iter().any(|s| s.subnet.addr().is_ipv6());
    if has_v6 != info.ipv6_enabled {
        return refuse(format!(
            "network {net}: ipv6_enabled is {} but it {} an IPv6 subnet",
            info.ipv6_enabled,
            if has_v6 { "has" } else { "has no" }
        ));
    }
    Ok(out)
}

/// The container's addresses on one network: one per subnet, in subnet order.
fn static_ips(net: &str, subnets: &[Subnet], given: &[IpAddr]) -> Result<Vec<IpAddr>, Refusal> {
    let mut out = Vec::new();
    for s in subnets {
        let mine: Vec<&IpAddr> = given.iter().filter(|ip| s.subnet.contains(*ip)).collect();
        match mine.as_slice() {
            [ip] => out.push(**ip),
            [] => return refuse(format!("network {net}: no static ip for subnet {} (berth takes the addresses podman's IPAM chose)", s.subnet)),
            _ => return refuse(format!("network {net}: several static ips in subnet {}: berth gives a container one address per subnet", s.subnet)),
        }
    }
    if let Some(stray) = given.iter().find(|ip| !subnets.iter().any(|s| s.subnet.contains(*ip))) {
        return refuse(format!("network {net}: static ip {stray} is in none of its subnets"));
    }
    Ok(out)
}

fn plan_network(per: &NamedPerNetwork, info: &NetInfo) -> Result<NetPlan, Refusal> {
    let net = per.name.as_str();
    if info.name != net {
        return refuse(format!("network_info for {net} describes a network named {}", info.name));
    }
    validate_name(net).map_err(|e| Refusal(format!("network {net}: {e}")))?;
    check_id(&format!("network {net}: id"), &info.id)?;
    if info.driver != "bridge" {
        return refuse(format!("network {net}: driver {:?} is not supported by berth (bridge networks only)", info.driver));
    }
    let bridge = match info.network_interface.as_deref() {
        Some(b) if !b.is_empty() => b.to_string(),
        _ => return refuse(format!("network {net}: no bridge interface name given (network_interface)")),
    };
    validate_ifname(&bridge).map_err(|e| Refusal(format!("network {net}: bridge {e}")))?;
    match info.ipam_options.as_ref().and_then(|o| o.get("driver")).map(String::as_str) {
        None | Some("") | Some("host-local") => {}
        Some(d) => return refuse(format!("network {net}: ipam driver {d:?} is not supported by berth (host-local only: podman chooses the addresses)")),
    }
    if let Some(extra) = info.ipam_options.as_ref().and_then(|o| o.keys().find(|k| *k != "driver")) {
        return refuse(format!("network {net}: ipam option {extra:?} is not supported by berth"));
    }
    if info.routes.as_ref().is_some_and(|r| !r.is_empty()) {
        return refuse(format!("network {net}: static routes are not supported by berth"));
    }
    let subnets = subnets(info)?;
    let mtu = network_options(net, info.options.as_ref().unwrap_or(&BTreeMap::new()), &bridge)?;
    if let Some(m) = mtu {
        crate::request::check_mtu(m, subnets.iter().any(|s| s.subnet.addr().is_ipv6())).map_err(|e| Refusal(format!("network {net}: {e}")))?;
    }
    if per.interface_name.is_empty() {
        return refuse(format!("network {net}: no container interface name given"));
    }
    validate_ifname(&per.interface_name).map_err(|e| Refusal(format!("network {net}: interface {e}")))?;
    if let Some(k) = per.options.as_ref().and_then(|o| o.keys().next()) {
        return refuse(format!("network {net}: per-container option {k:?} is not supported by berth"));
    }
    let ips = static_ips(net, &subnets, per.static_ips.as_deref().unwrap_or_default())?;
    let mac = per.static_mac.as_deref().map(parse_mac).transpose().map_err(|e| Refusal(format!("network {net}: {e}")))?;
    let mut aliases = Vec::new();
    if info.dns_enabled {
        for a in per.aliases.iter().flatten() {
            validate_name(a).map_err(|e| Refusal(format!("network {net}: alias: {e}")))?;
            if !aliases.contains(a) {
                aliases.push(a.clone());
            }
        }
    }
    Ok(NetPlan {
        name: net.to_string(),
        id: info.id.to_ascii_lowercase(),
        bridge,
        subnets,
        internal: info.internal,
        dns_enabled: info.dns_enabled,
        mtu,
        dns_servers: info.network_dns_servers.clone().unwrap_or_default(),
        ifname: per.interface_name.clone(),
        ips,
        mac,
        aliases,
    })
}

/// `eth2` before `eth10`: interface names by their text, then number.
fn ifname_order(a: &str) -> (String, u64) {
    let digits = a.len() - a.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, num) = a.split_at(a.len() - digits);
    (stem.to_string(), num.parse().unwrap_or(0))
}

/// Checks a whole `setup` input and plans it.
pub fn plan_setup(input: &Input) -> Result<SetupPlan, Refusal> {
    check_id("container id", &input.container_id)?;
    validate_name(&input.container_name).map_err(|e| Refusal(format!("container name: {e}")))?;
    for name in input.network_info.keys() {
        if !input.networks.iter().any(|n| &n.name == name) {
            return refuse(format!("network options for network {name} not found"));
        }
    }
    let mut networks = Vec::new();
    for per in &input.networks {
        let info = input.network_info.get(&per.name).ok_or_else(|| Refusal(format!("network info for network {} not found", per.name)))?;
        let p = plan_network(per, info)?;
        if networks.iter().any(|o: &NetPlan| o.ifname == p.ifname) {
            return refuse(format!("interface name {} is given to two networks", p.ifname));
        }
        networks.push(p);
    }
    networks.sort_by_key(|n| ifname_order(&n.ifname));
    let ports = input.port_mappings.as_deref().unwrap_or_default();
    let publish = publish_specs(ports)?;
    if !publish.is_empty() && !networks.is_empty() && networks.iter().all(|n| n.internal) {
        let names: Vec<&str> = networks.iter().map(|n| n.name.as_str()).collect();
        return refuse(format!("cannot publish ports of a container only on internal networks ({}): internal networks have no way in or out", names.join(", ")));
    }
    Ok(SetupPlan {
        container_id: input.container_id.to_ascii_lowercase(),
        container_name: input.container_name.clone(),
        networks,
        publish,
        dns: input.dns_servers.clone().unwrap_or_default(),
    })
}

/// podman's port mappings as `-p` specifications: `[HOSTIP:]H1[-H2]:C1[-C2]/PROTO`,
/// one per protocol of a comma-separated list.
pub fn publish_specs(ports: &[PortMapping]) -> Result<Vec<String>, Refusal> {
    let mut out = Vec::new();
    for p in ports {
        let what = format!("port mapping {}:{}", p.host_port, p.container_port);
        if p.container_port == 0 || p.host_port == 0 {
            return refuse(format!("{what}: ports are 1-65535 (podman chooses a host port itself before calling its backend)"));
        }
        if p.range == 0 {
            return refuse(format!("{what}: range 0 (it counts ports, so at least 1)"));
        }
        let last = |first: u16| first as u32 + p.range as u32 - 1;
        if last(p.host_port) > 65535 || last(p.container_port) > 65535 {
            return refuse(format!("{what}: a range of {} ports goes past 65535", p.range));
        }
        let host = match p.host_ip.as_str() {
            "" => String::new(),
            s => match s.parse::<IpAddr>() {
                Ok(IpAddr::V6(a)) => format!("[{a}]:"),
                Ok(IpAddr::V4(a)) => format!("{a}:"),
                Err(_) => return refuse(format!("{what}: host_ip {s:?} is not an IP address")),
            },
        };
        let span = |first: u16| if p.range == 1 { first.to_string() } else { format!("{first}-{}", last(first)) };
        let protos: Vec<&str> = p.protocol.split(',').map(str::trim).collect();
        for proto in &protos {
            match *proto {
                "tcp" | "udp" => out.push(format!("{host}{}:{}/{proto}", span(p.host_port), span(p.container_port))),
                "sctp" => return refuse(format!("{what}: berth publishes tcp and udp ports; sctp is not supported")),
                other => return refuse(format!("{what}: unknown protocol {other:?} (tcp, udp, or both as \"tcp,udp\")")),
            }
        }
    }
    // What berth parses must be what was meant (and it checks each spec once more).
    for s in &out {
        crate::ports::parse_publish(s).map_err(Refusal::from)?;
    }
    Ok(out)
}

/// netavark's check of the namespace path's form (its existence is the
/// shell's to check): an absolute path.
pub fn check_netns_path(path: &str) -> Result<(), Refusal> {
    if path.starts_with('/') && !path.contains('\0') {
        Ok(())
    } else {
        refuse(format!("invalid namespace path: {path:?} is not an absolute path"))
    }
}
