//! Links: bridges, veth pairs, up/down, master, delete, list.

use std::os::fd::RawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridgePort, InfoData, InfoKind, InfoMacVlan, InfoPortData, InfoPortKind,
    InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::RtSocket;
use crate::error::Result;

/// What berth needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub alias: Option<String>,
    pub master: Option<u32>,
    pub mtu: u32,
    pub up: bool,
    pub mac: Option<String>,
}

pub(crate) fn fmt_mac(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

pub(crate) fn parse_mac(s: &str) -> Vec<u8> {
    s.split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect()
}

/// A MAC written `aa:bb:cc:dd:ee:ff` (either case) as its six bytes, or a
/// typed error naming it: a malformed MAC must not turn into a shorter
/// address the kernel would reject with a bare EINVAL.
pub(crate) fn mac_bytes(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut out = [0u8; 6];
    if parts.len() != 6 {
        return Err(crate::LinuxError::BadMac(s.to_string()));
    }
    for (o, p) in out.iter_mut().zip(&parts) {
        *o = (p.len() == 2).then(|| u8::from_str_radix(p, 16).ok()).flatten().ok_or_else(|| crate::LinuxError::BadMac(s.to_string()))?;
    }
    Ok(out)
}

pub(crate) fn info_from(m: &LinkMessage) -> LinkInfo {
    let mut li = LinkInfo {
        index: m.header.index,
        name: String::new(),
        kind: None,
        alias: None,
        master: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        mac: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => li.name = n.clone(),
            LinkAttribute::IfAlias(s) => li.alias = Some(s.clone()),
            LinkAttribute::Controller(i) => li.master = Some(*i),
            LinkAttribute::Mtu(v) => li.mtu = *v,
            LinkAttribute::Address(b) => li.mac = Some(fmt_mac(b)),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(k) = i {
                        li.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    li
}

/// `ip -d link show`
pub fn list_links(sock: &mut RtSocket) -> Result<Vec<LinkInfo>> {
    let msgs = sock.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), || "ip link show".into())?;
    Ok(msgs
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(info_from(l)),
            _ => None,
        })
        .collect())
}

/// `ip link show NAME`: the link's index, or None if there is no such link.
pub fn link_index(sock: &mut RtSocket, name: &str) -> Result<Option<LinkInfo>> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    // A GETLINK by name is answered with the link (not a dump); collect it via dump path.
    match sock.dump_one(RouteNetlinkMessage::GetLink(m), || format!("ip link show {name}")) {
        Ok(Some(RouteNetlinkMessage::NewLink(l))) => Ok(Some(info_from(&l))),
        Ok(_) => Ok(None),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `ip link show` of one link by index: its name and state, or None if
/// there is no such link.
pub fn link_by_index(sock: &mut RtSocket, index: u32) -> Result<Option<LinkInfo>> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    match sock.dump_one(RouteNetlinkMessage::GetLink(m), || format!("ip link show #{index}")) {
        Ok(Some(RouteNetlinkMessage::NewLink(l))) => Ok(Some(info_from(&l))),
        Ok(_) => Ok(None),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `ip link add NAME address MAC type bridge mtu PLACEHOLDER; ip link set NAME mtu MTU alias ALIAS`
///
/// The MTU is set in a second request, as a change: the kernel only counts
/// an MTU as set by the user when it changes one (an MTU given at creation
/// is not), and a bridge without that mark recomputes its MTU from all its
/// ports on every port added (`br_mtu_auto_adjust`, a walk over the ports).
///
/// The bridge is left down: the caller sets what must be in place before
/// it comes up (see `sysctl::no_dad`), then brings it up.
pub fn add_bridge(sock: &mut RtSocket, name: &str, mac: &str, mtu: u32, alias: &str) -> Result<()> {
    let placeholder = if mtu > 68 { mtu - 1 } else { mtu + 1 };
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.push(LinkAttribute::Address(parse_mac(mac)));
    m.attributes.push(LinkAttribute::Mtu(placeholder));
    // No multicast snooping: it keeps per-port state and timers that every
    // port change walks; container networks flood multicast like broadcast.
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        NlLinkInfo::Kind(InfoKind::Bridge),
        NlLinkInfo::Data(InfoData::Bridge(vec![netlink_packet_route::link::InfoBridge::MulticastSnooping(false)])),
    ]));
    sock.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, || {
        format!("ip link add {name} type bridge mtu {placeholder} mcast_snooping 0")
    })?;
    // The kernel also ignores IFLA_IFALIAS on creation.
    let index = link_index(sock, name)?.map(|l| l.index).unwrap_or(0);
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes.push(LinkAttribute::Mtu(mtu));
    m.attributes.push(LinkAttribute::IfAlias(alias.to_string()));
    sock.request(RouteNetlinkMessage::SetLink(m), 0, || format!("ip link set dev {name} mtu {mtu} alias {alias}"))
}

