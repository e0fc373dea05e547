//! The Linux implementation of the kernel seam.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_core::model::PortMapping;
use berth_core::nft::{render_reset_script, Element};
use berth_core::plan::{BridgePlan, EndpointPlan, NetworkPlan, OverlayPlan, PortPlan, TunnelPeers, TunnelPlan, OWNER_ALIAS};
use ipnet::IpNet;

use super::{FirewallOps, HostOps, LinkOps, NsRef, OwnedKind, OwnedLink, Underlay};
use crate::announce::{self, Announcer};
use crate::bpf::{self, PortEntry, SocketNat};
use crate::error::{LinuxError, Result};
use crate::netlink::{self, RtSocket};
use crate::netns::Netns;
use crate::{nft, sysctl};

/// The real kernel. Host-side netlink sockets are pooled so concurrent
/// requests do not wait on one another; each in-namespace socket is opened
/// by a short-lived thread (see `crate::netns`).
pub struct LinuxKernel {
    pool: Mutex<Vec<RtSocket>>,
    reaper: Reaper,
    /// Bridge name → ifindex and MAC (checked on use: a stale entry is
    /// refreshed).
    bridges: Mutex<HashMap<String, (u32, Option<announce::Mac>)>>,
    /// Socket translation, when on. Any error turns it off for good (the
    /// programs detach when it is dropped): the nft rules alone are always
    /// correct, a translation map out of step with them would not be.
    socket_nat: Arc<Mutex<Option<SocketNat>>>,
}

impl LinuxKernel {
    /// `socket_translation`: attach the connect()/getpeername() programs
    /// for this namespace; where the kernel refuses, say why and go on
    /// with nft alone.
    pub fn new(socket_translation: bool) -> LinuxKernel {
        let socket_nat = if socket_translation {
            match SocketNat::attach() {
                Ok(n) => {
                    tracing::info!("socket translation on: the host's TCP connections to published ports are translated in connect()");
                    Some(n)
                }
                Err(e) => {
                    tracing::warn!("socket translation off ({e}); published ports work through the nft rules alone");
                    None
                }
            }
        } else {
            None
        };
        let socket_nat = Arc::new(Mutex::new(socket_nat));
        if socket_nat.lock().unwrap().is_some() {
            // A port published on every address is translated for every
            // address of the namespace (both families), as the nft rules'
            // `fib daddr type local` does: the maps follow the addresses
            // as they change.
            let nat = socket_nat.clone();
            let watch = netlink::watch_addresses(move |addrs| with_nat(&nat, |n| n.set_local(&addrs)));
            if let Err(e) = watch {
                tracing::warn!("cannot follow host addresses ({e}): only 127.0.0.0/8 and ::1 are translated");
            }
        }
        LinuxKernel { pool: Mutex::new(Vec::new()), reaper: Reaper::start(), bridges: Default::default(), socket_nat }
    }
}

/// Runs `f` on the translation maps if translation is on; turns it off if
/// `f` fails.
fn with_nat(nat: &Mutex<Option<SocketNat>>, f: impl FnOnce(&mut SocketNat) -> Result<()>) {
    let mut nat = nat.lock().unwrap();
    if let Some(n) = nat.as_mut() {
        if let Err(e) = f(n) {
            tracing::warn!("socket translation off after an error ({e}); published ports work through the nft rules alone");
            *nat = None;
        }
    }
}

fn port_entries(elements: &BTreeSet<Element>) -> Vec<PortEntry> {
    elements.iter().filter_map(bpf::port_entry).collect()
}

/// A thread that deletes links handed to it, one after the other.
struct Reaper {
    tx: Mutex<std::sync::mpsc::Sender<String>>,
    pending: std::sync::Arc<(Mutex<usize>, std::sync::Condvar)>,
}

impl Reaper {
    fn start() -> Reaper {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let pending = std::sync::Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
        let p = pending.clone();
        std::thread::Builder::new()
            .name("berth-reaper".into())
            .spawn(move || {
                let mut sock = RtSocket::open().ok();
                for name in rx {
                    if let Some(s) = sock.as_mut() {
                        if let Err(e) = ignore_missing(netlink::delete_link(s, &name)) {
                            tracing::warn!("ip link del {name}: {e}");
                            sock = RtSocket::open().ok();
                        }
                    }
                    let (m, cv) = &*p;
                    *m.lock().unwrap() -= 1;
                    cv.notify_all();
                }
            })
            .expect("reaper thread");
        Reaper { tx: Mutex::new(tx), pending }
    }

