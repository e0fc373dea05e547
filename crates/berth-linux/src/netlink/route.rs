//! Routes.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
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

/// `rtm_protocol` of the routes berth writes towards other hosts of an
/// overlay (`ip route ... proto 183`): it marks them as berth's, so that
/// reading and cleaning up a tunnel's routes compares and removes only
/// those, never a route someone else put on the device (a protocol
/// number no routing daemon uses; iproute2 shows it as `proto 183`).
pub const BERTH_PROTO: u8 = 0xb7;

/// A route berth wrote on a tunnel device: `ip route replace DST via
/// GATEWAY dev DEV onlink [src SRC] proto 183`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRoute {
    pub dst: IpNet,
    pub gateway: IpAddr,
    pub src: Option<IpAddr>,
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    RouteAddress::from(ip)
}

/// The message shared by replace and delete: main table, berth's
/// protocol, `dst` out of `oif`.
fn tunnel_route_msg(dst: IpNet, oif: u32) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family(&dst.addr());
    m.header.destination_prefix_length = dst.prefix_len();
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Other(BERTH_PROTO);
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes.push(RouteAttribute::Destination(route_addr(dst.network())));
    m.attributes.push(RouteAttribute::Oif(oif));
    m
}

/// `ip route replace DST via GATEWAY dev OIF onlink [src SRC] proto 183`
/// in the main table. `onlink`: the gateway (another host's underlay
/// address) is on no subnet of the device, the tunnel reaches it all the
/// same. The gateway is of `dst`'s family (the caller checks: the kernel
/// refuses an IPv6 onlink gateway on the tunnel while the underlay routes
/// it through another device).
pub fn replace_tunnel_route(sock: &mut RtSocket, oif: u32, r: &TunnelRoute) -> Result<()> {
    let mut m = tunnel_route_msg(r.dst, oif);
    m.header.flags = RouteFlags::Onlink;
    m.attributes.push(RouteAttribute::Gateway(route_addr(r.gateway)));
    if let Some(src) = r.src.filter(|s| s.is_ipv4() == r.dst.addr().is_ipv4()) {
        m.attributes.push(RouteAttribute::PrefSource(route_addr(src)));
    }
    sock.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_REPLACE, || {
        let src = r.src.map(|s| format!(" src {s}")).unwrap_or_default();
        format!("ip route replace {} via {} dev #{oif} onlink{src} proto {BERTH_PROTO}", r.dst, r.gateway)
    })
}

/// `ip route del DST dev OIF proto 183 table main`
pub fn delete_tunnel_route(sock: &mut RtSocket, oif: u32, dst: IpNet) -> Result<()> {
    sock.request(RouteNetlinkMessage::DelRoute(tunnel_route_msg(dst, oif)), 0, || format!("ip route del {dst} dev #{oif} proto {BERTH_PROTO}"))
}

/// `ip route show table main dev OIF proto 183` (both families): the
/// routes [`replace_tunnel_route`] wrote on that device. The request
/// carries the table, protocol and device, which a kernel in strict mode
/// (see `RtSocket::set_strict`) filters by; the replies are filtered here
/// as well.
pub fn list_tunnel_routes(sock: &mut RtSocket, oif: u32) -> Result<Vec<TunnelRoute>> {
    let mut out = Vec::new();
    for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut q = RouteMessage::default();
        q.header.address_family = fam;
        q.header.table = RouteHeader::RT_TABLE_MAIN;
        q.header.protocol = RouteProtocol::Other(BERTH_PROTO);
        q.attributes.push(RouteAttribute::Oif(oif));
        let what = || format!("ip {}route show table main dev #{oif} proto {BERTH_PROTO}", if fam == AddressFamily::Inet { "" } else { "-6 " });
        for m in sock.dump(RouteNetlinkMessage::GetRoute(q), what)? {
            let RouteNetlinkMessage::NewRoute(r) = m else { continue };
            if r.header.protocol != RouteProtocol::Other(BERTH_PROTO) || r.header.kind != RouteType::Unicast {
                continue;
            }
            let mut table = r.header.table as u32;
            let (mut dst, mut gateway, mut src, mut dev) = (None, None, None, None);
            for a in &r.attributes {
                match a {
                    RouteAttribute::Destination(d) => dst = ip_of(d),
                    RouteAttribute::Gateway(g) => gateway = ip_of(g),
                    RouteAttribute::PrefSource(s) => src = ip_of(s),
                    RouteAttribute::Oif(i) => dev = Some(*i),
                    RouteAttribute::Table(t) => table = *t,
                    _ => {}
                }
            }
            let (Some(dst), Some(gateway)) = (dst, gateway) else { continue };
            if dev != Some(oif) || table != RouteHeader::RT_TABLE_MAIN as u32 {
                continue;
            }
            if let Ok(dst) = IpNet::new(dst, r.header.destination_prefix_length) {
                out.push(TunnelRoute { dst, gateway, src });
            }
        }
    }
    Ok(out)
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(x) => Some(IpAddr::V4(*x)),
        RouteAddress::Inet6(x) => Some(IpAddr::V6(*x)),
        _ => None,
    }
}
