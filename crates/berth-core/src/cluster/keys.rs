//! Keys of the cluster store: one typed value per kind of record, printed
//! and parsed in one place so the writer and the watcher cannot disagree.

use ipnet::IpNet;

/// Every key berth writes starts with this; a new layout gets a new
/// version here, so two releases never read each other's records wrongly.
pub const PREFIX: &str = "/berth/v1/";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Node(String),
    NodeInfo(String),
    Network(String),
    NetName(String),
    Vni(u32),
    Block { network: String, block: IpNet },
    Endpoint { network: String, node: String, endpoint: String },
    Policy(String),
}

/// A CIDR as a key segment: `/` would split the key, so `10.0.1.0-24`.
fn cidr_segment(n: &IpNet) -> String {
    format!("{}-{}", n.network(), n.prefix_len())
}

fn parse_cidr_segment(s: &str) -> Option<IpNet> {
    let (addr, len) = s.rsplit_once('-')?;
    let n = IpNet::new(addr.parse().ok()?, len.parse().ok()?).ok()?;
    (n.network() == n.addr()).then_some(n)
}

/// A segment berth wrote: non-empty, no `/` (names and ids are validated
/// before they become keys; this guards what comes back from the store).
fn segment(s: &str) -> Option<String> {
    (!s.is_empty() && !s.contains('/') && s.len() <= 253).then(|| s.to_string())
}

impl Key {
    pub fn render(&self) -> String {
        match self {
            Key::Node(n) => format!("{PREFIX}nodes/{n}"),
            Key::NodeInfo(n) => format!("{PREFIX}nodeinfo/{n}"),
            Key::Network(id) => format!("{PREFIX}networks/{id}"),
            Key::NetName(n) => format!("{PREFIX}netnames/{n}"),
            Key::Vni(v) => format!("{PREFIX}vnis/{v}"),
            Key::Block { network, block } => format!("{PREFIX}blocks/{network}/{}", cidr_segment(block)),
            Key::Endpoint { network, node, endpoint } => format!("{PREFIX}endpoints/{network}/{node}/{endpoint}"),
            Key::Policy(id) => format!("{PREFIX}policies/{id}"),
        }
    }

    /// A key read from the store; None for anything berth does not write
    /// (another release's keys, or garbage).
    pub fn parse(key: &str) -> Option<Key> {
        let rest = key.strip_prefix(PREFIX)?;
        let parts: Vec<&str> = rest.split('/').collect();
        Some(match parts.as_slice() {
            ["nodes", n] => Key::Node(segment(n)?),
            ["nodeinfo", n] => Key::NodeInfo(segment(n)?),
            ["networks", id] => Key::Network(segment(id)?),
            ["netnames", n] => Key::NetName(segment(n)?),
            ["vnis", v] => Key::Vni(v.parse().ok().filter(|v: &u32| *v < 1 << 24)?),
            ["blocks", net, b] => Key::Block { network: segment(net)?, block: parse_cidr_segment(b)? },
            ["endpoints", net, node, ep] => Key::Endpoint { network: segment(net)?, node: segment(node)?, endpoint: segment(ep)? },
            ["policies", id] => Key::Policy(segment(id)?),
            _ => return None,
        })
    }
}

/// Prefixes for listing one kind of record.
pub fn blocks_of(network: &str) -> String {
    format!("{PREFIX}blocks/{network}/")
}

pub fn endpoints_of(network: &str) -> String {
    format!("{PREFIX}endpoints/{network}/")
}

pub fn endpoints_of_node(network: &str, node: &str) -> String {
    format!("{PREFIX}endpoints/{network}/{node}/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_round_trip() {
        let keys = [
            Key::Node("host-a".into()),
            Key::NodeInfo("host-a".into()),
            Key::Network("ab".repeat(32)),
            Key::NetName("web".into()),
            Key::Vni(4096),
            Key::Block { network: "n1".into(), block: "10.0.1.0/24".parse().unwrap() },
            Key::Block { network: "n1".into(), block: "fd00:1::/80".parse().unwrap() },
            Key::Endpoint { network: "n1".into(), node: "host-a".into(), endpoint: "e1".into() },
            Key::Policy("p1".into()),
        ];
        for k in keys {
            assert_eq!(Key::parse(&k.render()), Some(k.clone()), "{}", k.render());
        }
        assert_eq!(Key::Block { network: "n".into(), block: "10.0.1.0/24".parse().unwrap() }.render(), "/berth/v1/blocks/n/10.0.1.0-24");
    }

    #[test]
    fn foreign_keys_are_ignored() {
        for k in ["/berth/v2/nodes/a", "/berth/v1/nodes/", "/berth/v1/nodes/a/b", "/berth/v1/vnis/99999999", "/berth/v1/blocks/n/10.0.1.1-24", "/berth/v1/blocks/n/x", "/other"] {
            assert_eq!(Key::parse(k), None, "{k}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = Key::parse(&s);
            let _ = Key::parse(&format!("{PREFIX}{s}"));
        }
    }
}
