//! A host's picture of the cluster store: every record berth keeps there,
//! typed, built from a listing and kept current by watch events. The
//! daemon persists the raw records (`raw`) so that after a restart
//! without etcd it still knows the other hosts: tunnels, names and links
//! keep working from the last picture until the store is back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::keys::Key;
use super::records::{BlockRecord, EndpointRecord, NodeInfo, NodeRecord};
use crate::model::{Attachment, Container, ContainerKind, Endpoint, EndpointAddress, EndpointState, Network, Policy, RunState};
use crate::nft::Element;
use crate::plan::{vtep_mac, TunnelPeer};

/// One change the store reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put { key: String, value: String },
    Delete { key: String },
}

/// What kinds of records an update touched, so the daemon redoes only the
/// work that depends on them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    pub nodes: bool,
    pub networks: bool,
    pub blocks: bool,
    pub endpoints: bool,
    pub policies: bool,
    /// The containers whose endpoint records changed, as (host, container
    /// id): a watch event names one, so the daemon redoes one container's
    /// work, not every remote container's (a cluster of 1,000 containers
    /// made each remote start cost every host ~6 ms of CPU when it did).
    pub containers: BTreeSet<(String, String)>,
    /// Every endpoint may have changed (a listing): `containers` is not
    /// the whole story.
    pub all_endpoints: bool,
}

impl Changed {
    pub const ALL: Changed =
        Changed { nodes: true, networks: true, blocks: true, endpoints: true, policies: true, containers: BTreeSet::new(), all_endpoints: true };

    pub fn any(&self) -> bool {
        self.nodes || self.networks || self.blocks || self.endpoints || self.policies
    }

    pub fn merge(&mut self, o: Changed) {
        self.nodes |= o.nodes;
        self.networks |= o.networks;
        self.blocks |= o.blocks;
        self.endpoints |= o.endpoints;
        self.policies |= o.policies;
        self.all_endpoints |= o.all_endpoints;
        self.containers.extend(o.containers);
    }
}

/// Label a remote container carries: the host it runs on.
pub const NODE_LABEL: &str = "berth.node";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The store revision this picture is at (watch from `revision + 1`).
    pub revision: i64,
    /// Every record as stored (key → JSON); what is persisted.
    pub raw: BTreeMap<String, String>,
    #[serde(skip)]
    pub nodes: BTreeMap<String, NodeRecord>,
    #[serde(skip)]
    pub infos: BTreeMap<String, NodeInfo>,
    #[serde(skip)]
    pub networks: BTreeMap<String, Network>,
    #[serde(skip)]
    pub names: BTreeMap<String, String>,
    #[serde(skip)]
    pub vnis: BTreeMap<u32, String>,
    /// Network id → block → holder.
    #[serde(skip)]
    pub blocks: BTreeMap<String, BTreeMap<IpNet, String>>,
    /// (network id, node, endpoint id) → endpoint.
    #[serde(skip)]
    pub endpoints: BTreeMap<(String, String, String), EndpointRecord>,
    #[serde(skip)]
    pub policies: BTreeMap<String, Policy>,
}

fn parse<T: for<'de> Deserialize<'de>>(key: &str, value: &str) -> Result<T, String> {
    serde_json::from_str(value).map_err(|e| format!("{key}: {e}"))
}

impl ClusterView {
    /// A picture from a full listing at `revision`.
    pub fn from_listing(kvs: impl IntoIterator<Item = (String, String)>, revision: i64) -> (ClusterView, Vec<String>) {
        let mut v = ClusterView { revision, ..Default::default() };
        let mut errors = Vec::new();
        for (key, value) in kvs {
            if let Err(e) = v.apply(&Event::Put { key, value }) {
                errors.push(e);
            }
        }
        v.revision = revision;
        (v, errors)
    }

    /// Rebuilds the typed indexes from `raw` (after loading a persisted picture).
    pub fn reindexed(self) -> (ClusterView, Vec<String>) {
        let rev = self.revision;
        ClusterView::from_listing(self.raw, rev)
    }

