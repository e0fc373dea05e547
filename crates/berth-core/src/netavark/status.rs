//! The decisions that need the daemon's view, and the answer to podman:
//! whether an existing berth network is podman's network, what to do with
//! an existing container of the same name (`network connect`, a stale
//! namespace, someone else's), what a teardown takes away, and the
//! StatusBlock built from the endpoints berth made.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use super::plan::{NetPlan, SetupPlan};
use super::{refuse, Input, Refusal, LABEL_CONTAINER_ID, SEARCH_DOMAIN};

/// How an existing berth network of the podman network's name relates to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkMatch {
    /// Same id: berth made it from this podman network (and may remove it
    /// when its last podman container goes). False: a berth network with
    /// the same settings, used as it is and never removed by podman's calls.
    pub ours: bool,
    /// Podman's upstream servers for the network, when berth's differ.
    pub dns_update: Option<Vec<IpAddr>>,
}

fn parse_ips(csv: &str) -> Vec<IpAddr> {
    csv.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

/// Compares podman's network with berth's network of that name (berth's
/// `network inspect` JSON); a difference is a collision, said in full.
pub fn check_network(want: &NetPlan, have: &Value) -> Result<NetworkMatch, Refusal> {
    let mut diffs = Vec::new();
    let driver = have["Driver"].as_str().unwrap_or_default();
    if driver != "bridge" {
        diffs.push(format!("driver {driver} (podman's is bridge)"));
    }
    let theirs: BTreeSet<(String, String)> = have["IPAM"]["Config"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["Subnet"].as_str().unwrap_or_default().to_string(), c["Gateway"].as_str().unwrap_or_default().to_string()))
        .collect();
    let mine: BTreeSet<(String, String)> = want.subnets.iter().map(|s| (s.subnet.to_string(), s.gateway.to_string())).collect();
    let text = |s: &BTreeSet<(String, String)>| s.iter().map(|(n, g)| format!("{n} gateway {g}")).collect::<Vec<_>>().join(", ");
    if theirs != mine {
        diffs.push(format!("subnets {} (podman's: {})", text(&theirs), text(&mine)));
    }
    let bridge = have["Berth"]["Bridge"].as_str().unwrap_or_default();
    if bridge != want.bridge {
        diffs.push(format!("bridge {bridge} (podman's: {})", want.bridge));
    }
    if have["Internal"].as_bool() != Some(want.internal) {
        diffs.push(format!("internal {} (podman's: {})", !want.internal, want.internal));
    }
    if let (Some(m), Some(theirs)) = (want.mtu, have["Berth"]["MTU"].as_u64()) {
        if theirs != m as u64 {
            diffs.push(format!("MTU {theirs} (podman's: {m})"));
        }
    }
    if have["Berth"]["Icc"].as_bool() == Some(false) {
        diffs.push("icc off (podman's containers talk to each other)".into());
    }
    if have["Berth"]["Masquerade"].as_bool() == Some(false) {
        diffs.push("masquerade off (podman masquerades)".into());
    }
    if !diffs.is_empty() {
        return refuse(format!(
            "podman network {} collides with berth's network {}: {}; remove the berth network (berth network rm {}) or give the podman network another name",
            want.name,
            want.name,
            diffs.join("; "),
            want.name
        ));
    }
    let ours = have["Id"].as_str() == Some(want.id.as_str());
    let current = parse_ips(have["Options"]["dns_servers"].as_str().unwrap_or_default());
    let dns_update = (ours && current != want.dns_servers).then(|| want.dns_servers.clone());
    Ok(NetworkMatch { ours, dns_update })
}

/// What to do when berth already has a container of the podman container's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// `podman network connect`: the same container in the same namespace;
    /// these networks (indexes into the plan) are to be connected.
    Connect(Vec<usize>),
    /// The same podman container, but berth's record is of an earlier
    /// namespace (a restart whose teardown never reached berth), or a
    /// podman container's record whose namespace is gone: detach that
    /// record, then attach afresh.
    Stale,
}

fn label(inspect: &Value) -> Option<&str> {
    inspect["Config"]["Labels"][LABEL_CONTAINER_ID].as_str()
}

/// The networks a berth container is on (inspect's `NetworkSettings.Networks`).
fn networks_of(inspect: &Value) -> Vec<(String, String)> {
    inspect["NetworkSettings"]["Networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v["NetworkID"].as_str().unwrap_or_default().to_string()))
        .collect()
}

fn not_ours(name: &str, id: &str, inspect: &Value) -> Refusal {
    let whose = match (inspect["Berth"]["Kind"].as_str(), label(inspect)) {
        (Some("run"), _) => "a container berth runs itself".to_string(),
        (_, Some(other)) => format!("podman container {}", &other[..12.min(other.len())]),
        _ => "a namespace attached with berth attach".to_string(),
    };
    Refusal(format!("berth already has a container named {name} ({whose}), not podman container {}: rename one of them", &id[..12.min(id.len())]))
}

/// Decides about an existing berth container of the plan's name
/// (`inspect`: berth's container JSON; `alive`: whether the namespace it
/// names still exists).
pub fn existing_container(plan: &SetupPlan, netns: &str, inspect: &Value, alive: bool) -> Result<Existing, Refusal> {
    let attached = inspect["Berth"]["Kind"].as_str() == Some("attached");
    // A podman container's record whose namespace is gone, by a teardown
    // that never came (podman killed): it serves no one; replace it.
    if attached && label(inspect).is_some() && !alive {
        return Ok(Existing::Stale);
    }
    if !attached || label(inspect) != Some(plan.container_id.as_str()) {
        return Err(not_ours(&plan.container_name, &plan.container_id, inspect));
    }
    if inspect["Berth"]["Netns"].as_str() != Some(netns) {
        return Ok(Existing::Stale);
    }
    let have: Vec<String> = networks_of(inspect).into_iter().map(|(n, _)| n).collect();
    if let Some(dup) = plan.networks.iter().find(|n| have.contains(&n.name)) {
        return refuse(format!("container {} is already set up on network {} in {netns}", plan.container_name, dup.name));
    }
    Ok(Existing::Connect((0..plan.networks.len()).collect()))
}

/// What a teardown takes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Teardown {
    /// The whole container (every network it has is in the call).
    Detach,
    /// Only these networks (`podman network disconnect`).
    Disconnect(Vec<String>),
}