    fn push(&self, name: &str) {
        *self.pending.0.lock().unwrap() += 1;
        if self.tx.lock().unwrap().send(name.to_string()).is_err() {
            *self.pending.0.lock().unwrap() -= 1;
        }
    }

    fn settle(&self) {
        let (m, cv) = &*self.pending;
        let mut n = m.lock().unwrap();
        while *n > 0 {
            n = cv.wait(n).unwrap();
        }
    }
}

impl LinuxKernel {
    fn with_sock<T>(&self, f: impl FnOnce(&mut RtSocket) -> Result<T>) -> Result<T> {
        let popped = self.pool.lock().unwrap().pop();
        let mut s = match popped {
            Some(s) => s,
            None => RtSocket::open()?,
        };
        let r = f(&mut s);
        // A socket that saw an error may hold stray replies: drop it.
        if r.is_ok() {
            self.pool.lock().unwrap().push(s);
        }
        r
    }
}

impl LinuxKernel {
    /// The bridge's ifindex and MAC. Cached: a veth request naming a
    /// vanished index fails with ENODEV and the next call looks the name
    /// up again.
    fn bridge_index(&self, s: &mut RtSocket, name: &str) -> Result<(u32, Option<announce::Mac>)> {
        if let Some(i) = self.bridges.lock().unwrap().get(name) {
            return Ok(*i);
        }
        let br = netlink::link_index(s, name)?
            .ok_or_else(|| LinuxError::kernel(format!("ip link show {name}"), std::io::Error::from_raw_os_error(libc::ENODEV)))?;
        let entry = (br.index, br.mac.as_deref().and_then(announce::parse_mac));
        self.bridges.lock().unwrap().insert(name.to_string(), entry);
        Ok(entry)
    }

    /// The container side runs on its own thread (it enters the namespace),
    /// started first so that its set-up overlaps the host side's work: `lo`
    /// while the veth pair is created, the addresses and routes while the
    /// host end comes up. If the host side fails after that, deleting the
    /// pair takes the container's end and what was set on it along.
    ///
    /// Once both ends are up, the endpoint's addresses are announced (see
    /// `crate::announce`): the container side waits for its IPv6
    /// addresses to be usable (`wait_ipv6_local`), opens the socket in its
    /// namespace and hands it back, and this thread sends on it, to the
    /// bridge, as soon as the bridge forwards from the port (frames sent
    /// earlier are dropped); the broadcasts follow from the background.
    /// A veth pair for a runtime to take: `ip link add HOST address MAC
    /// mtu MTU master BRIDGE type veth peer name bthcX address MAC2; ip
    /// link set HOST up`. The runtime moves `bthcX` into the container,
    /// renames it and configures it (`ip link set bthcX netns NS name
    /// eth0; ip -n NS addr add ...`).
    fn add_handoff_endpoint(&self, plan: &EndpointPlan) -> Result<()> {
        let PortPlan::BridgePort { host_mac, .. } = &plan.port else {
            return Err(LinuxError::kernel(format!("ip link add {} type veth", plan.host_ifname), std::io::Error::other("a runtime can only take veth endpoints (not macvlan)")));
        };
        let bridge = plan.bridge().to_string();
        let peer = berth_core::plan::handoff_name(&plan.host_ifname);
        let r = self.with_sock(|s| {
            let (br, _) = self.bridge_index(s, &bridge)?;
            netlink::add_veth_into_netns(s, &plan.host_ifname, host_mac, &peer, &plan.mac, None, plan.mtu, br)?;
            sysctl::disable_ipv6(&plan.host_ifname).and_then(|()| netlink::set_port_up(s, &plan.host_ifname)).inspect_err(|_| {
                let _ = netlink::delete_link(s, &plan.host_ifname);
            })
        });
        if r.is_err() {
            self.bridges.lock().unwrap().remove(&bridge);
        }
        r
    }