/// One request for the whole host side of an endpoint:
/// `ip link add HOST address HOST_MAC mtu MTU master BRIDGE type veth peer name PEER address MAC mtu MTU netns NS`.
/// The peer is created directly inside the container's namespace, so it
/// never appears in the host's (with no `netns`: in the caller's, for a
/// runtime to move). Both ends are created down, so the caller
/// can turn IPv6 off on them before they come up (see `crate::sysctl`).
#[allow(clippy::too_many_arguments)]
pub fn add_veth_into_netns(
    sock: &mut RtSocket,
    host: &str,
    host_mac: &str,
    peer: &str,
    peer_mac: &str,
    netns: Option<RawFd>,
    mtu: u32,
    master: u32,
) -> Result<()> {
    let mut p = LinkMessage::default();
    p.attributes.push(LinkAttribute::IfName(peer.to_string()));
    p.attributes.push(LinkAttribute::Address(parse_mac(peer_mac)));
    p.attributes.push(LinkAttribute::Mtu(mtu));
    if let Some(fd) = netns {
        p.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(host.to_string()));
    m.attributes.push(LinkAttribute::Address(parse_mac(host_mac)));
    m.attributes.push(LinkAttribute::Mtu(mtu));
    m.attributes.push(LinkAttribute::Controller(master));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        NlLinkInfo::Kind(InfoKind::Veth),
        NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
    ]));
    sock.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, || {
        format!("ip link add {host} address {host_mac} mtu {mtu} master {master} type veth peer name {peer} address {peer_mac} netns FD")
    })
}

/// `ip link add link PARENT name NAME netns NS address MAC mtu MTU type
/// macvlan mode bridge`, in one request: the child of `parent` (an index
/// in the caller's namespace) is created directly inside the container's
/// namespace under its final name, so it never appears in the host's and
/// needs no rename. Bridge mode: children of one parent reach each other
/// inside the driver, and everything else through the parent's LAN. It
/// is created down, so the caller can configure it before it comes up.
pub fn add_macvlan_into_netns(sock: &mut RtSocket, name: &str, parent: u32, netns: RawFd, mac: &str, mtu: u32) -> Result<()> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.push(LinkAttribute::Link(parent));
    m.attributes.push(LinkAttribute::NetNsFd(netns));
    m.attributes.push(LinkAttribute::Address(mac_bytes(mac)?.to_vec()));
    m.attributes.push(LinkAttribute::Mtu(mtu));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        NlLinkInfo::Kind(InfoKind::MacVlan),
        NlLinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)])),
    ]));
    sock.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, || {
        format!("ip link add link #{parent} name {name} netns FD address {mac} mtu {mtu} type macvlan mode bridge")
    })
}

