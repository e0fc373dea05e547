//! Announcing an endpoint's addresses when it comes up, as Docker (≥ 25)
//! does: a gratuitous ARP for each IPv4 address and an unsolicited
//! Neighbor Advertisement for each IPv6 one, sent from the container's
//! interface.
//!
//! Why: an address goes back to the pool when its endpoint goes, and the
//! next endpoint given it may have another MAC (a dual-stack endpoint's MAC
//! follows its IPv4 address, an IPv6-only one's its endpoint id, and
//! runtimes may choose their own). The host and the other containers of
//! the network still hold the old MAC (REACHABLE, then STALE) and keep
//! sending there until their entry times out: 30 s and more without an
//! answer. The announcements make every neighbour that already has an
//! entry for the address take the new MAC at once (RFC 826 and RFC 5227
//! §3 for ARP, with the kernel's `arp_is_garp` override; RFC 4861 §7.2.6
//! for the Override flag), and create none where there was none.
//!
//! Both are whole Ethernet frames sent on an `AF_PACKET` socket bound to
//! the interface, bypassing its queueing discipline: nothing depends on
//! the container's routes, neighbour table or IPv6 state (berth's
//! interfaces have no link-local address, and the multicast route of a
//! new interface only appears after the kernel's link watch has run), and
//! nothing waits for the interface's queue to be activated. The frames
//! are built by the pure functions at the top, tested byte for byte.
//!
//! The socket is opened inside the container's namespace and stays bound
//! to the interface there, so it can be used from any thread afterwards.
//! Cost: a broadcast on a bridge is processed by every container of the
//! network, in the sender's context (the bridge floods it synchronously):
//! sent by the request, it would make an attach cost grow with the number
//! of containers (2 x N packet receptions; measured here, ~0.07 ms with
//! 20 containers, ~0.36 ms with 100, ~15 ms with 400 on a loaded 2-core
//! VM). So the request itself only sends the announcements unicast to the
//! bridge (the host: what reaches published ports, the DNS resolver, host
//! clients), one reception each, before it returns; the broadcast ones
//! (for the other containers, and the LAN of a macvlan endpoint) go out at
//! once from one background thread ([`flood`]), and again a little later
//! (see [`Round`]); never delaying the request. Failures are logged and
//! never fail a request.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netlink_packet_route::link::{BridgePortState, InfoBridgePort, InfoPortData, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::Result;
use crate::netlink::RtSocket;

pub type Mac = [u8; 6];

/// Length of [`gratuitous_arp`]'s frame: Ethernet header (14) and ARP (28).
/// Not padded to 60: the kernel's own ARP frames are not either; a NIC pads
/// short frames on the wire.
pub const ARP_FRAME_LEN: usize = 14 + 28;
/// Length of [`unsolicited_na`]'s frame: Ethernet (14), IPv6 (40), the NA
/// (24) and its Target Link-Layer Address option (8).
pub const NA_FRAME_LEN: usize = 14 + 40 + 24 + 8;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// ND option: Target Link-Layer Address (RFC 4861 §4.6.1).
const ND_OPT_TARGET_LL_ADDR: u8 = 2;
/// NA flags, first octet after the checksum: Router 0x80, Solicited 0x40,
/// Override 0x20.
const NA_FLAG_OVERRIDE: u8 = 0x20;
/// ff02::1, the all-nodes multicast address.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The Ethernet broadcast address.
pub const BROADCAST: Mac = [0xff; 6];
/// The MAC of ff02::1 (RFC 2464 §7: 33:33 and the address's low 32 bits).
pub const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];