    fn try_add_endpoint(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<()> {
        if let NsRef::Handoff = ns {
            return self.add_handoff_endpoint(plan);
        }
        let netns = Netns::open(&ns.path())?;
        let (go_tx, go_rx) = std::sync::mpsc::channel::<bool>();
        let bridge = plan.bridge().to_string();
        let PortPlan::BridgePort { host_mac, .. } = &plan.port else { return self.add_macvlan_endpoint(&netns, plan) };
        let mut bridge_mac = None;
        let (host, inner) = std::thread::scope(|scope| {
            let inner = netns.spawn_in(scope, move || -> Result<Option<Announcer>> {
                let mut s = RtSocket::open()?;
                // lo first: this overlaps the host side's veth creation.
                if let Some(lo) = netlink::link_index(&mut s, "lo")? {
                    if !lo.up {
                        netlink::set_link_up(&mut s, lo.index, None)?;
                    }
                }
                if !go_rx.recv().unwrap_or(false) {
                    return Ok(None);
                }
                let eth = netlink::link_index(&mut s, &plan.ifname)?.ok_or_else(|| {
                    LinuxError::kernel(format!("ip link show {}", plan.ifname), std::io::Error::from_raw_os_error(libc::ENODEV))
                })?;
                for a in &plan.addresses {
                    netlink::add_address(&mut s, eth.index, *a)?;
                }
                netlink::set_up_without_ipv6_ll(&mut s, &plan.ifname)?;
                for gw in &plan.default_gateways {
                    netlink::add_default_route(&mut s, *gw)?;
                }
                wait_ipv6_local(&mut s, plan);
                Ok(open_announcer(&eth, plan))
            });
            let host = self.with_sock(|s| {
                let (br, mac) = self.bridge_index(s, &bridge)?;
                bridge_mac = mac;
                netlink::add_veth_into_netns(s, &plan.host_ifname, host_mac, &plan.ifname, &plan.mac, Some(netns.fd()), plan.mtu, br)?;
                // The container's end exists: its side can be configured
                // while this one brings the port up.
                let _ = go_tx.send(true);
                sysctl::disable_ipv6(&plan.host_ifname)
                    .and_then(|()| netlink::set_port_up(s, &plan.host_ifname))
                    .inspect_err(|_| {
                        let _ = netlink::delete_link(s, &plan.host_ifname);
                    })
            });
            // Not sent yet if the veth pair could not be made (a second send
            // after the one above is never received).
            let _ = go_tx.send(host.is_ok());
            let inner = inner.join().unwrap_or_else(|_| Err(LinuxError::kernel("namespace thread", std::io::Error::other("panicked"))));
            (host, inner)
        });
        if host.is_err() {
            self.bridges.lock().unwrap().remove(&bridge);
        }
        host?;
        let announcer = match inner {
            Ok(a) => a,
            Err(e) => {
                // Leave nothing half-made behind.
                let _ = self.delete_link(&plan.host_ifname);
                return Err(e);
            }
        };
        if let Some(a) = announcer {
            // The bridge's own MAC is the ports' (berth's bridges); an
            // adopted bridge's was read with its index.
            let to = bridge_mac.or_else(|| announce::parse_mac(host_mac));
            self.announce_on_port(&plan.host_ifname, to, a);
        }
        Ok(())
    }

    /// Once bridge port `host_ifname` forwards (the kernel enables it
    /// shortly after both ends are up), sends `a`'s announcements to the
    /// bridge (`bridge_mac`: the host, one reception), then hands `a` to
    /// the background for the broadcasts (every container of the network
    /// receives those: no request waits for that). Never fails: a port
    /// that does not forward within the limit (or that the spanning tree
    /// holds) gets the background's only.
    fn announce_on_port(&self, host_ifname: &str, bridge_mac: Option<announce::Mac>, a: Announcer) {
        let a = a.on_bridge(bridge_mac);
        match self.with_sock(|s| announce::wait_port_forwarding(s, host_ifname, PORT_FORWARDING_LIMIT)) {
            Ok(true) => a.send_logged(announce::Round::Bridge),
            Ok(false) => tracing::debug!("{host_ifname}: not forwarding (yet); addresses announced later"),
            Err(e) => tracing::debug!("{host_ifname}: port state: {e}; addresses announced later"),
        }
        announce::flood(a);
    }

    fn ensure_bridge(&self, plan: &BridgePlan) -> Result<()> {
        self.with_sock(|s| {
            let link = match netlink::link_index(s, &plan.name)? {
                Some(l) => l,
                None if plan.owned => {
                    netlink::add_bridge(s, &plan.name, &plan.mac, plan.mtu, OWNER_ALIAS)?;
                    // Created down: no DAD on it, then up (below).
                    sysctl::no_dad(&plan.name)?;
                    netlink::link_index(s, &plan.name)?.expect("bridge just created")
                }
                None => {
                    return Err(LinuxError::kernel(
                        format!("ip link show {}", plan.name),
                        std::io::Error::other("bridge does not exist and is not berth's to create"),
                    ))
                }
            };
            if plan.owned {
                let have = netlink::list_addresses(s)?;
                for a in &plan.addresses {
                    if !have.iter().any(|h| h.index == link.index && h.addr == *a) {
                        netlink::add_address(s, link.index, *a)?;
                    }
                }
                if !link.up || link.mtu != plan.mtu {
                    netlink::set_link_up(s, link.index, Some(plan.mtu))?;
                }
            }
            Ok(())
        })
    }
}

/// Overlay networks: the bridge, its proxy ARP, the VXLAN device.
impl LinuxKernel {
    /// The bridge as on a bridge network, answering ARP for what is routed
    /// into the tunnel (see `sysctl::proxy_arp`), then the tunnel device
    /// once the host knows its tunnel address.
    fn ensure_overlay(&self, plan: &OverlayPlan) -> Result<()> {
        self.ensure_bridge(&plan.bridge)?;
        sysctl::proxy_arp(&plan.bridge.name)?;
        match &plan.tunnel {
            Some(t) => self.ensure_tunnel(t),
            None => Ok(()),
        }
    }

