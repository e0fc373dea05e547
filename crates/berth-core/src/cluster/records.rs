//! Values of the cluster store (JSON). Each record carries only what other
//! hosts need; a host's own facts (its tunnel device, its MTU) stay in its
//! local store.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{Driver, Link, Network, PortProto};

/// `nodes/NODE`: the host is alive (on the liveness lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Random, made once per host and kept in its root directory: another
    /// host that claims the same name is refused instead of taking over.
    pub id: String,
    /// Its underlay address (`--cluster-advertise`): where tunnels end.
    pub advertise: IpAddr,
    pub version: String,
    /// When this daemon started (seconds since the epoch).
    pub started: u64,
}

/// `nodeinfo/NODE`: what is known of a host even after it died (on the
/// grace lease): `berth node ls` shows dead hosts with their last sighting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub advertise: IpAddr,
    /// Seconds since the epoch, refreshed by the host while it lives.
    pub last_seen: u64,
}

/// `blocks/NETID/CIDR`: which host holds an address block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub node: String,
}

/// `endpoints/NETID/NODE/EPID`: a container's endpoint on a global
/// network, for the other hosts' resolvers, links and policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The container's id and name.
    pub container: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub addresses: Vec<IpNet>,
    pub mac: String,
    /// Ports a linking container may open (`--expose` and `-p`).
    #[serde(default)]
    pub expose: Vec<PortProto>,
    /// Its `--link`s (by name, as locally).
    #[serde(default)]
    pub links: Vec<Link>,
}

/// The part of a global network every host shares: no host's blocks,
/// tunnel end or MTU.
pub fn shared_network(net: &Network) -> Network {
    let mut n = net.clone();
    n.blocks.clear();
    if let Driver::Overlay(o) = &mut n.driver {
        o.vtep = None;
        n.mtu = o.user_mtu.unwrap_or(0);
    }
    n
}

/// JSON of a record; records always serialize.
pub fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialize")
}

/// The endpoint records this host owes the store: one per endpoint that
/// is up, of a live container, on a global network (key → JSON).
pub fn own_endpoints<'a>(
    containers: impl Iterator<Item = &'a crate::model::Container>,
    networks: &std::collections::BTreeMap<String, Network>,
    me: &str,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for c in containers.filter(|c| c.state.status.is_live()) {
        for (a, ep) in c.endpoints() {
            if ep.state != crate::model::EndpointState::Up || !networks.get(&a.network_id).is_some_and(|n| n.global) {
                continue;
            }
            let key = super::Key::Endpoint { network: a.network_id.clone(), node: me.to_string(), endpoint: ep.id.clone() };
            let rec = EndpointRecord {
                container: c.id.clone(),
                name: c.name.clone(),
                aliases: a.aliases.clone(),
                addresses: ep.addresses.iter().map(|x| x.addr).collect(),
                mac: ep.mac.clone(),
                expose: c.exposed_ports(),
                links: c.links.clone(),
            };
            out.insert(key.render(), to_json(&rec));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn only_up_endpoints_of_live_containers_on_global_networks_are_announced() {
        let net = |id: &str, global: bool| Network {
            id: id.into(),
            name: id.into(),
            driver: Driver::Macvlan(MacvlanDriver { parent: "eth0".into(), host_prefix: 28 }),
            ipam: vec![],
            internal: false,
            mtu: 1500,
            options: Default::default(),
            raw_options: Default::default(),
            created: 0,
            predefined: false,
            global,
            blocks: vec![],
        };
        let nets: std::collections::BTreeMap<String, Network> = [("g".to_string(), net("g", true)), ("l".to_string(), net("l", false))].into();
        let ctr = |name: &str, status: RunState, state: EndpointState| {
            let mut c = Container::new(&format!("{name}-id"), name, ContainerKind::Run { cmd: vec![] }, 0);
            c.state.status = status;
            c.links = vec![Link { name: "db".into(), alias: "db".into() }];
            for n in ["g", "l"] {
                c.attachments.push(Attachment {
                    network_id: n.into(),
                    static_ips: vec![],
                    aliases: vec!["www".into()],
                    mac: None,
                    ifname: None,
                    endpoint: Some(Endpoint {
                        id: format!("{name}-{n}"),
                        addresses: vec![EndpointAddress { addr: "10.0.0.5/24".parse().unwrap(), gateway: None }],
                        mac: "02:42:0a:00:00:05".into(),
                        host_ifname: String::new(),
                        ifname: "eth0".into(),
                        state,
                    }),
                });
            }
            c
        };
        let cs = [ctr("up", RunState::Running, EndpointState::Up), ctr("pending", RunState::Starting, EndpointState::Pending), ctr("gone", RunState::Exited, EndpointState::Up)];
        let out = own_endpoints(cs.iter(), &nets, "host-a");
        assert_eq!(out.keys().collect::<Vec<_>>(), vec!["/berth/v1/endpoints/g/host-a/up-g"]);
        let rec: EndpointRecord = serde_json::from_str(out.values().next().unwrap()).unwrap();
        assert_eq!((rec.name.as_str(), rec.aliases.len(), rec.links.len()), ("up", 1, 1));
    }
}