/// A gratuitous ARP (an ARP announcement, RFC 5227 §3): an ARP request
/// from `mac` asking for `ip` with `ip` as its sender address, in a frame
/// to `dst` ([`BROADCAST`], or one neighbour's MAC). The target hardware
/// address is zero, as in the kernel's own (`arp_send` with no target
/// MAC). Linux takes it as an update of an entry it has for `ip` whoever
/// it is addressed to (`arp_is_garp`: sender and target the same unicast
/// address), and creates none.
pub fn gratuitous_arp(dst: Mac, mac: Mac, ip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut f = [0u8; ARP_FRAME_LEN];
    // Ethernet: destination, source, type.
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // ARP (RFC 826): hardware type Ethernet (1), protocol type IPv4,
    // hardware address length 6, protocol address length 4, op request (1).
    f[14..16].copy_from_slice(&1u16.to_be_bytes());
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes());
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    // Target hardware address: zero (f[32..38]); target protocol address.
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// An unsolicited Neighbor Advertisement (RFC 4861 §4.4, §7.2.6) for `ip`
/// at `mac`: from `ip` itself (berth's container interfaces have no
/// link-local address) to all nodes (ff02::1), hop limit 255, flags
/// Override set and Solicited and Router clear, with the Target
/// Link-Layer Address option; in a frame to `dst` ([`ALL_NODES_MAC`], or
/// one neighbour's MAC: the packet is the same, only that neighbour
/// receives it).
pub fn unsolicited_na(dst: Mac, mac: Mac, ip: Ipv6Addr) -> [u8; NA_FRAME_LEN] {
    let mut f = [0u8; NA_FRAME_LEN];
    let all_nodes = ALL_NODES.octets();
    // Ethernet: destination, source, type.
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    // IPv6: version 6, traffic class 0, flow label 0; payload length;
    // next header ICMPv6; hop limit 255; source; destination.
    let ip6 = &mut f[14..54];
    ip6[0] = 0x60;
    ip6[4..6].copy_from_slice(&32u16.to_be_bytes());
    ip6[6] = IPPROTO_ICMPV6;
    ip6[7] = 255;
    ip6[8..24].copy_from_slice(&ip.octets());
    ip6[24..40].copy_from_slice(&all_nodes);
    // ICMPv6: type, code 0, checksum (below), flags and 29 reserved bits,
    // the target address, then the option: type, length in units of 8
    // octets, the MAC.
    let na = &mut f[54..86];
    na[0] = ND_NEIGHBOR_ADVERT;
    na[4] = NA_FLAG_OVERRIDE;
    na[8..24].copy_from_slice(&ip.octets());
    na[24] = ND_OPT_TARGET_LL_ADDR;
    na[25] = 1;
    na[26..32].copy_from_slice(&mac);
    let sum = icmpv6_checksum(&ip, &ALL_NODES, na);
    na[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The ICMPv6 checksum (RFC 4443 §2.3) of `msg` (its checksum field zero)
/// from `src` to `dst`: the one's complement of the one's complement sum
/// over the pseudo-header of RFC 8200 §8.1 (source, destination,
/// upper-layer length, three zero octets, next header 58) and the message.
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for c in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The frames announcing `addrs` at `mac`, IPv4 and IPv6 in their order:
/// to every node of the link (`to` None), or to the neighbour `to` only.
pub fn frames(to: Option<Mac>, mac: Mac, addrs: &[IpAddr]) -> Vec<Vec<u8>> {
    addrs
        .iter()
        .map(|a| match a {
            IpAddr::V4(v) => gratuitous_arp(to.unwrap_or(BROADCAST), mac, *v).to_vec(),
            IpAddr::V6(v) => unsolicited_na(to.unwrap_or(ALL_NODES_MAC), mac, *v).to_vec(),
        })
        .collect()
}

/// The sends of one endpoint's announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// By the request, before it returns: to the bridge alone (the host).
    Bridge,
    /// From the background, at once: to every node of the link.
    All,
    /// From the background, [`REPEAT_AFTER`] later: ARP to every node
    /// again; NAs to the bridge alone when there is one. On a bridge whose
    /// ports are in hairpin mode (berth's are, for hairpin NAT), a flood
    /// also goes back out of the port it came from: the endpoint receives
    /// its own NA, and the kernel logs it ("NA: ... advertised our address
    /// ... on eth0!", rate-limited). Once per address is the price of
    /// telling the other containers; not twice. (Its own gratuitous ARP it
    /// drops silently; a macvlan child is never sent its own broadcasts.)
    Again,
}

/// The frames of `round` for `addrs` at `mac`, the bridge's MAC being
/// `bridge` (None: the endpoint is not a bridge port).
pub fn round_frames(round: Round, mac: Mac, addrs: &[IpAddr], bridge: Option<Mac>) -> Vec<Vec<u8>> {
    match (round, bridge) {
        (Round::Bridge, None) => Vec::new(),
        (Round::Bridge, Some(b)) => frames(Some(b), mac, addrs),
        (Round::All, _) | (Round::Again, None) => frames(None, mac, addrs),
        (Round::Again, Some(b)) => addrs
            .iter()
            .map(|a| match a {
                IpAddr::V4(v) => gratuitous_arp(BROADCAST, mac, *v).to_vec(),
                IpAddr::V6(v) => unsolicited_na(b, mac, *v).to_vec(),
            })
            .collect(),
    }
}

/// `aa:bb:cc:dd:ee:ff` (either case) as six bytes.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `PACKET_QDISC_BYPASS` from linux/if_packet.h (not in the libc crate):
/// frames go straight to the driver, not through the interface's queueing
/// discipline, which on a veth end is only attached once the kernel's
/// link watch has seen its carrier (until then frames queued there are
/// dropped).
const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// The announcements of one endpoint, ready to send: an `AF_PACKET`
/// socket bound to the interface (in the namespace it was opened in), the
/// interface's MAC and addresses, and the bridge's MAC if it is a bridge
/// port.
#[derive(Debug)]
pub struct Announcer {
    fd: OwnedFd,
    ifname: String,
    mac: Mac,
    addrs: Vec<IpAddr>,
    bridge: Option<Mac>,
}

impl Announcer {
    /// For interface `ifindex` (named `ifname`, for the logs) of the
    /// calling thread's namespace, with MAC `mac`, announcing the
    /// addresses of `addrs`. None when there is nothing to announce.
    pub fn open(ifindex: u32, ifname: &str, mac: &str, addrs: &[IpNet]) -> io::Result<Option<Announcer>> {
        if addrs.is_empty() {
            return Ok(None);
        }
        let mac = parse_mac(mac).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("MAC {mac:?}")))?;
        let addrs: Vec<IpAddr> = addrs.iter().map(|a| a.addr()).collect();
        // Protocol 0: a socket that only sends (no receive hook).
        // SAFETY: plain syscall; the fd is owned at once.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let on: libc::c_int = 1;
        // SAFETY: valid fd, option value of the size given.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_QDISC_BYPASS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sockaddr_ll is plain data; all zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: valid fd and address of the size given.
        let r = unsafe {
            libc::bind(fd.as_raw_fd(), (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t)
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(Announcer { fd, ifname: ifname.to_string(), mac, addrs, bridge: None }))
    }

    /// The interface is a port of the bridge of MAC `bridge` (see [`Round`]).
    pub fn on_bridge(self, bridge: Option<Mac>) -> Announcer {
        Announcer { bridge, ..self }
    }

    /// Sends `round`'s frames once (see [`round_frames`]).
    pub fn send_round(&self, round: Round) -> io::Result<()> {
        self.send(&round_frames(round, self.mac, &self.addrs, self.bridge))
    }

    /// Sends `frames` on the interface the socket is bound to (once that
    /// interface is gone, every send fails with ENXIO). The first error,
    /// after trying them all.
    fn send(&self, frames: &[Vec<u8>]) -> io::Result<()> {
        let mut first = Ok(());
        for f in frames {
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::send(self.fd.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
            if n < 0 && first.is_ok() {
                first = Err(io::Error::last_os_error());
            }
        }
        first
    }

    /// [`send_round`](Self::send_round), its failure logged (an endpoint
    /// removed meanwhile: ENXIO), never returned.
    pub fn send_logged(&self, round: Round) {
        match self.send_round(round) {
            Ok(()) => tracing::trace!("{}: addresses announced ({round:?})", self.ifname),
            Err(e) => tracing::debug!("{}: announcing its addresses ({round:?}): {e}", self.ifname),
        }
    }
}

/// How long after the first announcement from the background the second
/// goes out.
pub const REPEAT_AFTER: Duration = Duration::from_millis(200);

/// An announcer waiting in [`flood`]'s queue: `round` due at `at`
/// (ordered by `at`, then by arrival).
struct Due {
    at: Instant,
    seq: u64,
    round: Round,
    a: Announcer,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    /// Reversed: the earliest is the greatest, on top of the heap.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Sends `a`'s rounds [`Round::All`] now and [`Round::Again`]
/// [`REPEAT_AFTER`] later, then closes its socket: on one background
/// thread shared by every endpoint (started on first use; it never enters
/// a namespace, the socket is bound already), so that no request waits
/// for the bridge to deliver the broadcasts to every container.
pub fn flood(a: Announcer) {
    static QUEUE: OnceLock<Option<mpsc::Sender<Announcer>>> = OnceLock::new();
    let tx = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Announcer>();
        let started = std::thread::Builder::new().name("berth-announce".into()).spawn(move || flood_loop(rx));
        match started {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!("no thread for address announcements ({e}): only the host is told of a new endpoint's addresses");
                None
            }
        }
    });
    if let Some(tx) = tx {
        let _ = tx.send(a);
    }
}