/// The teardown of a podman container given berth's record of it (None:
/// berth has none). Returns the action, the networks berth made from
/// podman's that may be removed once unused (name, id), and problems to
/// report after doing the rest (networks the container is not on), as
/// netavark reports every error of a teardown together.
pub fn teardown_plan(input: &Input, netns: &str, inspect: Option<&Value>) -> Result<(Teardown, Vec<String>, Vec<String>), Refusal> {
    let name = &input.container_name;
    let Some(inspect) = inspect else {
        return refuse(format!("nothing to tear down: berth has no container {name} (podman container {})", &input.container_id[..12.min(input.container_id.len())]));
    };
    if inspect["Berth"]["Kind"].as_str() != Some("attached") || label(inspect) != Some(input.container_id.to_ascii_lowercase().as_str()) {
        return Err(not_ours(name, &input.container_id, inspect));
    }
    let theirs = inspect["Berth"]["Netns"].as_str().unwrap_or_default();
    if theirs != netns {
        return refuse(format!("nothing to tear down in {netns}: berth's container {name} is set up in {theirs}"));
    }
    let have = networks_of(inspect);
    let asked: Vec<&str> = input.networks.iter().map(|n| n.name.as_str()).collect();
    let mut problems = Vec::new();
    for a in &asked {
        if !have.iter().any(|(n, _)| n == a) {
            problems.push(format!("container {name} is not connected to network {a}"));
        }
    }
    let removable: Vec<String> = have
        .iter()
        .filter(|(n, id)| asked.contains(&n.as_str()) && input.network_info.get(n).is_some_and(|i| i.id.eq_ignore_ascii_case(id)))
        .map(|(n, _)| n.clone())
        .collect();
    let action = if have.iter().all(|(n, _)| asked.contains(&n.as_str())) {
        Teardown::Detach
    } else {
        Teardown::Disconnect(have.iter().filter(|(n, _)| asked.contains(&n.as_str())).map(|(n, _)| n.clone()).collect())
    };
    Ok((action, removable, problems))
}

/// What berth made on one network: the container's MAC and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub network: String,
    pub mac: String,
    pub addrs: Vec<IpNet>,
}

/// From an attach answer's `Endpoints`.
pub fn facts_from_endpoints(endpoints: &Value) -> Vec<Facts> {
    endpoints
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Facts {
            network: e["Network"].as_str().unwrap_or_default().to_string(),
            mac: e["Mac"].as_str().unwrap_or_default().to_string(),
            addrs: e["Addresses"].as_array().into_iter().flatten().filter_map(|a| a["Address"].as_str()?.parse().ok()).collect(),
        })
        .collect()
}

/// From a container's inspect JSON (after a `network connect`).
pub fn facts_from_inspect(inspect: &Value) -> Vec<Facts> {
    let nets = inspect["NetworkSettings"]["Networks"].as_object().cloned().unwrap_or_default();
    nets.iter()
        .map(|(name, v)| {
            let mut addrs = Vec::new();
            for (ip, len) in [("IPAddress", "IPPrefixLen"), ("GlobalIPv6Address", "GlobalIPv6PrefixLen")] {
                if let (Some(Ok(ip)), Some(len)) = (v[ip].as_str().filter(|s| !s.is_empty()).map(str::parse::<IpAddr>), v[len].as_u64()) {
                    if let Ok(n) = IpNet::new(ip, len as u8) {
                        addrs.push(n);
                    }
                }
            }
            Facts { network: name.clone(), mac: v["MacAddress"].as_str().unwrap_or_default().to_string(), addrs }
        })
        .collect()
}

/// The StatusBlock map for the networks of `nets` (indexes into the plan):
/// per network the DNS podman writes into resolv.conf (berth's resolver
/// on the gateways, search `dns.podman`, on networks with DNS; else the
/// container's own servers, as netavark answers) and the interface.
pub fn status_block(plan: &SetupPlan, nets: &[usize], facts: &[Facts]) -> Result<Value, Refusal> {
    let mut out = Map::new();
    for &i in nets {
        let n = &plan.networks[i];
        let Some(f) = facts.iter().find(|f| f.network == n.name) else {
            return refuse(format!("berth reported no endpoint of {} on network {}", plan.container_name, n.name));
        };
        let mut subnets = Vec::new();
        for s in &n.subnets {
            let Some(a) = f.addrs.iter().find(|a| s.subnet.contains(&a.addr())) else {
                return refuse(format!("berth gave {} no address in subnet {} of network {}", plan.container_name, s.subnet, n.name));
            };
            subnets.push(json!({"gateway": s.gateway, "ipnet": a.to_string()}));
        }
        let (search, servers): (Vec<&str>, Vec<IpAddr>) = if n.dns_enabled { (vec![SEARCH_DOMAIN], n.gateways()) } else { (vec![], plan.dns.clone()) };
        out.insert(
            n.name.clone(),
            json!({
                "dns_search_domains": search,
                "dns_server_ips": servers,
                "interfaces": {n.ifname.clone(): {"mac_address": f.mac.to_ascii_lowercase(), "subnets": subnets}},
            }),
        );
    }
    Ok(Value::Object(out))
}