    /// Applies one event. A record berth cannot read (another release's
    /// format, a hand-written key) is left out of the picture and
    /// reported; it never stops the others.
    pub fn apply(&mut self, ev: &Event) -> Result<Changed, String> {
        let (key, value) = match ev {
            Event::Put { key, value } => (key, Some(value)),
            Event::Delete { key } => (key, None),
        };
        let Some(k) = Key::parse(key) else { return Ok(Changed::default()) };
        let mut ch = Changed::default();
        // Remove the old typed record first; a bad new value leaves none.
        match &k {
            Key::Node(n) => {
                self.nodes.remove(n);
                ch.nodes = true;
            }
            Key::NodeInfo(n) => {
                self.infos.remove(n);
                ch.nodes = true;
            }
            Key::Network(id) => {
                self.networks.remove(id);
                ch.networks = true;
            }
            Key::NetName(n) => {
                self.names.remove(n);
                ch.networks = true;
            }
            Key::Vni(v) => {
                self.vnis.remove(v);
                ch.networks = true;
            }
            Key::Block { network, block } => {
                if let Some(m) = self.blocks.get_mut(network) {
                    m.remove(block);
                    if m.is_empty() {
                        self.blocks.remove(network);
                    }
                }
                ch.blocks = true;
            }
            Key::Endpoint { network, node, endpoint } => {
                if let Some(old) = self.endpoints.remove(&(network.clone(), node.clone(), endpoint.clone())) {
                    ch.containers.insert((node.clone(), old.container));
                }
                ch.endpoints = true;
            }
            Key::Policy(id) => {
                self.policies.remove(id);
                ch.policies = true;
            }
        }
        let Some(value) = value else {
            self.raw.remove(key);
            return Ok(ch);
        };
        self.raw.insert(key.clone(), value.clone());
        match k {
            Key::Node(n) => {
                self.nodes.insert(n, parse(key, value)?);
            }
            Key::NodeInfo(n) => {
                self.infos.insert(n, parse(key, value)?);
            }
            Key::Network(id) => {
                let net: Network = parse(key, value)?;
                if net.id != id || !net.global {
                    return Err(format!("{key}: not a global network with that id"));
                }
                self.networks.insert(id, net);
            }
            Key::NetName(n) => {
                self.names.insert(n, parse(key, value)?);
            }
            Key::Vni(v) => {
                self.vnis.insert(v, parse(key, value)?);
            }
            Key::Block { network, block } => {
                let b: BlockRecord = parse(key, value)?;
                self.blocks.entry(network).or_default().insert(block, b.node);
            }
            Key::Endpoint { network, node, endpoint } => {
                let rec: EndpointRecord = parse(key, value)?;
                ch.containers.insert((node.clone(), rec.container.clone()));
                self.endpoints.insert((network, node, endpoint), rec);
            }
            Key::Policy(id) => {
                let p: Policy = parse(key, value)?;
                if p.id != id {
                    return Err(format!("{key}: a policy with another id"));
                }
                self.policies.insert(id, p);
            }
        }
        Ok(ch)
    }

    pub fn alive(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    /// The blocks of a network a host holds.
    pub fn blocks_of(&self, network: &str, node: &str) -> Vec<IpNet> {
        self.blocks.get(network).into_iter().flatten().filter(|(_, n)| *n == node).map(|(b, _)| *b).collect()
    }

    /// Every block of a network someone holds.
    pub fn taken_blocks(&self, network: &str) -> Vec<IpNet> {
        self.blocks.get(network).into_iter().flatten().map(|(b, _)| *b).collect()
    }

    /// Hosts with endpoints on a network (with how many), for `network rm`.
    pub fn users_of(&self, network: &str) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (net, node, _) in self.endpoints.keys() {
            if net == network {
                *m.entry(node.clone()).or_default() += 1;
            }
        }
        m
    }

    /// The other live hosts' tunnel ends on an overlay network, with their
    /// blocks: what `plan::TunnelPeers` is made of. A host without blocks
    /// of the network has nothing to route to and is left out.
    pub fn peers(&self, network: &str, me: &str) -> Vec<TunnelPeer> {
        let mut by_node: BTreeMap<&str, Vec<IpNet>> = BTreeMap::new();
        for (b, node) in self.blocks.get(network).into_iter().flatten() {
            if node != me && self.alive(node) {
                by_node.entry(node).or_default().push(*b);
            }
        }
        let mut peers: Vec<TunnelPeer> = by_node
            .into_iter()
            .map(|(node, blocks)| TunnelPeer { vtep: self.nodes[node].advertise, mac: vtep_mac(network, node), blocks })
            .collect();
        peers.sort();
        peers
    }