    /// Makes the VXLAN device `t.name` what `t` says, changing only what
    /// differs: a device with another VNI, port, local address, underlay
    /// device (or with learning or proxy on) is deleted and made again,
    /// since the kernel cannot change those on a live device; a wrong MTU,
    /// MAC, owner mark or address is fixed in place. Recreating the device
    /// drops its entries towards other hosts: the caller syncs them after
    /// this (`sync_tunnel_peers`).
    fn ensure_tunnel(&self, t: &TunnelPlan) -> Result<()> {
        self.with_sock(|s| {
            let dev = netlink::link_index(s, &t.dev)?.ok_or_else(|| LinuxError::NoUnderlay(t.dev.clone()))?;
            let spec = netlink::VxlanSpec { name: &t.name, mac: &t.mac, mtu: t.mtu, vni: t.vni, port: t.port, local: t.local, link: dev.index };
            let existing = match netlink::vxlan_link(s, &t.name)? {
                Some((l, Some(cfg))) if cfg == spec.config() => Some(l),
                Some((l, cfg)) => {
                    let marked = l.alias.as_deref() == Some(OWNER_ALIAS);
                    if !marked {
                        return Err(LinuxError::NotOurs { name: t.name.clone(), kind: l.kind.unwrap_or_else(|| "unknown".into()) });
                    }
                    tracing::info!("tunnel device {}: recreating it ({:?} is not {:?})", t.name, cfg, spec.config());
                    netlink::delete_link(s, &t.name)?;
                    None
                }
                None => None,
            };
            let link = match existing {
                Some(l) => l,
                None => {
                    netlink::add_vxlan(s, &spec, OWNER_ALIAS)?;
                    netlink::link_index(s, &t.name)?.ok_or_else(|| LinuxError::NoTunnel(t.name.clone()))?
                }
            };
            let mac = (link.mac.as_deref() != Some(t.mac.to_ascii_lowercase().as_str())).then_some(t.mac.as_str());
            let mtu = (link.mtu != t.mtu).then_some(t.mtu);
            let alias = (link.alias.as_deref() != Some(OWNER_ALIAS)).then_some(OWNER_ALIAS);
            netlink::set_link_attrs(s, link.index, mac, mtu, alias)?;
            // Routed IPv4 only: no IPv6 link-local address, no router
            // solicitations or MLD reports sent to other hosts.
            sysctl::ensure_ipv6_disabled(&t.name)?;
            ensure_only_address(s, link.index, t.host_addr)?;
            if !link.up {
                netlink::set_link_up(s, link.index, None)?;
            }
            Ok(())
        })
    }