/// `ip link set dev INDEX [address MAC] [mtu MTU] [alias ALIAS]`: fixes
/// what differs on an existing link in one request (nothing is sent
/// when all are None).
pub fn set_link_attrs(sock: &mut RtSocket, index: u32, mac: Option<&str>, mtu: Option<u32>, alias: Option<&str>) -> Result<()> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    let mut what = format!("ip link set dev #{index}");
    if let Some(mac) = mac {
        m.attributes.push(LinkAttribute::Address(mac_bytes(mac)?.to_vec()));
        what += &format!(" address {mac}");
    }
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
        what += &format!(" mtu {mtu}");
    }
    if let Some(alias) = alias {
        m.attributes.push(LinkAttribute::IfAlias(alias.to_string()));
        what += &format!(" alias {alias}");
    }
    if m.attributes.is_empty() {
        return Ok(());
    }
    sock.request(RouteNetlinkMessage::SetLink(m), 0, || what.clone())
}

/// `ip link del NAME`. Deleting one end of a veth pair deletes both.
pub fn delete_link(sock: &mut RtSocket, name: &str) -> Result<()> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    sock.request(RouteNetlinkMessage::DelLink(m), 0, || format!("ip link del {name}"))
}

/// `ip link set dev INDEX up` (optionally `mtu MTU`)
pub fn set_link_up(sock: &mut RtSocket, index: u32, mtu: Option<u32>) -> Result<()> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    sock.request(RouteNetlinkMessage::SetLink(m), 0, || format!("ip link set dev #{index} up"))
}

/// `ip link set dev NAME up addrgenmode none`, in one request, by name.
///
/// Interfaces of IPv4-only networks get no IPv6 link-local address: with
/// one, every new container interface would send duplicate-address probes
/// and router solicitations that the bridge floods to every port (attach
/// cost growing with the number of containers). The mode has to be in the
/// same request as "up": the kernel sets it before it brings the link up.
pub fn set_up_without_ipv6_ll(sock: &mut RtSocket, name: &str) -> Result<()> {
    sock.request(RouteNetlinkMessage::SetLink(up_without_ipv6_ll(name)), 0, || format!("ip link set dev {name} up addrgenmode none"))
}

/// `ip link set dev NAME addrgenmode none`, on its own, before the link
/// comes up. Needed where [`set_up_without_ipv6_ll`]'s one request is too
/// late: a link that is operationally up the moment it is opened (a
/// macvlan child of a parent that is up, which inherits its operstate)
/// gets its link-local address as it comes up, before the kernel applies
/// the mode of the same request. A veth end only turns operationally up
/// later (the kernel's link watch), after the mode is set.
pub fn set_no_ipv6_ll(sock: &mut RtSocket, name: &str) -> Result<()> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)])]));
    sock.request(RouteNetlinkMessage::SetLink(m), 0, || format!("ip link set dev {name} addrgenmode none"))
}

/// The message of [`set_up_without_ipv6_ll`], shared with [`set_port_up`].
fn up_without_ipv6_ll(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)])]));
    m
}

/// The host end of an endpoint, in one request:
/// `ip link set dev NAME up addrgenmode none type bridge_slave hairpin on`.
///
/// Hairpin: a container that connects to its own published port has the
/// translated packet bridged straight back out of the port it came in on
/// (br_netfilter bridges DNAT'ed traffic whose target is on the same
/// bridge), which a bridge only allows on hairpin ports.
pub fn set_port_up(sock: &mut RtSocket, name: &str) -> Result<()> {
    let mut m = up_without_ipv6_ll(name);
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        NlLinkInfo::PortKind(InfoPortKind::Bridge),
        NlLinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(true)])),
    ]));
    // RTM_NEWLINK without NLM_F_CREATE changes an existing link, port options included.
    sock.request(RouteNetlinkMessage::NewLink(m), 0, || format!("ip link set dev {name} up addrgenmode none type bridge_slave hairpin on"))
}

/// `ip link set dev NAME down`: cuts an endpoint off at once (its deletion,
/// which waits for an RCU grace period, can then happen later).
pub fn set_link_down_by_name(sock: &mut RtSocket, name: &str) -> Result<()> {
    let mut m = LinkMessage::default();
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    sock.request(RouteNetlinkMessage::SetLink(m), 0, || format!("ip link set dev {name} down"))
}