fn flood_loop(rx: mpsc::Receiver<Announcer>) {
    let mut queue = std::collections::BinaryHeap::<Due>::new();
    let mut seq = 0u64;
    loop {
        let next = match queue.peek() {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d.at.saturating_duration_since(Instant::now())),
        };
        match next {
            Ok(a) => {
                seq += 1;
                queue.push(Due { at: Instant::now(), seq, round: Round::All, a });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every sender gone (never, the sender is static): finish.
            Err(mpsc::RecvTimeoutError::Disconnected) if queue.is_empty() => return,
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(queue.peek().map(|d| d.at.saturating_duration_since(Instant::now())).unwrap_or_default()),
        }
        let now = Instant::now();
        while queue.peek().is_some_and(|d| d.at <= now) {
            let mut d = queue.pop().expect("peeked");
            d.a.send_logged(d.round);
            if d.round == Round::All {
                d.round = Round::Again;
                d.at = now + REPEAT_AFTER;
                queue.push(d);
            }
        }
    }
}

/// The state of bridge port `name` of the calling thread's namespace
/// (`ip -d link show NAME` says `state forwarding`...), None if it is not
/// a bridge port. A port that was just brought up is only enabled by the
/// bridge once the kernel's link watch has seen its carrier,
/// asynchronously: until then it is disabled and drops every frame it
/// receives.
pub fn port_state(s: &mut RtSocket, name: &str) -> Result<Option<BridgePortState>> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    let Some(RouteNetlinkMessage::NewLink(l)) = s.dump_one(RouteNetlinkMessage::GetLink(m), || format!("ip -d link show {name}"))? else {
        return Ok(None);
    };
    for a in &l.attributes {
        let LinkAttribute::LinkInfo(infos) = a else { continue };
        for i in infos {
            let LinkInfo::PortData(InfoPortData::BridgePort(p)) = i else { continue };
            for x in p {
                if let InfoBridgePort::State(st) = x {
                    return Ok(Some(*st));
                }
            }
        }
    }
    Ok(None)
}