    /// A socket of the calling thread's namespace for an overlay's tunnel
    /// entries, in strict mode so its dumps are of one device only. Its
    /// own: a pooled socket stays non-strict for everything else.
    fn tunnel_sock(tunnel: &str) -> Result<(RtSocket, u32)> {
        let mut s = RtSocket::open()?;
        if let Err(e) = s.set_strict(true) {
            tracing::debug!("{e}: tunnel entries are filtered here, not by the kernel");
        }
        match netlink::link_index(&mut s, tunnel)? {
            Some(l) if l.kind.as_deref() == Some("vxlan") => Ok((s, l.index)),
            _ => Err(LinuxError::NoTunnel(tunnel.to_string())),
        }
    }
}

/// `ip addr replace HOST/32 dev DEV` and `ip addr del` of every other
/// IPv4 address on it (none at all when `host` is None): a tunnel device
/// carries exactly its host's overlay address.
fn ensure_only_address(s: &mut RtSocket, index: u32, host: Option<IpAddr>) -> Result<()> {
    let want = host.map(IpNet::from);
    let have: Vec<IpNet> = netlink::list_addresses(s)?.into_iter().filter(|a| a.index == index).map(|a| a.addr).collect();
    for a in have.iter().filter(|a| a.addr().is_ipv4() && Some(**a) != want) {
        match netlink::delete_address(s, index, *a) {
            // Gone meanwhile: as wanted.
            Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => {}
            r => r?,
        }
    }
    match want {
        Some(w) if !have.contains(&w) => netlink::add_address(s, index, w),
        _ => Ok(()),
    }
}

/// How long an attach waits for its bridge port to forward before it
/// announces the endpoint's addresses (typically well under a millisecond).
const PORT_FORWARDING_LIMIT: std::time::Duration = std::time::Duration::from_millis(20);

/// How long an attach waits for its IPv6 addresses to be usable.
const IPV6_LOCAL_LIMIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Waits (polling, up to [`IPV6_LOCAL_LIMIT`]) until every IPv6 address of
/// the endpoint has its local route in the calling thread's namespace
/// (`ip -6 route get ADDR` says `local`). The kernel inserts it from a
/// work item after the address is added, even with `nodad` (usually
/// within microseconds, milliseconds under load); until then packets to
/// the address are dropped, so an endpoint announced or reported up
/// before would miss its first packets (a lost ping, a SYN retried after
/// a second). IPv4 addresses are usable as soon as they are added.
fn wait_ipv6_local(s: &mut RtSocket, plan: &EndpointPlan) {
    use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
    let deadline = std::time::Instant::now() + IPV6_LOCAL_LIMIT;
    for a in plan.addresses.iter().filter_map(|a| match a.addr() {
        IpAddr::V6(v) => Some(v),
        IpAddr::V4(_) => None,
    }) {
        let mut pause = std::time::Duration::from_micros(20);
        loop {
            let mut q = RouteMessage::default();
            q.header.address_family = AddressFamily::Inet6;
            q.header.destination_prefix_length = 128;
            q.attributes.push(RouteAttribute::Destination(RouteAddress::Inet6(a)));
            let local = match s.dump_one(RouteNetlinkMessage::GetRoute(q), || format!("ip -6 route get {a}")) {
                Ok(Some(RouteNetlinkMessage::NewRoute(r))) => r.header.kind == RouteType::Local,
                Ok(_) => false,
                Err(e) => {
                    tracing::debug!("{}: {e}", plan.ifname);
                    return;
                }
            };
            if local {
                break;
            }
            if std::time::Instant::now() >= deadline {
                tracing::debug!("{}: {a} not usable after {IPV6_LOCAL_LIMIT:?}", plan.ifname);
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(1));
        }
    }
}

/// The announcer of `eth`, the endpoint's interface, opened in the calling
/// thread's namespace; None (logged) if it cannot be made, which never
/// fails the endpoint.
fn open_announcer(eth: &netlink::LinkInfo, plan: &EndpointPlan) -> Option<Announcer> {
    let mac = eth.mac.as_deref().unwrap_or(&plan.mac);
    match Announcer::open(eth.index, &plan.ifname, mac, &plan.addresses) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("{}: cannot announce its addresses ({e}); neighbours may keep an old MAC for a while", plan.ifname);
            None
        }
    }
}

/// Macvlan endpoints: the container's interface is a child of the parent.
impl LinuxKernel {
    /// `ip link add link PARENT name IFNAME netns NS address MAC mtu M type
    /// macvlan mode bridge`, then inside the namespace what the veth path
    /// does there: `lo` up, the addresses (IPv6 ones `nodad`), the link up
    /// (without an IPv6 link-local address when the endpoint has no IPv6),
    /// the default routes. If the inside fails, the child is deleted again.
    /// Then the addresses are announced from the child (up at once: it
    /// has its parent's carrier), from the background (`announce::flood`:
    /// the siblings of a macvlan child receive its broadcasts in its
    /// sender's context, as a bridge's ports do).
    fn add_macvlan_endpoint(&self, netns: &Netns, plan: &EndpointPlan) -> Result<()> {
        let parent = plan.bridge();
        self.with_sock(|s| {
            let p = netlink::link_index(s, parent)?.ok_or_else(|| LinuxError::NoParent(parent.to_string()))?;
            match netlink::add_macvlan_into_netns(s, &plan.ifname, p.index, netns.fd(), &plan.mac, plan.mtu) {
                // The parent went away since it was looked up.
                Err(e) if e.errno() == Some(libc::ENODEV) => Err(LinuxError::NoParent(parent.to_string())),
                r => r,
            }
        })?;
        let inside = netns.run(|| -> Result<()> {
            let mut s = RtSocket::open()?;
            match configure_inside(&mut s, plan) {
                Ok(eth) => {
                    wait_ipv6_local(&mut s, plan);
                    if let Some(a) = open_announcer(&eth, plan) {
                        announce::flood(a);
                    }
                    Ok(())
                }
                Err(e) => {
                    let _ = netlink::delete_link(&mut s, &plan.ifname);
                    Err(e)
                }
            }
        });
        inside.and_then(|r| r)
    }
}

