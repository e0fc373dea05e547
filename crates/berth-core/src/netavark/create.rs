//! `netavark create` (podman 5 and later): podman hands over a network
//! definition, the names, bridges and subnets already used, and its subnet
//! pools; the backend validates it and completes it — bridge name, subnet,
//! gateway, IPAM driver, creation time — and prints the result. podman
//! then writes that file and sends it back on every `setup`.
//!
//! berth completes it as netavark 2 does, with two differences that keep
//! later `setup`s working: berth's own networks count as used (their
//! subnets and bridges), and what berth could not honour at `setup` (other
//! drivers, routes, VLANs...) is refused here already, when the user runs
//! `podman network create`, rather than at the first container.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::plan::network_options;
use super::{refuse, NetInfo, Refusal, Subnet};
use crate::request::validate_ifname;
use crate::subnets::{choose_subnet, overlaps, AddressPool};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    pub network: NetInfo,
    pub used: Used,
    pub options: CreateOptions,
}

/// What podman knows to be taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Used {
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Network name → id.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    #[serde(default)]
    pub subnets: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOptions {
    #[serde(default)]
    pub subnet_pools: Vec<SubnetPool>,
    #[serde(default)]
    pub default_interface_name: Option<String>,
    #[serde(default)]
    pub check_used_subnets: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetPool {
    pub base: IpNet,
    /// Prefix length of the subnets cut from `base`.
    pub size: u32,
}

/// berth's own networks, which a podman network must not collide with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BerthNetworks {
    /// (name, id, bridge, subnets) of each.
    pub networks: Vec<(String, String, String, Vec<IpNet>)>,
}

impl BerthNetworks {
    /// From berth's `GET /networks` answer.
    pub fn from_list(list: &serde_json::Value) -> BerthNetworks {
        let networks = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
                let subnets = n["IPAM"]["Config"].as_array().into_iter().flatten().filter_map(|c| c["Subnet"].as_str()?.parse().ok()).collect();
                (s("Name"), s("Id"), n["Berth"]["Bridge"].as_str().unwrap_or_default().to_string(), subnets)
            })
            .collect();
        BerthNetworks { networks }
    }

    /// The others: every berth network but the one podman's network already is.
    fn others<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a (String, String, String, Vec<IpNet>)> + 'a {
        self.networks.iter().filter(move |n| !n.1.eq_ignore_ascii_case(id))
    }
}

