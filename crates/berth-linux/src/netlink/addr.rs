//! Addresses.

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::RtSocket;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    pub index: u32,
    pub addr: IpNet,
}

/// `ip addr replace ADDR dev INDEX` (idempotent); IPv6 ones `nodad`:
/// berth hands out each address once per network, so duplicate address
/// detection would only hold the address back (tentative) for a second.
pub fn add_address(sock: &mut RtSocket, index: u32, addr: IpNet) -> Result<()> {
    let mut m = AddressMessage::default();
    m.header.family = if addr.addr().is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.prefix_len = addr.prefix_len();
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(addr.addr()));
    m.attributes.push(AddressAttribute::Address(addr.addr()));
    match addr {
        IpNet::V4(n) if addr.prefix_len() < 31 => m.attributes.push(AddressAttribute::Broadcast(n.broadcast())),
        IpNet::V4(_) => {}
        IpNet::V6(_) => {
            m.header.flags = AddressHeaderFlags::Nodad;
            m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    sock.request(RouteNetlinkMessage::NewAddress(m), NLM_F_CREATE | NLM_F_REPLACE, || {
        format!("ip addr replace {addr} dev #{index}{}", if addr.addr().is_ipv6() { " nodad" } else { "" })
    })
}

/// `ip addr del ADDR dev INDEX`: for addresses a device must no longer
/// carry (a tunnel device keeps exactly its host address).
pub fn delete_address(sock: &mut RtSocket, index: u32, addr: IpNet) -> Result<()> {
    let mut m = AddressMessage::default();
    m.header.family = if addr.addr().is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.prefix_len = addr.prefix_len();
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(addr.addr()));
    sock.request(RouteNetlinkMessage::DelAddress(m), 0, || format!("ip addr del {addr} dev #{index}"))
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

/// Calls `on_change` with the namespace's addresses (both families) now,
/// and again on a background thread after every change to them (`ip
/// monitor address`): the thread waits on a socket subscribed to
/// RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR and, on any message (or a
/// lost one, ENOBUFS), reads the whole list again rather than applying
/// events one by one. Sockets belong to the namespace they were opened in,
/// so this follows the calling thread's namespace.
pub fn watch_addresses(mut on_change: impl FnMut(Vec<std::net::IpAddr>) + Send + 'static) -> Result<()> {
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
    const RTMGRP_IPV4_IFADDR: u32 = 0x10;
    const RTMGRP_IPV6_IFADDR: u32 = 0x100;
    let what = || "ip monitor address".to_string();
    let mut events = Socket::new(NETLINK_ROUTE).map_err(|e| crate::LinuxError::kernel(what(), e))?;
    events.bind(&SocketAddr::new(0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)).map_err(|e| crate::LinuxError::kernel(what(), e))?;
    let mut sock = RtSocket::open()?;
    let all = |sock: &mut RtSocket| -> Result<Vec<std::net::IpAddr>> { Ok(list_addresses(sock)?.into_iter().map(|a| a.addr.addr()).collect()) };
    on_change(all(&mut sock)?);
    std::thread::Builder::new()
        .name("berth-addrwatch".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match events.recv(&mut &mut buf[..], 0) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                    Err(e) => {
                        tracing::warn!("ip monitor address: {e}; host addresses are no longer followed");
                        return;
                    }
                }
                match all(&mut sock) {
                    Ok(list) => on_change(list),
                    Err(e) => {
                        tracing::warn!("ip addr show: {e}");
                        sock = match RtSocket::open() {
                            Ok(s) => s,
                            Err(_) => return,
                        };
                    }
                }
            }
        })
        .map_err(|e| crate::LinuxError::kernel("spawn the address watcher", e))?;
    Ok(())
}