/// The container's side of a macvlan endpoint, on a socket of its
/// namespace. The interface, as it was found.
fn configure_inside(s: &mut RtSocket, plan: &EndpointPlan) -> Result<netlink::LinkInfo> {
    if let Some(lo) = netlink::link_index(s, "lo")? {
        if !lo.up {
            netlink::set_link_up(s, lo.index, None)?;
        }
    }
    let eth = netlink::link_index(s, &plan.ifname)?
        .ok_or_else(|| LinuxError::kernel(format!("ip link show {}", plan.ifname), std::io::Error::from_raw_os_error(libc::ENODEV)))?;
    for a in &plan.addresses {
        netlink::add_address(s, eth.index, *a)?;
    }
    if plan.has_ipv6() {
        netlink::set_link_up(s, eth.index, None)?;
    } else {
        // A macvlan child is operationally up as it opens: the mode
        // must be set first (see `netlink::set_no_ipv6_ll`).
        netlink::set_no_ipv6_ll(s, &plan.ifname)?;
        netlink::set_up_without_ipv6_ll(s, &plan.ifname)?;
    }
    for gw in &plan.default_gateways {
        netlink::add_default_route(s, *gw)?;
    }
    Ok(eth)
}

fn ignore_missing(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if matches!(e.errno(), Some(libc::ENODEV) | Some(libc::ENOENT)) => Ok(()),
        r => r,
    }
}

impl LinkOps for LinuxKernel {
    fn ensure_network(&self, plan: &NetworkPlan) -> Result<()> {
        match plan {
            NetworkPlan::Bridge(b) => self.ensure_bridge(b),
            NetworkPlan::Overlay(o) => self.ensure_overlay(o),
            // Nothing on the host: each endpoint is a child of the parent.
            NetworkPlan::Macvlan { .. } => Ok(()),
        }
    }

    fn link_addresses(&self, name: &str) -> Result<Option<Vec<IpNet>>> {
        self.with_sock(|s| {
            let Some(l) = netlink::link_index(s, name)? else { return Ok(None) };
            let addrs = netlink::list_addresses(s)?;
            // Link-local IPv6 addresses are the kernel's, not a network's.
            let ours = |a: &IpNet| match a.addr() {
                IpAddr::V4(_) => true,
                IpAddr::V6(v) => (v.segments()[0] & 0xffc0) != 0xfe80,
            };
            Ok(Some(addrs.into_iter().filter(|a| a.index == l.index && ours(&a.addr)).map(|a| a.addr).collect()))
        })
    }

    fn link_owned(&self, name: &str) -> Result<Option<bool>> {
        self.with_sock(|s| Ok(netlink::link_index(s, name)?.map(|l| l.alias.as_deref() == Some(OWNER_ALIAS))))
    }

    fn add_endpoint(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<()> {
        match self.try_add_endpoint(ns, plan) {
            // The namespace may still hold the interface of an endpoint whose
            // deletion is queued (detach, then attach again): finish those, retry.
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                self.settle();
                self.try_add_endpoint(ns, plan)
            }
            r => r,
        }
    }