/// FNV-1a: the same id always gets the same IPv6 subnet (netavark picks a
/// random one; any free one will do, and a stable one is testable).
fn hash(bytes: &[u8], salt: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes.iter().chain(salt.to_be_bytes().iter()) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A unique local /64 (RFC 4193) for a network, free of `taken`.
fn ula_subnet(id: &str, taken: &[IpNet]) -> Result<IpNet, Refusal> {
    for salt in 0..1000 {
        let h = hash(id.as_bytes(), salt).to_be_bytes();
        let mut o = [0u8; 16];
        o[0] = 0xfd;
        o[1..8].copy_from_slice(&h[..7]);
        let net = IpNet::V6(Ipv6Net::new(o.into(), 64).expect("64 is a valid prefix"));
        if !taken.iter().any(|t| overlaps(t, &net)) {
            return Ok(net);
        }
    }
    refuse("failed to find a free IPv6 subnet")
}

/// The first host address: the gateway podman's networks get by default.
fn first_host(net: &IpNet) -> IpAddr {
    crate::ipam::from_u128(crate::ipam::to_u128(net.network()) + 1, net.addr())
}

/// Completes the network of `create`. `host_links` are the interface names
/// on the host; `now` is the creation time to record (RFC 3339).
pub fn create(input: &CreateInput, berth: &BerthNetworks, host_links: &[String], now: &str) -> Result<NetInfo, Refusal> {
    let mut n = input.network.clone();
    let (name, id) = (n.name.clone(), n.id.clone());
    if name.is_empty() {
        return refuse("Network name must be supplied");
    }
    crate::names::validate_name(&name).map_err(Refusal::from)?;
    if input.used.names.contains_key(&name) {
        return refuse(format!("network {name} already exists"));
    }
    if !(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())) {
        return refuse(format!("network id {id:?} is not a 64-digit hexadecimal id"));
    }
    if let Some(b) = berth.networks.iter().find(|b| b.0 == name && !b.1.eq_ignore_ascii_case(&id)) {
        return refuse(format!("network {name} already exists in berth (id {}): remove it there (berth network rm {name}) or choose another name", &b.1[..12.min(b.1.len())]));
    }
    if n.driver != "bridge" {
        return refuse(format!("driver {:?} is not supported by berth (bridge networks only)", n.driver));
    }
    let ipam = n.ipam_options.get_or_insert_with(BTreeMap::new);
    match ipam.get("driver").map(String::as_str) {
        None | Some("") | Some("host-local") => {
            ipam.insert("driver".into(), "host-local".into());
        }
        Some(d) => return refuse(format!("ipam driver {d:?} is not supported by berth (host-local only)")),
    }
    if n.routes.as_ref().is_some_and(|r| !r.is_empty()) {
        return refuse("static routes are not supported by berth");
    }
    if n.network_dns_servers.as_ref().is_some_and(|s| !s.is_empty()) && !n.dns_enabled {
        return refuse("cannot set NetworkDNSServers if DNS is not enabled for the network");
    }
    // Docker's long option names, as netavark takes them.
    if let Some(opts) = n.options.as_mut() {
        if let Some(m) = opts.remove("com.docker.network.driver.mtu") {
            opts.insert("mtu".into(), m);
        }
        if let Some(b) = opts.remove("com.docker.network.bridge.name") {
            n.network_interface = Some(b);
        }
    }
    let bridge = match n.network_interface.clone() {
        Some(b) => {
            validate_ifname(&b).map_err(|e| Refusal(format!("bridge name {e}")))?;
            if input.used.interfaces.contains(&b) || berth.others(&id).any(|o| o.2 == b) {
                return refuse(format!("bridge name {b} already in use"));
            }
            b
        }
        None => {
            let prefix = input.options.default_interface_name.as_deref().filter(|p| !p.is_empty()).ok_or_else(|| Refusal("default interface name is not set".into()))?;
            let taken = |c: &str| {
                input.used.interfaces.iter().any(|u| u == c) || input.used.names.contains_key(c) || host_links.iter().any(|l| l == c) || berth.networks.iter().any(|o| o.2 == c)
            };
            let found = (1..100_000).map(|i| format!("{prefix}{i}")).find(|c| !taken(c));
            found.ok_or_else(|| Refusal(format!("no free bridge name {prefix}N")))?
        }
    };
    n.network_interface = Some(bridge.clone());
    network_options(&name, n.options.as_ref().unwrap_or(&BTreeMap::new()), &bridge)?;

    let berth_subnets: Vec<IpNet> = berth.others(&id).flat_map(|o| o.3.iter().copied()).collect();
    let mut taken: Vec<IpNet> = berth_subnets.clone();
    if input.options.check_used_subnets {
        taken.extend(input.used.subnets.iter().copied());
    }
    let mut subnets = n.subnets.clone().unwrap_or_default();
    if subnets.is_empty() {
        let pools: Vec<AddressPool> = input
            .options
            .subnet_pools
            .iter()
            .filter(|p| p.base.addr().is_ipv4())
            .filter_map(|p| u8::try_from(p.size).ok().map(|size| AddressPool { base: p.base.trunc(), size }))
            .filter(|p| p.check().is_ok())
            .collect();
        let s = choose_subnet(&pools, false, &taken, &[]).map_err(|_| Refusal("could not find free subnet from subnet pools".into()))?;
        subnets.push(Subnet { subnet: s, gateway: None, lease_range: None });
    }
    if n.ipv6_enabled && !subnets.iter().any(|s| s.subnet.addr().is_ipv6()) {
        let mut all = taken.clone();
        all.extend(subnets.iter().map(|s| s.subnet));
        subnets.push(Subnet { subnet: ula_subnet(&id, &all)?, gateway: None, lease_range: None });
    }
    for s in subnets.iter_mut() {
        let net = s.subnet;
        if net.trunc() != net {
            return refuse(format!("subnet {net} is not a network address (did you mean {}?)", net.trunc()));
        }
        crate::subnets::check_usable(&net).map_err(Refusal::from)?;
        if net.prefix_len() > if net.addr().is_ipv4() { 30 } else { 126 } {
            return refuse(format!("subnet {net} is too small for a gateway and containers"));
        }
        if let Some(b) = berth.others(&id).find(|o| o.3.iter().any(|x| overlaps(x, &net))) {
            return refuse(format!("subnet {net} overlaps berth's network {}", b.0));
        }
        if input.options.check_used_subnets && input.used.subnets.iter().any(|u| overlaps(u, &net)) {
            return refuse(format!("subnet {net} is already used on the host or by another network"));
        }
        let gw = *s.gateway.get_or_insert_with(|| first_host(&net));
        if !net.contains(&gw) || gw == net.network() || (net.addr().is_ipv4() && gw == net.broadcast()) {
            return refuse(format!("gateway {gw} is not a usable address of subnet {net}"));
        }
        if let Some(r) = &s.lease_range {
            for ip in [r.start_ip, r.end_ip].into_iter().flatten() {
                if !net.contains(&ip) {
                    return refuse(format!("lease range address {ip} is outside subnet {net}"));
                }
            }
        }
    }
    for fam in [false, true] {
        if subnets.iter().filter(|s| s.subnet.addr().is_ipv6() == fam).count() > 1 {
            return refuse(format!("more than one {} subnet: a berth network has at most one IPv4 and one IPv6 subnet", if fam { "IPv6" } else { "IPv4" }));
        }
    }
    n.ipv6_enabled = subnets.iter().any(|s| s.subnet.addr().is_ipv6());
    n.subnets = Some(subnets);
    n.created = Some(now.to_string());
    Ok(n)
}