/// Waits (polling, up to `limit`) while bridge port `name` is disabled.
/// Whether it forwards then. A port the spanning tree holds (listening,
/// learning, blocking) is not waited for: that takes seconds.
pub fn wait_port_forwarding(s: &mut RtSocket, name: &str, limit: Duration) -> Result<bool> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(20);
    loop {
        match port_state(s, name)? {
            Some(BridgePortState::Forwarding) => return Ok(true),
            Some(BridgePortState::Disabled) if Instant::now() < deadline => {}
            _ => return Ok(false),
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [0x02, 0x42, 0x0a, 0x4d, 0x00, 0x05];
    const BRIDGE: Mac = [0x02, 0x42, 0x00, 0x77, 0x00, 0x01];

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn gratuitous_arp_layout() {
        let f = gratuitous_arp(BROADCAST, MAC, Ipv4Addr::new(10, 77, 0, 5));
        let want = hex(
            "ffffffffffff 02420a4d0005 0806
             0001 0800 06 04 0001
             02420a4d0005 0a4d0005
             000000000000 0a4d0005",
        );
        assert_eq!(f.to_vec(), want);
        assert_eq!(f.len(), ARP_FRAME_LEN);
        // To one neighbour: only the Ethernet destination differs.
        let to = gratuitous_arp(BRIDGE, MAC, Ipv4Addr::new(10, 77, 0, 5));
        assert_eq!(to[..6], BRIDGE);
        assert_eq!(to[6..], want[6..]);
    }

    #[test]
    fn neighbour_advertisement_layout() {
        let ip: Ipv6Addr = "fd00:77::5".parse().unwrap();
        let f = unsolicited_na(ALL_NODES_MAC, MAC, ip);
        // The checksum (0x4f12) was computed independently (a few lines of
        // Python over the pseudo-header and the message below); the kernel,
        // which drops NAs with a wrong one, accepts these (tests/announce.rs).
        let want = hex(
            "333300000001 02420a4d0005 86dd
             60000000 0020 3a ff
             fd000077000000000000000000000005
             ff020000000000000000000000000001
             88 00 4f12 20000000
             fd000077000000000000000000000005
             02 01 02420a4d0005",
        );
        assert_eq!(f.to_vec(), want, "{:02x?}", &f[54..58]);
        assert_eq!(f.len(), NA_FRAME_LEN);
        // To one neighbour: the same packet (to ff02::1), only the
        // Ethernet destination differs.
        let to = unsolicited_na(BRIDGE, MAC, ip);
        assert_eq!(to[..6], BRIDGE);
        assert_eq!(to[6..], want[6..]);
    }

    #[test]
    fn checksum_verifies() {
        // Summing a message with its checksum in place gives all ones.
        for ip in ["fd00:77::5", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::1"] {
            let ip: Ipv6Addr = ip.parse().unwrap();
            for mac in [MAC, [0xff; 6], [0; 6]] {
                let f = unsolicited_na(ALL_NODES_MAC, mac, ip);
                assert_eq!(icmpv6_checksum(&ip, &ALL_NODES, &f[54..]), 0, "{ip} {mac:02x?}");
            }
        }
        // RFC 1071's example sum, for the folding: 0001 f203 f4f5 f6f7 → ddf2 before the complement.
        let z = Ipv6Addr::UNSPECIFIED;
        // The pseudo-header adds the length (8) and 58 (0x3a).
        assert_eq!(!icmpv6_checksum(&z, &z, &hex("0001f203f4f5f6f7")), 0xddf2 + 8 + 0x3a);
        // An odd length is padded with a zero octet.
        assert_eq!(!icmpv6_checksum(&z, &z, &hex("01")), 0x0100 + 1 + 0x3a);
    }

    #[test]
    fn frames_follow_the_addresses() {
        let addrs: Vec<IpAddr> = vec!["10.77.0.5".parse().unwrap(), "fd00:77::5".parse().unwrap()];
        let f = frames(None, MAC, &addrs);
        assert_eq!(f.iter().map(Vec::len).collect::<Vec<_>>(), vec![ARP_FRAME_LEN, NA_FRAME_LEN]);
        assert_eq!((&f[0][..6], &f[1][..6]), (&BROADCAST[..], &ALL_NODES_MAC[..]));
        let f = frames(Some(BRIDGE), MAC, &addrs);
        assert_eq!((&f[0][..6], &f[1][..6]), (&BRIDGE[..], &BRIDGE[..]));
        assert!(frames(None, MAC, &[]).is_empty());
    }

    #[test]
    fn rounds() {
        let addrs: Vec<IpAddr> = vec!["10.77.0.5".parse().unwrap(), "fd00:77::5".parse().unwrap()];
        let dsts = |r, b| round_frames(r, MAC, &addrs, b).iter().map(|f| <Mac>::try_from(&f[..6]).unwrap()).collect::<Vec<_>>();
        // A bridge port: the bridge first; everyone; then ARP to everyone
        // and the NA to the bridge only.
        assert_eq!(dsts(Round::Bridge, Some(BRIDGE)), vec![BRIDGE, BRIDGE]);
        assert_eq!(dsts(Round::All, Some(BRIDGE)), vec![BROADCAST, ALL_NODES_MAC]);
        assert_eq!(dsts(Round::Again, Some(BRIDGE)), vec![BROADCAST, BRIDGE]);
        // Not a bridge port (macvlan): everyone, twice.
        assert!(dsts(Round::Bridge, None).is_empty());
        assert_eq!(dsts(Round::All, None), vec![BROADCAST, ALL_NODES_MAC]);
        assert_eq!(dsts(Round::Again, None), vec![BROADCAST, ALL_NODES_MAC]);
        // The same packets whatever the destination.
        let all = round_frames(Round::All, MAC, &addrs, None);
        let bridge = round_frames(Round::Bridge, MAC, &addrs, Some(BRIDGE));
        assert!(all.iter().zip(&bridge).all(|(a, b)| a[6..] == b[6..]));
    }

    #[test]
    fn queue_order() {
        let t = Instant::now();
        let open = || Announcer { fd: std::fs::File::open("/dev/null").unwrap().into(), ifname: String::new(), mac: MAC, addrs: vec![], bridge: None };
        let mut q = std::collections::BinaryHeap::new();
        for (at, seq) in [(5, 1), (0, 3), (5, 0), (1, 2)] {
            q.push(Due { at: t + Duration::from_millis(at), seq, round: Round::All, a: open() });
        }
        let order: Vec<u64> = std::iter::from_fn(|| q.pop().map(|d| d.seq)).collect();
        assert_eq!(order, vec![3, 2, 0, 1], "earliest first, then in arrival order");
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:42:0A:4d:00:05"), Some(MAC));
        for bad in ["", "02:42:0a:4d:00", "02:42:0a:4d:00:05:06", "2:42:0a:4d:00:05", "02:42:0a:4d:00:zz"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
