//! One element of a set or map in `inet berth`: its set, its text in nft
//! syntax (for scripts and golden files) and its bytes on the wire (for
//! NFT_MSG_NEWSETELEM batches). Both come from the same value, so what a
//! reconcile writes and what a request adds can never disagree.
//!
//! Elements that hold addresses exist for both families; the family of
//! their addresses picks the set (`links4` or `links6`, ...), and every
//! address of one element is of that family (the planner never mixes them).
//!
//! Wire format: in a concatenation every field starts on a 4-byte boundary
//! (nft registers are 32 bits): an IPv4 address is 4 bytes, an IPv6
//! address 16, a protocol 1 byte plus 3 of padding, a port 2 bytes
//! big-endian plus 2 of padding, an interface name 16 bytes NUL-padded.

use std::net::IpAddr;

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
    /// `subnets4`/`subnets6`: a network's subnet (first and last address)
    /// with its bridge. Published-port traffic from that subnet back out of
    /// that bridge is masqueraded (hairpin: a container reaching its own
    /// published port would otherwise get a packet from itself), and only
    /// sources in it may ask the network's resolver.
    Subnet { start: IpAddr, end: IpAddr, bridge: String },
    /// `resolver_addrs4`/`6`: addresses berth's resolvers listen on
    /// (gateways of user-defined networks); port 53 there is for containers only.
    ResolverAddr(IpAddr),
    /// `resolvers4`/`6`: a resolver's address with the bridge its containers
    /// come from: a query must arrive on that bridge, from its subnet.
    Resolver { addr: IpAddr, bridge: String },
    /// `links4`/`6`: with icc off, `src` may open connections to `dst:port/proto`.
    Link { src: IpAddr, dst: IpAddr, proto: Proto, port: u16 },
    /// `ports_any4`/`6`: host port on every local address → container address:port.
    PortAny { proto: Proto, host_port: u16, addr: IpAddr, port: u16 },
    /// `ports_addr4`/`6`: host port on one local address → container address:port.
    PortAddr { host_ip: IpAddr, proto: Proto, host_port: u16, addr: IpAddr, port: u16 },
    /// `deny4`/`6`: drop (source range, container address, protocol, ports).
    /// Ranges are disjoint across elements of one container (see `desired`).
    Deny { src: (IpAddr, IpAddr), dst: IpAddr, protos: (u8, u8), ports: PortRange },
    /// `allow4`/`6`: permitted sources of a guarded destination.
    Allow { src: (IpAddr, IpAddr), dst: IpAddr, protos: (u8, u8), ports: PortRange },
    /// `guarded4`/`6`: destinations that only allowed sources may reach.
    Guarded { dst: IpAddr, protos: (u8, u8), ports: PortRange },
    /// `tunnels`: every overlay's VXLAN device.
    Tunnel(String),
    /// `tunnel_out`: `"bridge" . "tunnel"`: an overlay's containers here
    /// may send into its tunnel (the host at the other end filters).
    TunnelOut { bridge: String, tunnel: String },
    /// `bridge_pairs` too: `"tunnel" . "bridge"`: traffic from the
    /// overlay's containers on other hosts is traffic of the same network.
    TunnelIn { tunnel: String, bridge: String },
    /// `vxlan_ports`: UDP ports overlays receive VXLAN packets on.
    VxlanPort(u16),
    /// `vtep_peers4`/`6`: hosts of the cluster that may send VXLAN packets
    /// here, with the port.
    VtepPeer { addr: IpAddr, port: u16 },
}

fn ifname_bytes(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    let n = name.as_bytes();
    b[..n.len().min(15)].copy_from_slice(&n[..n.len().min(15)]);
    b
}

fn push_ip(v: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
    }
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

/// An address as nft writes it inside a map's data (`[v6]` is not needed
/// in a concatenation; nft reads a bare address).
fn ip_text(ip: IpAddr) -> String {
    ip.to_string()
}

impl Element {
    /// The family of the element's addresses (None: no addresses).
    pub fn family_v6(&self) -> Option<bool> {
        match self {
            Element::Bridge(_)
            | Element::InternalBridge(_)
            | Element::IccOff(_)
            | Element::MasqBridge(_)
            | Element::BridgePair(_)
            | Element::Tunnel(_)
            | Element::TunnelOut { .. }
            | Element::TunnelIn { .. }
            | Element::VxlanPort(_) => None,
            Element::Subnet { start: a, .. }
            | Element::ResolverAddr(a)
            | Element::Resolver { addr: a, .. }
            | Element::Link { src: a, .. }
            | Element::PortAny { addr: a, .. }
            | Element::PortAddr { addr: a, .. }
            | Element::Deny { dst: a, .. }
            | Element::Allow { dst: a, .. }
            | Element::Guarded { dst: a, .. }
            | Element::VtepPeer { addr: a, .. } => Some(a.is_ipv6()),
        }
    }

