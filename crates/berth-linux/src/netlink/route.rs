//! Routes.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::RtSocket;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub table: u32,
}

fn family(ip: &IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// `ip route replace default via GATEWAY`
pub fn add_default_route(sock: &mut RtSocket, gateway: IpAddr) -> Result<()> {
    let mut m = RouteMessage::default();
    m.header.address_family = family(&gateway);
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    sock.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_REPLACE, || {
        format!("ip route replace default via {gateway}")
    })
}

/// `ip route show table all` (unicast routes only)
pub fn list_routes(sock: &mut RtSocket) -> Result<Vec<HostRoute>> {
    let mut out = Vec::new();
    for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut q = RouteMessage::default();
        q.header.address_family = fam;
        let msgs = sock.dump(RouteNetlinkMessage::GetRoute(q), || "ip route show table all".into())?;
        for m in msgs {
            let RouteNetlinkMessage::NewRoute(r) = m else { continue };
            if r.header.kind != RouteType::Unicast {
                continue;
            }
            let mut dst = None;
            let mut gateway = None;
            let mut oif = None;
            let mut table = r.header.table as u32;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(x)) => dst = Some(IpAddr::V4(*x)),
                    RouteAttribute::Destination(RouteAddress::Inet6(x)) => dst = Some(IpAddr::V6(*x)),
                    RouteAttribute::Gateway(RouteAddress::Inet(x)) => gateway = Some(IpAddr::V4(*x)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(x)) => gateway = Some(IpAddr::V6(*x)),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Table(t) => table = *t,
                    _ => {}
                }
            }
            let unspecified: IpAddr = if fam == AddressFamily::Inet { "0.0.0.0".parse().unwrap() } else { "::".parse().unwrap() };
            let dst = IpNet::new(dst.unwrap_or(unspecified), r.header.destination_prefix_length);
            if let Ok(dst) = dst {
                out.push(HostRoute { dst, gateway, oif, table });
            }
        }
    }
    Ok(out)
}
