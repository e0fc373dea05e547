//! Neighbour entries (`ip neigh`) and a VXLAN device's own forwarding
//! entries (`bridge fdb ... self`), both RTM_*NEIGH messages: the first of
//! family AF_INET/AF_INET6, the second of family AF_BRIDGE with NTF_SELF.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::link::fmt_mac;
use super::RtSocket;
use crate::error::Result;

/// A forwarding entry of a VXLAN device: frames for `mac` are sent to
/// the remote tunnel endpoint `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    pub dst: IpAddr,
}

/// A neighbour entry: `ip` is at `mac` (None while unresolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
    pub permanent: bool,
}

/// The address in an NDA_DST: the crate decodes only AF_INET/AF_INET6
/// messages' addresses, an AF_BRIDGE dump's come as raw bytes.
fn addr_of(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v) => Some(IpAddr::V4(*v)),
        NeighbourAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        },
        _ => None,
    }
}

fn nd_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// A dump request of one family's entries on one device. The kernel
/// filters by NDA_IFINDEX (an FDB dump, in strict mode, by the header's
/// index); the replies are filtered here too, for kernels that do not.
fn dump_on(sock: &mut RtSocket, fam: AddressFamily, ifindex: u32, what: &str) -> Result<Vec<NeighbourMessage>> {
    let mut q = NeighbourMessage::default();
    q.header.family = fam;
    if fam == AddressFamily::Bridge {
        q.header.ifindex = ifindex;
    } else {
        q.attributes.push(NeighbourAttribute::IfIndex(ifindex));
    }
    let msgs = sock.dump(RouteNetlinkMessage::GetNeighbour(q), || what.to_string())?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(n) if n.header.ifindex == ifindex => Some(n),
            _ => None,
        })
        .collect())
}

fn lladdr(n: &NeighbourMessage) -> Option<[u8; 6]> {
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
        _ => None,
    })
}

fn dst(n: &NeighbourMessage) -> Option<IpAddr> {
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(d) => addr_of(d),
        _ => None,
    })
}

/// `bridge fdb show dev DEV self`: the device's own entries that send to
/// a remote endpoint (entries without a destination, such as a bridge's
/// for its ports, are not of this kind and are left out).
pub fn list_fdb(sock: &mut RtSocket, ifindex: u32) -> Result<Vec<FdbEntry>> {
    let msgs = dump_on(sock, AddressFamily::Bridge, ifindex, &format!("bridge fdb show dev #{ifindex}"))?;
    Ok(msgs
        .iter()
        .filter(|n| n.header.flags.contains(NeighbourFlags::Own))
        .filter_map(|n| Some(FdbEntry { mac: lladdr(n)?, dst: dst(n)? }))
        .collect())
}

fn fdb_msg(ifindex: u32, e: &FdbEntry) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = ifindex;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own; // NTF_SELF: the VXLAN device's table, not a bridge's
    m.attributes.push(NeighbourAttribute::LinkLayerAddress(e.mac.to_vec()));
    m.attributes.push(NeighbourAttribute::Destination(nd_addr(e.dst)));
    m
}

/// `bridge fdb replace MAC dev DEV dst DST self permanent`. No port or
/// VNI of its own: the device's are used.
pub fn replace_fdb(sock: &mut RtSocket, ifindex: u32, e: &FdbEntry) -> Result<()> {
    sock.request(RouteNetlinkMessage::NewNeighbour(fdb_msg(ifindex, e)), NLM_F_CREATE | NLM_F_REPLACE, || {
        format!("bridge fdb replace {} dev #{ifindex} dst {} self permanent", fmt_mac(&e.mac), e.dst)
    })
}

/// `bridge fdb del MAC dev DEV dst DST self`: removes that one destination.
pub fn delete_fdb(sock: &mut RtSocket, ifindex: u32, e: &FdbEntry) -> Result<()> {
    let mut m = fdb_msg(ifindex, e);
    m.header.state = NeighbourState::None;
    sock.request(RouteNetlinkMessage::DelNeighbour(m), 0, || format!("bridge fdb del {} dev #{ifindex} dst {} self", fmt_mac(&e.mac), e.dst))
}

/// `ip neigh show dev DEV` (both families).
pub fn list_neighbours(sock: &mut RtSocket, ifindex: u32) -> Result<Vec<Neighbour>> {
    let mut out = Vec::new();
    for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
        let what = format!("ip {}neigh show dev #{ifindex}", if fam == AddressFamily::Inet { "" } else { "-6 " });
        for n in dump_on(sock, fam, ifindex, &what)? {
            if let Some(ip) = dst(&n) {
                out.push(Neighbour { ip, mac: lladdr(&n), permanent: n.header.state == NeighbourState::Permanent });
            }
        }
    }
    Ok(out)
}

fn neigh_msg(ifindex: u32, ip: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = family(ip);
    m.header.ifindex = ifindex;
    m.attributes.push(NeighbourAttribute::Destination(nd_addr(ip)));
    m
}

/// `ip neigh replace IP lladdr MAC dev DEV nud permanent`
pub fn replace_neighbour(sock: &mut RtSocket, ifindex: u32, ip: IpAddr, mac: &[u8; 6]) -> Result<()> {
    let mut m = neigh_msg(ifindex, ip);
    m.header.state = NeighbourState::Permanent;
    m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    sock.request(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE | NLM_F_REPLACE, || {
        format!("ip neigh replace {ip} lladdr {} dev #{ifindex} nud permanent", fmt_mac(mac))
    })
}

/// `ip neigh del IP dev DEV`
pub fn delete_neighbour(sock: &mut RtSocket, ifindex: u32, ip: IpAddr) -> Result<()> {
    sock.request(RouteNetlinkMessage::DelNeighbour(neigh_msg(ifindex, ip)), 0, || format!("ip neigh del {ip} dev #{ifindex}"))
}
