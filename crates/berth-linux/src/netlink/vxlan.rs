//! VXLAN devices: an overlay network's tunnel endpoint on one host.

use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo as NlLinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::link::{info_from, mac_bytes};
use super::{LinkInfo, RtSocket};
use crate::error::{LinuxError, Result};

/// The settings of a VXLAN device that decide which packets it sends and
/// accepts, and that the kernel will not change on a live device (or, for
/// learning, that berth never wants on): a device that differs in any of
/// them is deleted and made again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanConfig {
    /// The VNI (`id`).
    pub vni: u32,
    /// UDP destination port (`dstport`).
    pub port: u16,
    /// Source address of the encapsulated packets (`local`).
    pub local: Option<IpAddr>,
    /// Underlay device index (`dev`).
    pub link: Option<u32>,
    /// Whether it learns remote MACs from received packets (`[no]learning`).
    pub learning: bool,
    /// Whether it answers ARP from its neighbour table (`[no]proxy`).
    pub proxy: bool,
}

/// A VXLAN device to create: its name, MAC and MTU, and [`VxlanConfig`].
#[derive(Debug, Clone)]
pub struct VxlanSpec<'a> {
    pub name: &'a str,
    pub mac: &'a str,
    pub mtu: u32,
    pub vni: u32,
    pub port: u16,
    pub local: IpAddr,
    /// Index of the underlay device.
    pub link: u32,
}

impl VxlanSpec<'_> {
    /// What [`vxlan_link`] reads back from a device made from this spec.
    pub fn config(&self) -> VxlanConfig {
        VxlanConfig { vni: self.vni, port: self.port, local: Some(self.local), link: Some(self.link), learning: false, proxy: false }
    }
}

/// `ip link add NAME address MAC mtu MTU type vxlan id VNI local LOCAL dev
/// DEV dstport PORT ttl 64 nolearning noproxy nol2miss nol3miss udpcsum;
/// ip link set NAME alias ALIAS`.
///
/// * `dstport` is always sent: without IFLA_VXLAN_PORT the kernel uses
///   8472, Linux's pre-IANA port (iproute2 adds 4789 on its own, which
///   hides this).
/// * No learning and no proxy: every remote MAC the device sends to is a
///   static entry berth writes, so nothing received on the wire can
///   redirect traffic, and ARP is the bridge's business (`proxy_arp`),
///   not the tunnel's. No l2miss/l3miss: nothing listens for them.
/// * No `group`/`remote`: there is no default destination, a frame goes
///   only where a forwarding entry says. An IPv6 underlay gets the
///   unspecified group `::`, which is what lets its forwarding entries
///   name IPv6 destinations.
/// * Not a port of any bridge: the overlay is routed (L3) through it.
///
/// The device is left down; the alias (which marks it as berth's, see
/// `OWNER_ALIAS`) is set in a second request because the kernel ignores
/// IFLA_IFALIAS at creation.
pub fn add_vxlan(sock: &mut RtSocket, spec: &VxlanSpec, alias: &str) -> Result<()> {
    let mut data = vec![InfoVxlan::Id(spec.vni)];
    match spec.local {
        IpAddr::V4(a) => data.push(InfoVxlan::Local(a)),
        IpAddr::V6(a) => {
            data.push(InfoVxlan::Local6(a));
            data.push(InfoVxlan::Group6(Ipv6Addr::UNSPECIFIED));
        }
    }
    data.extend([
        InfoVxlan::Link(spec.link),
        InfoVxlan::Port(spec.port),
        InfoVxlan::Ttl(64),
        InfoVxlan::Learning(false),
        InfoVxlan::Proxy(false),
        InfoVxlan::L2Miss(false),
        InfoVxlan::L3Miss(false),
        InfoVxlan::UDPCsum(true),
    ]);
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(spec.name.to_string()));
    m.attributes.push(LinkAttribute::Address(mac_bytes(spec.mac)?.to_vec()));
    m.attributes.push(LinkAttribute::Mtu(spec.mtu));
    m.attributes.push(LinkAttribute::LinkInfo(vec![NlLinkInfo::Kind(InfoKind::Vxlan), NlLinkInfo::Data(InfoData::Vxlan(data))]));
    let what = || {
        format!(
            "ip link add {} address {} mtu {} type vxlan id {} local {} dev #{} dstport {} ttl 64 nolearning noproxy nol2miss nol3miss udpcsum",
            spec.name, spec.mac, spec.mtu, spec.vni, spec.local, spec.link, spec.port
        )
    };
    match sock.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, what) {
        // The name was free (the caller checked): another device has this
        // VNI, port and local address.
        Err(e) if e.errno() == Some(libc::EEXIST) => {
            return Err(LinuxError::VniInUse { name: spec.name.to_string(), vni: spec.vni, port: spec.port, local: spec.local })
        }
        r => r?,
    }
    let index = super::link_index(sock, spec.name)?
        .map(|l| l.index)
        .ok_or_else(|| LinuxError::kernel(format!("ip link show {}", spec.name), std::io::Error::from_raw_os_error(libc::ENODEV)))?;
    super::set_link_attrs(sock, index, None, None, Some(alias))
}

/// `ip -d link show NAME`: the link, and its VXLAN settings when it is a
/// VXLAN device; None if there is no such link.
pub fn vxlan_link(sock: &mut RtSocket, name: &str) -> Result<Option<(LinkInfo, Option<VxlanConfig>)>> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    let l = match sock.dump_one(RouteNetlinkMessage::GetLink(m), || format!("ip -d link show {name}")) {
        Ok(Some(RouteNetlinkMessage::NewLink(l))) => l,
        Ok(_) => return Ok(None),
        Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(None),
        Err(e) => return Err(e),
    };
    let data = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            NlLinkInfo::Data(InfoData::Vxlan(v)) => Some(v),
            _ => None,
        }),
        _ => None,
    });
    Ok(Some((info_from(&l), data.map(|d| parse_config(d)))))
}

/// The [`VxlanConfig`] in a device's IFLA_INFO_DATA. Attributes the
/// kernel leaves out read as their kernel defaults (port 8472, learning
/// on, proxy off).
fn parse_config(data: &[InfoVxlan]) -> VxlanConfig {
    let mut c = VxlanConfig { vni: 0, port: 8472, local: None, link: None, learning: true, proxy: false };
    for d in data {
        match d {
            InfoVxlan::Id(v) => c.vni = *v,
            InfoVxlan::Port(p) => c.port = *p,
            InfoVxlan::Local(a) if !a.is_unspecified() => c.local = Some(IpAddr::V4(*a)),
            InfoVxlan::Local6(a) if !a.is_unspecified() => c.local = Some(IpAddr::V6(*a)),
            InfoVxlan::Link(i) if *i != 0 => c.link = Some(*i),
            InfoVxlan::Learning(b) => c.learning = *b,
            InfoVxlan::Proxy(b) => c.proxy = *b,
            _ => {}
        }
    }
    c
}