    fn endpoint_ok(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<bool> {
        // A macvlan endpoint has no host side: only the inside is checked.
        let host_ok = plan.in_container_only()
            || self.with_sock(|s| {
                let Some(v) = netlink::link_index(s, &plan.host_ifname)? else { return Ok(false) };
                let Some(br) = netlink::link_index(s, plan.bridge())? else { return Ok(false) };
                Ok(v.up && v.master == Some(br.index))
            })?;
        if !host_ok {
            return Ok(false);
        }
        if let NsRef::Handoff = ns {
            // The inside is the runtime's.
            return Ok(true);
        }
        let Ok(netns) = Netns::open(&ns.path()) else { return Ok(false) };
        netns.run(|| -> Result<bool> {
            let mut s = RtSocket::open()?;
            let Some(eth) = netlink::link_index(&mut s, &plan.ifname)? else { return Ok(false) };
            let addrs = netlink::list_addresses(&mut s)?;
            Ok(eth.up && plan.addresses.iter().all(|want| addrs.iter().any(|a| a.index == eth.index && a.addr == *want)))
        })?
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        self.bridges.lock().unwrap().remove(name);
        self.with_sock(|s| ignore_missing(netlink::delete_link(s, name)))
    }

    fn remove_endpoint(&self, host_ifname: &str) -> Result<()> {
        self.with_sock(|s| ignore_missing(netlink::set_link_down_by_name(s, host_ifname)))?;
        self.reaper.push(host_ifname);
        Ok(())
    }

    fn settle(&self) {
        self.reaper.settle();
    }

    fn owned_links(&self) -> Result<Vec<OwnedLink>> {
        self.with_sock(|s| {
            Ok(netlink::list_links(s)?
                .into_iter()
                .filter_map(|l| {
                    let marked = l.alias.as_deref() == Some(OWNER_ALIAS);
                    let kind = match l.kind.as_deref() {
                        Some("bridge") if marked => OwnedKind::Bridge,
                        Some("vxlan") if marked => OwnedKind::Tunnel,
                        Some("veth") if l.name.starts_with("bthv") => OwnedKind::Veth,
                        _ => return None,
                    };
                    Some(OwnedLink { name: l.name, kind })
                })
                .collect())
        })
    }

    fn host_nets(&self, exclude_links: &[String]) -> Result<Vec<IpNet>> {
        self.with_sock(|s| {
            let links = netlink::list_links(s)?;
            let skip: Vec<u32> = links.iter().filter(|l| exclude_links.contains(&l.name)).map(|l| l.index).collect();
            let link_local = |a: &IpAddr| matches!(a, IpAddr::V6(v) if (v.segments()[0] & 0xffc0) == 0xfe80);
            let mut out: Vec<IpNet> = netlink::list_addresses(s)?
                .into_iter()
                .filter(|a| !skip.contains(&a.index) && !a.addr.addr().is_loopback() && !link_local(&a.addr.addr()))
                .map(|a| a.addr.trunc())
                .collect();
            for r in netlink::list_routes(s)? {
                let on_skipped = r.oif.is_some_and(|o| skip.contains(&o));
                let special = r.dst.addr().is_loopback() || r.dst.addr().is_multicast() || link_local(&r.dst.addr());
                if r.dst.prefix_len() > 0 && !on_skipped && !special && r.table != 255 {
                    out.push(r.dst);
                }
            }
            Ok(out)
        })
    }

    /// An address: the interface holding it (`ip -o addr show to ADDR`).
    /// A name: that interface and its first IPv4 address that is not
    /// link-local (169.254.0.0/16), as the kernel lists them (primary
    /// first). With its MTU, which the overlay's is derived from.
    fn underlay(&self, addr_or_name: &str) -> Result<Option<Underlay>> {
        self.with_sock(|s| {
            let addrs = netlink::list_addresses(s)?;
            let found = match addr_or_name.parse::<IpAddr>() {
                Ok(ip) => addrs.iter().find(|a| a.addr.addr() == ip).map(|a| (a.index, ip)),
                Err(_) => match netlink::link_index(s, addr_or_name)? {
                    None => None,
                    Some(l) => addrs
                        .iter()
                        .find(|a| a.index == l.index && matches!(a.addr.addr(), IpAddr::V4(v) if !v.is_link_local()))
                        .map(|a| (l.index, a.addr.addr())),
                },
            };
            let Some((index, addr)) = found else { return Ok(None) };
            Ok(netlink::link_by_index(s, index)?.map(|l| Underlay { dev: l.name, addr, mtu: l.mtu }))
        })
    }

    /// See `netlink::sync_peers`. Every host of an overlay calls this when
    /// a host joins or leaves; it reads the device's own entries only
    /// (dumps filtered by device, table and berth's route protocol), so its
    /// cost follows the number of hosts, never the host's other routes or
    /// neighbours.
    fn sync_tunnel_peers(&self, peers: &TunnelPeers) -> Result<()> {
        let (mut s, index) = Self::tunnel_sock(&peers.tunnel)?;
        netlink::sync_peers(&mut s, index, peers)
    }

    fn tunnel_peers(&self, tunnel: &str) -> Result<TunnelPeers> {
        let (mut s, index) = Self::tunnel_sock(tunnel)?;
        netlink::read_peers(&mut s, index, tunnel)
    }

    /// `ip -n NS link del IFNAME`, on a thread in the namespace. A namespace
    /// that is gone (its path no longer exists: the container has exited)
    /// took the interface along.
    fn remove_in_netns(&self, ns: &NsRef, ifname: &str) -> Result<()> {
        if let NsRef::Handoff = ns {
            return Ok(());
        }
        let path = ns.path();
        let netns = match Netns::open(&path) {
            Ok(n) => n,
            Err(_) if !path.exists() => return Ok(()),
            Err(e) => return Err(e),
        };
        netns.run(|| -> Result<()> {
            let mut s = RtSocket::open()?;
            ignore_missing(netlink::delete_link(&mut s, ifname))
        })?
    }

    fn check_netns(&self, path: &Path) -> Result<()> {
        let ns = Netns::open(path)?;
        // Never network the daemon's own (the host's) namespace as a container.
        if Netns::open(Path::new("/proc/self/ns/net")).and_then(|me| Ok(me.id()? == ns.id()?)).unwrap_or(false) {
            return Err(LinuxError::OwnNamespace(path.display().to_string()));
        }
        Ok(())
    }
}

impl FirewallOps for LinuxKernel {
    /// Translations are removed before the nft elements they mirror and
    /// added after them, so a failure at any point leaves no translation
    /// that nft lacks (a request rolled back comes here with add and del
    /// swapped).
    fn apply_elements(&self, del: &BTreeSet<Element>, add: &BTreeSet<Element>) -> Result<()> {
        with_nat(&self.socket_nat, |n| n.apply(&port_entries(del), &[]));
        nft::apply_elements(del, add)?;
        with_nat(&self.socket_nat, |n| n.apply(&[], &port_entries(add)));
        Ok(())
    }

