//! `CreateNetwork` as berth sees it: a new berth network (the
//! `NetworkCreate` body of `POST /networks/create`, with Docker's network
//! id as berth's) or, with `-o berth.network=NAME`, an existing berth
//! network Docker's network stands for.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde_json::Value;

use super::{network_name, CreateNetwork, IpamData};
use crate::request::{IpamConfigRequest, IpamRequest, NetworkCreate};
use crate::subnets::{parse_cidr_any, parse_subnet};
use crate::{CoreError, Result};

/// The `-o` that binds a Docker network to a berth network.
pub const BIND_OPTION: &str = "berth.network";

/// What a CreateNetwork asks of berth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkPlan {
    /// Create this berth network (named `docker-ID12`, id = Docker's).
    Create(NetworkCreate),
    /// Use the existing berth network of this name; its subnets must be
    /// the ones dockerd's IPAM gave (checked by the daemon).
    Bind { network: String, subnets: Vec<IpNet> },
}

fn bad(reason: String) -> CoreError {
    CoreError::DockerRequest(format!("CreateNetwork: {reason}"))
}

/// A subnet and gateway of `IPv4Data`/`IPv6Data`.
fn ipam_entry(d: &IpamData, v6: bool, range_of: &dyn Fn(&IpNet) -> Option<IpNet>) -> Result<IpamConfigRequest> {
    let subnet = parse_subnet(&d.pool)?;
    if subnet.addr().is_ipv6() != v6 {
        return Err(bad(format!("pool {subnet} is in the wrong family list")));
    }
    let gateway = match d.gateway.as_deref().filter(|g| !g.is_empty()) {
        Some(g) => Some(parse_cidr_any(g)?.addr().to_string()),
        None => None,
    };
    if d.aux_addresses.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(bad("auxiliary addresses (--aux-address) are not supported by berth".into()));
    }
    Ok(IpamConfigRequest { subnet: Some(subnet.to_string()), gateway, ip_range: range_of(&subnet).map(|r| r.to_string()) })
}

fn flag(opts: &BTreeMap<String, Value>, key: &str) -> Result<bool> {
    match opts.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => s.parse::<bool>().map_err(|_| bad(format!("{key}: {s:?} is not a boolean"))),
        Some(v) => Err(bad(format!("{key}: {v} is not a boolean"))),
    }
}

/// Maps a CreateNetwork onto berth. `range_of` gives the ip-range
/// (`--ip-range`, which only RequestPool carried) of a pool berth's IPAM
/// handed out.
pub fn plan_network(req: &CreateNetwork, range_of: &dyn Fn(&IpNet) -> Option<IpNet>) -> Result<NetworkPlan> {
    let name = network_name(&req.network_id)?;
    let generic: BTreeMap<String, String> = match req.options.get("com.docker.network.generic") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                other => Err(bad(format!("option {k}: {other} is not a string"))),
            })
            .collect::<Result<_>>()?,
        Some(v) => return Err(bad(format!("com.docker.network.generic is not an object: {v}"))),
    };
    let enable_ipv6 = flag(&req.options, "com.docker.network.enable_ipv6")?;
    let internal = flag(&req.options, "com.docker.network.internal")?;
    let v4 = req.ipv4_data.clone().unwrap_or_default();
    let v6 = req.ipv6_data.clone().unwrap_or_default();
    if v4.len() > 1 || v6.len() > 1 {
        return Err(bad("berth networks have at most one subnet per family; give one --subnet of each".into()));
    }
    let mut config = Vec::new();
    for d in &v4 {
        config.push(ipam_entry(d, false, range_of)?);
    }
    for d in &v6 {
        config.push(ipam_entry(d, true, range_of)?);
    }
    if let Some(bound) = generic.get(BIND_OPTION) {
        crate::names::validate_name(bound)?;
        if generic.len() > 1 {
            let others: Vec<&str> = generic.keys().map(String::as_str).filter(|k| *k != BIND_OPTION).collect();
            return Err(bad(format!("with -o {BIND_OPTION}, the berth network's own settings apply: drop {}", others.join(", "))));
        }
        let subnets = config.iter().filter_map(|c| c.subnet.as_deref()).map(parse_subnet).collect::<Result<_>>()?;
        return Ok(NetworkPlan::Bind { network: bound.clone(), subnets });
    }
    if enable_ipv6 && v6.is_empty() {
        return Err(bad("--ipv6 needs an IPv6 --subnet with berth's IPAM".into()));
    }
    Ok(NetworkPlan::Create(NetworkCreate {
        name,
        driver: None,
        enable_ipv6: !v6.is_empty(),
        enable_ipv4: Some(!v4.is_empty()),
        ipam: Some(IpamRequest { config }),
        internal,
        mtu: None,
        options: generic,
        id: Some(req.network_id.clone()),
    }))
}
