//! One element of a set or map in `inet berth`: its set, its text in nft
//! syntax (for scripts and golden files) and its bytes on the wire (for
//! NFT_MSG_NEWSETELEM batches). Both come from the same value, so what a
//! reconcile writes and what a request adds can never disagree.
//!
//! Wire format: in a concatenation every field starts on a 4-byte boundary
//! (nft registers are 32 bits): an IPv4 address is 4 bytes, a protocol 1 byte
//! plus 3 of padding, a port 2 bytes big-endian plus 2 of padding, an
//! interface name 16 bytes NUL-padded.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::Proto;

/// Inclusive port range; `0-65535` means any port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange(pub u16, pub u16);

impl PortRange {
    pub const ANY: PortRange = PortRange(0, 65535);
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Element {
    /// `bridges`: every berth bridge.
    Bridge(String),
    /// `internal_bridges`: bridges of `--internal` networks (no way out).
    InternalBridge(String),
    /// `icc_off_bridges`: bridges of networks with icc=false.
    IccOff(String),
    /// `masq_bridges`: traffic from these bridges to non-berth interfaces is masqueraded.
    MasqBridge(String),
    /// `bridge_pairs`: `"br" . "br"`, i.e. traffic that stays on one network.
    BridgePair(String),
    /// `hairpin4`: a network's subnet with its bridge; published-port traffic
    /// from that subnet back out of that bridge is masqueraded (a container
    /// reaching its own published port would otherwise get a packet from itself).
    Hairpin4 { start: Ipv4Addr, end: Ipv4Addr, bridge: String },
    /// `resolver_addrs4`: addresses berth's resolvers listen on (gateways
    /// of user-defined networks); port 53 there is for containers only.
    ResolverAddr4(Ipv4Addr),
    /// `resolvers4`: a resolver's address with the bridge its containers
    /// come from: a query must arrive on that bridge, from its subnet.
    Resolver4 { addr: Ipv4Addr, bridge: String },
    /// `links4`: with icc off, `src` may open connections to `dst:port/proto`.
    Link4 { src: Ipv4Addr, dst: Ipv4Addr, proto: Proto, port: u16 },
    /// `ports_any4`: host port on every local address → container address:port.
    PortAny4 { proto: Proto, host_port: u16, addr: Ipv4Addr, port: u16 },
    /// `ports_addr4`: host port on one local address → container address:port.
    PortAddr4 { host_ip: Ipv4Addr, proto: Proto, host_port: u16, addr: Ipv4Addr, port: u16 },
    /// `deny4`: drop (source range, container address, protocol, ports).
    /// Ranges are disjoint across elements of one container (see `desired`).
    Deny4 { src: (Ipv4Addr, Ipv4Addr), dst: Ipv4Addr, protos: (u8, u8), ports: PortRange },
    /// `allow4`: permitted sources of a guarded destination.
    Allow4 { src: (Ipv4Addr, Ipv4Addr), dst: Ipv4Addr, protos: (u8, u8), ports: PortRange },
    /// `guarded4`: destinations that only allowed sources may reach.
    Guarded4 { dst: Ipv4Addr, protos: (u8, u8), ports: PortRange },
}

fn ifname_bytes(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    let n = name.as_bytes();
    b[..n.len().min(15)].copy_from_slice(&n[..n.len().min(15)]);
    b
}

fn push_port(v: &mut Vec<u8>, p: u16) {
    v.extend_from_slice(&p.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
}

fn push_proto(v: &mut Vec<u8>, p: u8) {
    v.extend_from_slice(&[p, 0, 0, 0]);
}

/// A protocol range in nft syntax: `tcp`, `udp`, a number, or `A-B`.
fn proto_text((a, b): (u8, u8)) -> String {
    match (a, b) {
        (6, 6) => "tcp".into(),
        (17, 17) => "udp".into(),
        (a, b) if a == b => a.to_string(),
        (a, b) => format!("{a}-{b}"),
    }
}

/// The protocol range of "this protocol" or "any protocol".
pub fn protos_of(p: Option<Proto>) -> (u8, u8) {
    match p {
        Some(p) => (p.number(), p.number()),
        None => (0, 255),
    }
}

fn range_text<T: std::fmt::Display + PartialEq>(a: T, b: T) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

impl Element {
    /// The set or map the element belongs to.
    pub fn set(&self) -> &'static str {
        match self {
            Element::Bridge(_) => "bridges",
            Element::InternalBridge(_) => "internal_bridges",
            Element::IccOff(_) => "icc_off_bridges",
            Element::MasqBridge(_) => "masq_bridges",
            Element::BridgePair(_) => "bridge_pairs",
            Element::Hairpin4 { .. } => "hairpin4",
            Element::ResolverAddr4(_) => "resolver_addrs4",
            Element::Resolver4 { .. } => "resolvers4",
            Element::Link4 { .. } => "links4",
            Element::PortAny4 { .. } => "ports_any4",
            Element::PortAddr4 { .. } => "ports_addr4",
            Element::Deny4 { .. } => "deny4",
            Element::Allow4 { .. } => "allow4",
            Element::Guarded4 { .. } => "guarded4",
        }
    }

    /// Key (and `: data` for maps) in nft syntax.
    pub fn text(&self) -> String {
        match self {
            Element::Bridge(n) | Element::InternalBridge(n) | Element::IccOff(n) | Element::MasqBridge(n) => format!("\"{n}\""),
            Element::BridgePair(n) => format!("\"{n}\" . \"{n}\""),
            Element::Hairpin4 { start, end, bridge } => format!("{} . \"{bridge}\"", range_text(*start, *end)),
            Element::ResolverAddr4(a) => a.to_string(),
            Element::Resolver4 { addr, bridge } => format!("{addr} . \"{bridge}\""),
            Element::Link4 { src, dst, proto, port } => format!("{src} . {dst} . {proto} . {port}"),
            Element::PortAny4 { proto, host_port, addr, port } => format!("{proto} . {host_port} : {addr} . {port}"),
            Element::PortAddr4 { host_ip, proto, host_port, addr, port } => {
                format!("{host_ip} . {proto} . {host_port} : {addr} . {port}")
            }
            Element::Deny4 { src, dst, protos, ports } | Element::Allow4 { src, dst, protos, ports } => format!(
                "{} . {dst} . {} . {}",
                range_text(src.0, src.1),
                proto_text(*protos),
                range_text(ports.0, ports.1)
            ),
            Element::Guarded4 { dst, protos, ports } => {
                format!("{dst} . {} . {}", proto_text(*protos), range_text(ports.0, ports.1))
            }
        }
    }

    /// Key bytes (NFTA_SET_ELEM_KEY); for interval sets the start of the range.
    pub fn key(&self) -> Vec<u8> {
        self.key_at(false)
    }

    /// NFTA_SET_ELEM_KEY_END for concatenated interval sets: the inclusive end.
    pub fn key_end(&self) -> Option<Vec<u8>> {
        match self {
            Element::Deny4 { .. } | Element::Allow4 { .. } | Element::Guarded4 { .. } | Element::Hairpin4 { .. } => {
                Some(self.key_at(true))
            }
            _ => None,
        }
    }

    fn key_at(&self, end: bool) -> Vec<u8> {
        let end_ = end;
        let mut v = Vec::with_capacity(32);
        match self {
            Element::Bridge(n) | Element::InternalBridge(n) | Element::IccOff(n) | Element::MasqBridge(n) => {
                v.extend_from_slice(&ifname_bytes(n))
            }
            Element::BridgePair(n) => {
                v.extend_from_slice(&ifname_bytes(n));
                v.extend_from_slice(&ifname_bytes(n));
            }
            Element::Hairpin4 { start, end, bridge } => {
                v.extend_from_slice(&(if end_ { *end } else { *start }).octets());
                v.extend_from_slice(&ifname_bytes(bridge));
            }
            Element::ResolverAddr4(a) => v.extend_from_slice(&a.octets()),
            Element::Resolver4 { addr, bridge } => {
                v.extend_from_slice(&addr.octets());
                v.extend_from_slice(&ifname_bytes(bridge));
            }
            Element::Link4 { src, dst, proto, port } => {
                v.extend_from_slice(&src.octets());
                v.extend_from_slice(&dst.octets());
                push_proto(&mut v, proto.number());
                push_port(&mut v, *port);
            }
            Element::PortAny4 { proto, host_port, .. } => {
                push_proto(&mut v, proto.number());
                push_port(&mut v, *host_port);
            }
            Element::PortAddr4 { host_ip, proto, host_port, .. } => {
                v.extend_from_slice(&host_ip.octets());
                push_proto(&mut v, proto.number());
                push_port(&mut v, *host_port);
            }
            Element::Deny4 { src, dst, protos, ports } | Element::Allow4 { src, dst, protos, ports } => {
                let (p0, p1) = *protos;
                v.extend_from_slice(&(if end { src.1 } else { src.0 }).octets());
                v.extend_from_slice(&dst.octets());
                push_proto(&mut v, if end { p1 } else { p0 });
                push_port(&mut v, if end { ports.1 } else { ports.0 });
            }
            Element::Guarded4 { dst, protos, ports } => {
                let (p0, p1) = *protos;
                v.extend_from_slice(&dst.octets());
                push_proto(&mut v, if end { p1 } else { p0 });
                push_port(&mut v, if end { ports.1 } else { ports.0 });
            }
        }
        v
    }

    /// Map data bytes (NFTA_SET_ELEM_DATA / NFTA_DATA_VALUE) for maps.
    pub fn data(&self) -> Option<Vec<u8>> {
        match self {
            Element::PortAny4 { addr, port, .. } | Element::PortAddr4 { addr, port, .. } => {
                let mut v = addr.octets().to_vec();
                push_port(&mut v, *port);
                Some(v)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words as `nft --debug=netlink` prints them (each 32-bit word in host
    /// byte order, x86), captured from nft 1.0.6 adding the same elements.
    fn words(b: &[u8]) -> String {
        b.chunks(4).map(|c| format!("{:08x}", u32::from_le_bytes(c.try_into().unwrap()))).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn port_map_bytes_match_nft() {
        // nft add element inet berth ports_any4 { udp . 53 : 172.17.0.9 . 5353 }
        let e = Element::PortAny4 { proto: Proto::Udp, host_port: 53, addr: "172.17.0.9".parse().unwrap(), port: 5353 };
        assert_eq!(words(&e.key()), "00000011 00003500");
        assert_eq!(words(&e.data().unwrap()), "090011ac 0000e914");
        assert_eq!(e.text(), "udp . 53 : 172.17.0.9 . 5353");
    }

    #[test]
    fn interval_concat_bytes_match_nft() {
        // nft add element inet berth deny4 { 10.0.0.1-10.0.0.5 . 172.17.0.4 . 0-255 . 0-65535 }
        let e = Element::Deny4 {
            src: ("10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()),
            dst: "172.17.0.4".parse().unwrap(),
            protos: (0, 255),
            ports: PortRange::ANY,
        };
        assert_eq!(words(&e.key()), "0100000a 040011ac 00000000 00000000");
        assert_eq!(words(&e.key_end().unwrap()), "0500000a 040011ac 000000ff 0000ffff");
        assert_eq!(e.text(), "10.0.0.1-10.0.0.5 . 172.17.0.4 . 0-255 . 0-65535");
    }

    #[test]
    fn subnet_bridge_bytes_match_nft() {
        // nft add element inet t s { 10.1.0.0/16 . "br1" }
        let e = Element::Hairpin4 { start: "10.1.0.0".parse().unwrap(), end: "10.1.255.255".parse().unwrap(), bridge: "br1".into() };
        assert_eq!(words(&e.key()), "0000010a 00317262 00000000 00000000 00000000");
        assert_eq!(words(&e.key_end().unwrap()), "ffff010a 00317262 00000000 00000000 00000000");
    }

    #[test]
    fn ifname_pair_bytes_match_nft() {
        // nft add element inet berth bridge_pairs { "br1" . "br1" }
        let e = Element::BridgePair("br1".into());
        assert_eq!(
            words(&e.key()),
            "00317262 00000000 00000000 00000000 00317262 00000000 00000000 00000000"
        );
    }
}