    /// The set or map this element belongs to.
    pub fn set(&self) -> &'static str {
        let v6 = self.family_v6() == Some(true);
        let pick = |four: &'static str, six: &'static str| if v6 { six } else { four };
        match self {
            Element::Bridge(_) => "bridges",
            Element::InternalBridge(_) => "internal_bridges",
            Element::IccOff(_) => "icc_off_bridges",
            Element::MasqBridge(_) => "masq_bridges",
            Element::BridgePair(_) => "bridge_pairs",
            Element::Subnet { .. } => pick("subnets4", "subnets6"),
            Element::ResolverAddr(_) => pick("resolver_addrs4", "resolver_addrs6"),
            Element::Resolver { .. } => pick("resolvers4", "resolvers6"),
            Element::Link { .. } => pick("links4", "links6"),
            Element::PortAny { .. } => pick("ports_any4", "ports_any6"),
            Element::PortAddr { .. } => pick("ports_addr4", "ports_addr6"),
            Element::Deny { .. } => pick("deny4", "deny6"),
            Element::Allow { .. } => pick("allow4", "allow6"),
            Element::Guarded { .. } => pick("guarded4", "guarded6"),
            Element::Tunnel(_) => "tunnels",
            Element::TunnelOut { .. } => "tunnel_out",
            Element::TunnelIn { .. } => "bridge_pairs",
            Element::VxlanPort(_) => "vxlan_ports",
            Element::VtepPeer { .. } => pick("vtep_peers4", "vtep_peers6"),
        }
    }

    /// Key (and `: data` for maps) in nft syntax.
    pub fn text(&self) -> String {
        match self {
            Element::Bridge(n) | Element::InternalBridge(n) | Element::IccOff(n) | Element::MasqBridge(n) | Element::Tunnel(n) => {
                format!("\"{n}\"")
            }
            Element::TunnelOut { bridge: a, tunnel: b } | Element::TunnelIn { tunnel: a, bridge: b } => format!("\"{a}\" . \"{b}\""),
            Element::VxlanPort(p) => p.to_string(),
            Element::VtepPeer { addr, port } => format!("{addr} . {port}"),
            Element::BridgePair(n) => format!("\"{n}\" . \"{n}\""),
            Element::Subnet { start, end, bridge } => format!("{} . \"{bridge}\"", range_text(*start, *end)),
            Element::ResolverAddr(a) => a.to_string(),
            Element::Resolver { addr, bridge } => format!("{addr} . \"{bridge}\""),
            Element::Link { src, dst, proto, port } => format!("{src} . {dst} . {proto} . {port}"),
            Element::PortAny { proto, host_port, addr, port } => format!("{proto} . {host_port} : {} . {port}", ip_text(*addr)),
            Element::PortAddr { host_ip, proto, host_port, addr, port } => {
                format!("{host_ip} . {proto} . {host_port} : {} . {port}", ip_text(*addr))
            }
            Element::Deny { src, dst, protos, ports } | Element::Allow { src, dst, protos, ports } => format!(
                "{} . {dst} . {} . {}",
                range_text(src.0, src.1),
                proto_text(*protos),
                range_text(ports.0, ports.1)
            ),
            Element::Guarded { dst, protos, ports } => {
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
            Element::Deny { .. } | Element::Allow { .. } | Element::Guarded { .. } | Element::Subnet { .. } => Some(self.key_at(true)),
            _ => None,
        }
    }

    fn key_at(&self, end: bool) -> Vec<u8> {
        let mut v = Vec::with_capacity(48);
        match self {
            Element::Bridge(n) | Element::InternalBridge(n) | Element::IccOff(n) | Element::MasqBridge(n) | Element::Tunnel(n) => {
                v.extend_from_slice(&ifname_bytes(n))
            }
            Element::TunnelOut { bridge: a, tunnel: b } | Element::TunnelIn { tunnel: a, bridge: b } => {
                v.extend_from_slice(&ifname_bytes(a));
                v.extend_from_slice(&ifname_bytes(b));
            }
            // A lone inet_service key is its 2 bytes, unpadded.
            Element::VxlanPort(p) => v.extend_from_slice(&p.to_be_bytes()),
            Element::VtepPeer { addr, port } => {
                push_ip(&mut v, *addr);
                push_port(&mut v, *port);
            }
            Element::BridgePair(n) => {
                v.extend_from_slice(&ifname_bytes(n));
                v.extend_from_slice(&ifname_bytes(n));
            }
            Element::Subnet { start, end: last, bridge } => {
                push_ip(&mut v, if end { *last } else { *start });
                v.extend_from_slice(&ifname_bytes(bridge));
            }
            Element::ResolverAddr(a) => push_ip(&mut v, *a),
            Element::Resolver { addr, bridge } => {
                push_ip(&mut v, *addr);
                v.extend_from_slice(&ifname_bytes(bridge));
            }
            Element::Link { src, dst, proto, port } => {
                push_ip(&mut v, *src);
                push_ip(&mut v, *dst);
                push_proto(&mut v, proto.number());
                push_port(&mut v, *port);
            }
            Element::PortAny { proto, host_port, .. } => {
                push_proto(&mut v, proto.number());
                push_port(&mut v, *host_port);
            }
            Element::PortAddr { host_ip, proto, host_port, .. } => {
                push_ip(&mut v, *host_ip);
                push_proto(&mut v, proto.number());
                push_port(&mut v, *host_port);
            }
            Element::Deny { src, dst, protos, ports } | Element::Allow { src, dst, protos, ports } => {
                push_ip(&mut v, if end { src.1 } else { src.0 });
                push_ip(&mut v, *dst);
                push_proto(&mut v, if end { protos.1 } else { protos.0 });
                push_port(&mut v, if end { ports.1 } else { ports.0 });
            }
            Element::Guarded { dst, protos, ports } => {
                push_ip(&mut v, *dst);
                push_proto(&mut v, if end { protos.1 } else { protos.0 });
                push_port(&mut v, if end { ports.1 } else { ports.0 });
            }
        }
        v
    }

    /// Map data bytes (NFTA_SET_ELEM_DATA / NFTA_DATA_VALUE) for maps.
    pub fn data(&self) -> Option<Vec<u8>> {
        match self {
            Element::PortAny { addr, port, .. } | Element::PortAddr { addr, port, .. } => {
                let mut v = Vec::with_capacity(20);
                push_ip(&mut v, *addr);
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn port_map_bytes_match_nft() {
        // nft add element inet berth ports_any4 { udp . 53 : 172.17.0.9 . 5353 }
        let e = Element::PortAny { proto: Proto::Udp, host_port: 53, addr: ip("172.17.0.9"), port: 5353 };
        assert_eq!(e.set(), "ports_any4");
        assert_eq!(words(&e.key()), "00000011 00003500");
        assert_eq!(words(&e.data().unwrap()), "090011ac 0000e914");
        assert_eq!(e.text(), "udp . 53 : 172.17.0.9 . 5353");
    }

    #[test]
    fn ipv6_port_map_bytes_match_nft() {
        // nft add element inet berth ports_any6 { tcp . 8080 : fd00::2 . 80 }
        let e = Element::PortAny { proto: Proto::Tcp, host_port: 8080, addr: ip("fd00::2"), port: 80 };
        assert_eq!(e.set(), "ports_any6");
        assert_eq!(words(&e.key()), "00000006 0000901f");
        assert_eq!(words(&e.data().unwrap()), "000000fd 00000000 00000000 02000000 00005000");
        assert_eq!(e.text(), "tcp . 8080 : fd00::2 . 80");
    }

    #[test]
    fn interval_concat_bytes_match_nft() {
        // nft add element inet berth deny4 { 10.0.0.1-10.0.0.5 . 172.17.0.4 . 0-255 . 0-65535 }
        let e = Element::Deny { src: (ip("10.0.0.1"), ip("10.0.0.5")), dst: ip("172.17.0.4"), protos: (0, 255), ports: PortRange::ANY };
        assert_eq!(words(&e.key()), "0100000a 040011ac 00000000 00000000");
        assert_eq!(words(&e.key_end().unwrap()), "0500000a 040011ac 000000ff 0000ffff");
        assert_eq!(e.text(), "10.0.0.1-10.0.0.5 . 172.17.0.4 . 0-255 . 0-65535");
    }

    #[test]
    fn subnet_bridge_bytes_match_nft() {
        // nft add element inet t s { 10.1.0.0/16 . "br1" }
        let e = Element::Subnet { start: ip("10.1.0.0"), end: ip("10.1.255.255"), bridge: "br1".into() };
        assert_eq!(e.set(), "subnets4");
        assert_eq!(words(&e.key()), "0000010a 00317262 00000000 00000000 00000000");
        assert_eq!(words(&e.key_end().unwrap()), "ffff010a 00317262 00000000 00000000 00000000");
        let e6 = Element::Subnet { start: ip("fd00:1::"), end: ip("fd00:1::ffff:ffff:ffff:ffff"), bridge: "br1".into() };
        assert_eq!(e6.set(), "subnets6");
        assert_eq!(e6.key().len(), 32);
    }

    #[test]
    fn overlay_elements() {
        // nft add element inet berth vxlan_ports { 4789 }: a 2-byte key.
        assert_eq!(Element::VxlanPort(4789).key(), vec![0x12, 0xb5]);
        let p = Element::VtepPeer { addr: ip("10.90.0.2"), port: 4789 };
        assert_eq!((p.set(), p.text(), words(&p.key())), ("vtep_peers4", "10.90.0.2 . 4789".to_string(), "02005a0a 0000b512".to_string()));
        let t = Element::TunnelIn { tunnel: "btx-1".into(), bridge: "bth-1".into() };
        assert_eq!((t.set(), t.text()), ("bridge_pairs", "\"btx-1\" . \"bth-1\"".to_string()));
        assert_eq!(t.key().len(), 32);
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
