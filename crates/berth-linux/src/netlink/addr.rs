//! Addresses.

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::RtSocket;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    pub index: u32,
    pub addr: IpNet,
}

/// `ip addr replace ADDR dev INDEX` (idempotent).
pub fn add_address(sock: &mut RtSocket, index: u32, addr: IpNet) -> Result<()> {
    let mut m = AddressMessage::default();
    m.header.family = if addr.addr().is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.prefix_len = addr.prefix_len();
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(addr.addr()));
    m.attributes.push(AddressAttribute::Address(addr.addr()));
    if addr.addr().is_ipv4() {
        if let IpNet::V4(n) = addr {
            if addr.prefix_len() < 31 {
                m.attributes.push(AddressAttribute::Broadcast(n.broadcast()));
            }
        }
    }
    sock.request(RouteNetlinkMessage::NewAddress(m), NLM_F_CREATE | NLM_F_REPLACE, || {
        format!("ip addr replace {addr} dev #{index}")
    })
}

/// `ip addr show`
pub fn list_addresses(sock: &mut RtSocket) -> Result<Vec<HostAddress>> {
    let msgs = sock.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()), || "ip addr show".into())?;
    let mut out = Vec::new();
    for m in msgs {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            let ip = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let ip = ip.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(ip) = ip {
                if let Ok(net) = IpNet::new(ip, a.header.prefix_len) {
                    out.push(HostAddress { index: a.header.index, addr: net });
                }
            }
        }
    }
    Ok(out)
}