    /// Firewall elements that let the other live hosts' VXLAN packets in,
    /// on every port an overlay network uses.
    pub fn vtep_elements(&self, me: &str, ports: &BTreeSet<u16>) -> BTreeSet<Element> {
        let mut out = BTreeSet::new();
        for (node, rec) in &self.nodes {
            if node != me {
                for port in ports {
                    out.insert(Element::VtepPeer { addr: rec.advertise, port: *port });
                }
            }
        }
        out
    }

    /// The other live hosts' containers on global networks, as containers
    /// with one attachment per network (their endpoints), running, labelled
    /// with their host ([`NODE_LABEL`]). They are never this host's to
    /// plumb: the daemon keeps them apart from its own and uses them for
    /// names, links and policies only.
    pub fn remote_containers(&self, me: &str) -> Vec<Container> {
        self.remote_containers_where(me, |_, _| true)
    }

    /// [`remote_containers`](Self::remote_containers) limited to the
    /// (host, container id) pairs in `which` (those that are no longer
    /// anywhere are simply absent).
    pub fn remote_containers_of(&self, me: &str, which: &BTreeSet<(String, String)>) -> Vec<Container> {
        self.remote_containers_where(me, |node, c| which.contains(&(node.to_string(), c.to_string())))
    }

    fn remote_containers_where(&self, me: &str, keep: impl Fn(&str, &str) -> bool) -> Vec<Container> {
        let mut by_id: BTreeMap<(&str, &str), Container> = BTreeMap::new();
        for ((net, node, ep), rec) in &self.endpoints {
            if node == me || !self.alive(node) || !self.networks.contains_key(net) || !keep(node, &rec.container) {
                continue;
            }
            let c = by_id.entry((node, &rec.container)).or_insert_with(|| {
                let mut c = Container::new(&rec.container, &rec.name, ContainerKind::Attached { netns: String::new() }, 0);
                c.state.status = RunState::Running;
                c.expose = rec.expose.clone();
                c.links = rec.links.clone();
                c.labels.insert(NODE_LABEL.into(), node.clone());
                c
            });
            c.attachments.push(Attachment {
                network_id: net.clone(),
                static_ips: vec![],
                aliases: rec.aliases.clone(),
                mac: None,
                ifname: None,
                endpoint: Some(Endpoint {
                    id: ep.clone(),
                    addresses: rec.addresses.iter().map(|a| EndpointAddress { addr: *a, gateway: None }).collect(),
                    mac: rec.mac.clone(),
                    host_ifname: String::new(),
                    ifname: String::new(),
                    state: EndpointState::Up,
                }),
            });
        }
        by_id.into_values().collect()
    }