    fn reset_table(&self, elements: &BTreeSet<Element>) -> Result<()> {
        let r = nft::cli::apply_script(&render_reset_script(elements));
        // After a failure the table is the old one or none: drop every
        // translation rather than guess (the nft rules alone are right).
        let want = if r.is_ok() { port_entries(elements) } else { Vec::new() };
        with_nat(&self.socket_nat, |n| n.replace(&want));
        r
    }

    fn socket_translation(&self) -> bool {
        self.socket_nat.lock().unwrap().is_some()
    }

    fn list_table(&self) -> Result<Option<String>> {
        nft::cli::list_table()
    }

    fn flush_conntrack(&self, mappings: &[PortMapping]) -> Result<()> {
        let ports = mappings.iter().map(|m| (m.container.proto.number(), m.host_port)).collect();
        crate::conntrack::delete_by_orig_dport(&ports, &crate::conntrack::Which::All)
    }

    fn forget_early_flows(&self, mappings: &[PortMapping]) -> Result<()> {
        if mappings.is_empty() {
            return Ok(());
        }
        let local = self.with_sock(|s| Ok(netlink::list_addresses(s)?.into_iter().map(|a| a.addr.addr()).collect()))?;
        let ports = mappings.iter().map(|m| (m.container.proto.number(), m.host_port)).collect();
        crate::conntrack::delete_by_orig_dport(&ports, &crate::conntrack::Which::UntranslatedTo(local))
    }
}

impl HostOps for LinuxKernel {
    fn sysctl(&self, key: &str, value: &str) -> Result<bool> {
        sysctl::write(key, value)
    }

    fn read_sysctl(&self, key: &str) -> Option<String> {
        sysctl::read(key).ok()
    }

    fn ra_interfaces(&self) -> Vec<String> {
        let Ok(links) = self.with_sock(netlink::list_links) else { return vec![] };
        links
            .into_iter()
            .filter(|l| l.name != "lo" && !l.name.starts_with("bthv") && l.alias.as_deref() != Some(OWNER_ALIAS))
            .filter(|l| sysctl::read(&format!("net/ipv6/conf/{}/accept_ra", l.name)).ok().as_deref() == Some("1"))
            .map(|l| l.name)
            .collect()
    }

    fn host_listeners(&self, udp: bool) -> Vec<(IpAddr, u16)> {
        crate::ports::host_listeners(udp)
    }

    fn port_bindable(&self, udp: bool, ip: Option<IpAddr>, port: u16) -> std::io::Result<()> {
        crate::ports::check_bindable(udp, ip, port)
    }

    fn ephemeral_range(&self) -> (u16, u16) {
        crate::ports::ephemeral_range()
    }
}