    /// The host holding an address of a global network (by block), if any.
    pub fn holder_of(&self, network: &str, ip: IpAddr) -> Option<&str> {
        self.blocks.get(network)?.iter().find(|(b, _)| b.contains(&ip)).map(|(_, n)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::to_json;

    fn put(k: Key, v: String) -> Event {
        Event::Put { key: k.render(), value: v }
    }

    fn node(addr: &str) -> String {
        to_json(&NodeRecord { id: "x".into(), advertise: addr.parse().unwrap(), version: "t".into(), started: 0 })
    }

    fn block(net: &str, cidr: &str, n: &str) -> Event {
        put(Key::Block { network: net.into(), block: cidr.parse().unwrap() }, to_json(&BlockRecord { node: n.into() }))
    }

    #[test]
    fn peers_follow_live_hosts_and_their_blocks() {
        let mut v = ClusterView::default();
        for (n, a) in [("a", "10.90.0.1"), ("b", "10.90.0.2"), ("c", "10.90.0.3")] {
            v.apply(&put(Key::Node(n.into()), node(a))).unwrap();
        }
        v.apply(&block("n", "10.0.1.0/24", "a")).unwrap();
        v.apply(&block("n", "10.0.2.0/24", "b")).unwrap();
        v.apply(&block("n", "10.0.3.0/24", "b")).unwrap();
        let p = v.peers("n", "a");
        assert_eq!(p.len(), 1, "c holds no block, a is me");
        assert_eq!(p[0].vtep.to_string(), "10.90.0.2");
        assert_eq!(p[0].blocks.len(), 2);
        // b dies: its liveness key goes, its blocks stay (grace) but are not routed.
        let ch = v.apply(&Event::Delete { key: Key::Node("b".into()).render() }).unwrap();
        assert!(ch.nodes);
        assert!(v.peers("n", "a").is_empty());
        assert_eq!(v.taken_blocks("n").len(), 3);
        assert_eq!(v.holder_of("n", "10.0.3.7".parse().unwrap()), Some("b"));
    }

    #[test]
    fn remote_containers_group_endpoints_and_skip_mine() {
        let mut v = ClusterView::default();
        v.apply(&put(Key::Node("a".into()), node("10.90.0.1"))).unwrap();
        v.apply(&put(Key::Node("b".into()), node("10.90.0.2"))).unwrap();
        let mut net = Network {
            id: "n".into(),
            name: "ov".into(),
            driver: crate::model::Driver::Macvlan(crate::model::MacvlanDriver { parent: "eth0".into(), host_prefix: 24 }),
            ipam: vec![],
            internal: false,
            mtu: 1500,
            options: Default::default(),
            raw_options: Default::default(),
            created: 0,
            predefined: false,
            global: true,
            blocks: vec![],
        };
        v.apply(&put(Key::Network("n".into()), to_json(&net))).unwrap();
        net.id = "m".into();
        v.apply(&put(Key::Network("m".into()), to_json(&net))).unwrap();
        let ep = |c: &str, addr: &str| EndpointRecord {
            container: c.into(),
            name: format!("name-{c}"),
            aliases: vec![],
            addresses: vec![addr.parse().unwrap()],
            mac: "02:42:00:00:00:01".into(),
            expose: vec![],
            links: vec![],
        };
        let e = |net: &str, node: &str, id: &str| Key::Endpoint { network: net.into(), node: node.into(), endpoint: id.into() };
        v.apply(&put(e("n", "b", "e1"), to_json(&ep("c1", "10.0.2.5/16")))).unwrap();
        v.apply(&put(e("m", "b", "e2"), to_json(&ep("c1", "10.1.2.5/16")))).unwrap();
        v.apply(&put(e("n", "a", "e3"), to_json(&ep("c3", "10.0.1.5/16")))).unwrap();
        let r = v.remote_containers("a");
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].name.as_str(), r[0].attachments.len()), ("name-c1", 2));
        assert_eq!(r[0].labels.get(NODE_LABEL).map(String::as_str), Some("b"));
        assert_eq!(v.users_of("n").len(), 2);
        // An endpoint's put and delete name its container, and the
        // daemon's one-container rebuild finds just it.
        let ch = v.apply(&put(e("n", "b", "e4"), to_json(&ep("c4", "10.0.2.6/16")))).unwrap();
        let c4: BTreeSet<(String, String)> = [("b".to_string(), "c4".to_string())].into();
        assert!(ch.endpoints && !ch.all_endpoints);
        assert_eq!(ch.containers, c4);
        let one = v.remote_containers_of("a", &c4);
        assert_eq!(one.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c4"]);
        assert_eq!(v.apply(&Event::Delete { key: e("n", "b", "e4").render() }).unwrap().containers, c4);
        assert!(v.remote_containers_of("a", &c4).is_empty());
        // A delete of a record never seen names nobody.
        assert!(v.apply(&Event::Delete { key: e("n", "b", "e9").render() }).unwrap().containers.is_empty());
        let mut all = ch.clone();
        all.merge(Changed::ALL);
        assert!(all.all_endpoints && all.containers == c4);
    }

    #[test]
    fn unreadable_records_are_reported_and_skipped() {
        let mut v = ClusterView::default();
        assert!(v.apply(&put(Key::Node("a".into()), "{not json".into())).is_err());
        assert!(!v.alive("a"));
        assert_eq!(v.apply(&Event::Put { key: "/berth/v9/x".into(), value: "1".into() }), Ok(Changed::default()));
        // A persisted picture reloads to the same view.
        v.apply(&put(Key::Node("b".into()), node("10.90.0.2"))).unwrap();
        v.revision = 7;
        let json = serde_json::to_string(&v).unwrap();
        let (back, errors) = serde_json::from_str::<ClusterView>(&json).unwrap().reindexed();
        assert_eq!(errors.len(), 1, "the bad record is still bad");
        assert!(back.alive("b") && back.revision == 7);
    }
}
