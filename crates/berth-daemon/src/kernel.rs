//! The kernel, as the daemon sees it: one small trait. The Linux
//! implementation ([`LinuxKernel`]) is the only place the daemon touches the
//! kernel; tests of the request flow (validation, rollback, recovery) use the
//! recording [`crate::fake::FakeKernel`] and need no root.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_core::nft::{render_reset_script, Element};
use berth_core::plan::{BridgePlan, EndpointPlan, OWNER_ALIAS};
use berth_linux::bpf::{self, PortEntry, SocketNat};
use berth_linux::netlink::{self, RtSocket};
use berth_linux::netns::Netns;
use berth_linux::{nft, sysctl, LinuxError};
use ipnet::IpNet;

use crate::error::Result;

/// Where a container's network namespace is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsRef {
    /// A bind mount or /proc path given by a runtime (`berth attach --netns`).
    Path(PathBuf),
    /// The namespace of a running process (berth's own containers).
    Pid(u32),
}

impl NsRef {
    pub fn path(&self) -> PathBuf {
        match self {
            NsRef::Path(p) => p.clone(),
            NsRef::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }
}

/// A link berth owns: bridges marked with the owner alias, and veths whose
/// name berth generated (`bthv…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedLink {
    pub name: String,
    pub is_bridge: bool,
}

pub trait Kernel: Send + Sync + 'static {
    /// Creates the bridge when berth owns it and it is missing, then makes its
    /// addresses, MTU and state match.
    fn ensure_bridge(&self, plan: &BridgePlan) -> Result<()>;
    /// IPv4 addresses of an existing link (to adopt a user's bridge), None if absent.
    fn link_addresses(&self, name: &str) -> Result<Option<Vec<IpNet>>>;
    /// Whether a link exists and carries berth's owner mark.
    fn link_owned(&self, name: &str) -> Result<Option<bool>>;
    /// Creates the veth pair and configures the container side.
    fn add_endpoint(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<()>;
    /// True when the endpoint is fully in place.
    fn endpoint_ok(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<bool>;
    /// `ip link del NAME`; a missing link is not an error.
    fn delete_link(&self, name: &str) -> Result<()>;
    /// Cuts an endpoint off now (`ip link set NAME down`) and deletes its veth
    /// pair in the background: a deletion waits ~15 ms here for the kernel's
    /// RCU grace period, which a request need not wait for.
    fn remove_endpoint(&self, host_ifname: &str) -> Result<()>;
    /// Waits until background deletions are done.
    fn settle(&self);
    fn owned_links(&self) -> Result<Vec<OwnedLink>>;
    fn apply_elements(&self, del: &BTreeSet<Element>, add: &BTreeSet<Element>) -> Result<()>;
    /// Atomically replaces `inet berth` with the fixed rules and these elements.
    fn reset_table(&self, elements: &BTreeSet<Element>) -> Result<()>;
    fn list_table(&self) -> Result<Option<String>>;
    /// Host address blocks and non-default routes (to keep automatic subnets clear of).
    fn host_nets(&self, exclude_links: &[String]) -> Result<Vec<IpNet>>;
    fn sysctl(&self, key: &str, value: &str) -> Result<bool>;
    fn check_netns(&self, path: &Path) -> Result<()>;
    /// (address, port) of sockets host processes hold (TCP listeners or bound UDP).
    fn host_listeners(&self, udp: bool) -> Vec<(std::net::IpAddr, u16)>;
    /// Whether a host process could bind the port (Err: the kernel's reason).
    fn port_bindable(&self, udp: bool, ip: Option<std::net::IpAddr>, port: u16) -> std::io::Result<()>;
    /// The kernel's ephemeral port range (for random host ports).
    fn ephemeral_range(&self) -> (u16, u16);
    /// Forgets NAT state of removed mappings so no flow keeps using them.
    fn flush_conntrack(&self, mappings: &[berth_core::model::PortMapping]) -> Result<()>;
    /// Forgets flows that reached the host's own addresses on these
    /// (just published) ports before they were published, so that a UDP
    /// client that kept sending meanwhile reaches the container at once.
    fn forget_early_flows(&self, mappings: &[berth_core::model::PortMapping]) -> Result<()>;
    /// Whether the host's own TCP connections to published ports are
    /// translated in `connect()` right now (see `berth_linux::bpf`).
    fn socket_translation(&self) -> bool {
        false
    }
}

/// The real kernel. Host-side netlink sockets are pooled so concurrent
/// requests do not wait on one another; each in-namespace socket is opened
/// by a short-lived thread (see `berth_linux::netns`).
pub struct LinuxKernel {
    pool: Mutex<Vec<RtSocket>>,
    reaper: Reaper,
    /// Bridge name → ifindex (checked on use: a stale entry is refreshed).
    bridges: Mutex<HashMap<String, u32>>,
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
            // address of the namespace, as the nft rules' `fib daddr type
            // local` does: the map follows the addresses as they change.
            let nat = socket_nat.clone();
            let watch = netlink::watch_ipv4_addresses(move |addrs| with_nat(&nat, |n| n.set_local(&addrs.into_iter().collect())));
            if let Err(e) = watch {
                tracing::warn!("cannot follow host addresses ({e}): only 127.0.0.0/8 is translated");
            }
        }
        LinuxKernel { pool: Mutex::new(Vec::new()), reaper: Reaper::start(), bridges: Default::default(), socket_nat }
    }
}

/// Runs `f` on the translation maps if translation is on; turns it off if
/// `f` fails.
fn with_nat(nat: &Mutex<Option<SocketNat>>, f: impl FnOnce(&mut SocketNat) -> berth_linux::Result<()>) {
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
    fn with_sock<T>(&self, f: impl FnOnce(&mut RtSocket) -> berth_linux::Result<T>) -> Result<T> {
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
        Ok(r?)
    }
}

impl LinuxKernel {
    /// The bridge's ifindex. Cached: a veth request naming a vanished index
    /// fails with ENODEV and the next call looks the name up again.
    fn bridge_index(&self, s: &mut RtSocket, name: &str) -> berth_linux::Result<u32> {
        if let Some(i) = self.bridges.lock().unwrap().get(name) {
            return Ok(*i);
        }
        let br = netlink::link_index(s, name)?
            .ok_or_else(|| LinuxError::kernel(format!("ip link show {name}"), std::io::Error::from_raw_os_error(libc::ENODEV)))?;
        self.bridges.lock().unwrap().insert(name.to_string(), br.index);
        Ok(br.index)
    }

    /// The container side runs on its own thread (it enters the namespace),
    /// started first so that its set-up overlaps the host side's work: `lo`
    /// while the veth pair is created, the address and routes while the
    /// host end comes up. If the host side fails after that, deleting the
    /// pair takes the container's end and what was set on it along.
    fn try_add_endpoint(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<()> {
        let netns = Netns::open(&ns.path())?;
        let (go_tx, go_rx) = std::sync::mpsc::channel::<bool>();
        let (host, inner) = std::thread::scope(|scope| {
            let inner = netns.spawn_in(scope, move || -> berth_linux::Result<()> {
                let mut s = RtSocket::open()?;
                // lo first: this overlaps the host side's veth creation.
                if let Some(lo) = netlink::link_index(&mut s, "lo")? {
                    if !lo.up {
                        netlink::set_link_up(&mut s, lo.index, None)?;
                    }
                }
                if !go_rx.recv().unwrap_or(false) {
                    return Ok(());
                }
                let eth = netlink::link_index(&mut s, &plan.ifname)?.ok_or_else(|| {
                    LinuxError::kernel(format!("ip link show {}", plan.ifname), std::io::Error::from_raw_os_error(libc::ENODEV))
                })?;
                netlink::add_address(&mut s, eth.index, plan.address)?;
                netlink::set_up_without_ipv6_ll(&mut s, &plan.ifname)?;
                if let Some(gw) = plan.default_gateway {
                    netlink::add_default_route(&mut s, gw)?;
                }
                Ok(())
            });
            let host = self.with_sock(|s| {
                let br = self.bridge_index(s, &plan.bridge)?;
                netlink::add_veth_into_netns(s, &plan.host_ifname, &plan.host_mac, &plan.ifname, &plan.mac, netns.fd(), plan.mtu, br)?;
                // The container's end exists: its side can be configured
                // while this one brings the port up.
                let _ = go_tx.send(true);
                berth_linux::sysctl::disable_ipv6(&plan.host_ifname)
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
            self.bridges.lock().unwrap().remove(&plan.bridge);
        }
        host?;
        if let Err(e) = inner {
            // Leave nothing half-made behind.
            let _ = self.delete_link(&plan.host_ifname);
            return Err(e.into());
        }
        Ok(())
    }
}

fn ignore_missing(r: berth_linux::Result<()>) -> berth_linux::Result<()> {
    match r {
        Err(e) if matches!(e.errno(), Some(libc::ENODEV) | Some(libc::ENOENT)) => Ok(()),
        r => r,
    }
}

impl Kernel for LinuxKernel {
    fn ensure_bridge(&self, plan: &BridgePlan) -> Result<()> {
        self.with_sock(|s| {
            let link = match netlink::link_index(s, &plan.name)? {
                Some(l) => l,
                None if plan.owned => {
                    netlink::add_bridge(s, &plan.name, &plan.mac, plan.mtu, OWNER_ALIAS)?;
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

    fn link_addresses(&self, name: &str) -> Result<Option<Vec<IpNet>>> {
        self.with_sock(|s| {
            let Some(l) = netlink::link_index(s, name)? else { return Ok(None) };
            let addrs = netlink::list_addresses(s)?;
            Ok(Some(addrs.into_iter().filter(|a| a.index == l.index && a.addr.addr().is_ipv4()).map(|a| a.addr).collect()))
        })
    }

    fn link_owned(&self, name: &str) -> Result<Option<bool>> {
        self.with_sock(|s| Ok(netlink::link_index(s, name)?.map(|l| l.alias.as_deref() == Some(OWNER_ALIAS))))
    }

    fn add_endpoint(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<()> {
        match self.try_add_endpoint(ns, plan) {
            // The namespace may still hold the interface of an endpoint whose
            // deletion is queued (detach, then attach again): finish those, retry.
            Err(e) if matches!(&e, crate::error::DaemonError::Kernel(k) if k.errno() == Some(libc::EEXIST)) => {
                self.settle();
                self.try_add_endpoint(ns, plan)
            }
            r => r,
        }
    }

    fn endpoint_ok(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<bool> {
        let host_ok = self.with_sock(|s| {
            let Some(v) = netlink::link_index(s, &plan.host_ifname)? else { return Ok(false) };
            let Some(br) = netlink::link_index(s, &plan.bridge)? else { return Ok(false) };
            Ok(v.up && v.master == Some(br.index))
        })?;
        if !host_ok {
            return Ok(false);
        }
        let Ok(netns) = Netns::open(&ns.path()) else { return Ok(false) };
        Ok(netns.run(|| -> berth_linux::Result<bool> {
            let mut s = RtSocket::open()?;
            let Some(eth) = netlink::link_index(&mut s, &plan.ifname)? else { return Ok(false) };
            let addrs = netlink::list_addresses(&mut s)?;
            Ok(eth.up && addrs.iter().any(|a| a.index == eth.index && a.addr == plan.address))
        })??)
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
                    let is_bridge = l.kind.as_deref() == Some("bridge");
                    let owned = (is_bridge && l.alias.as_deref() == Some(OWNER_ALIAS))
                        || (l.kind.as_deref() == Some("veth") && l.name.starts_with("bthv"));
                    owned.then_some(OwnedLink { name: l.name, is_bridge })
                })
                .collect())
        })
    }

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
        Ok(r?)
    }

    fn socket_translation(&self) -> bool {
        self.socket_nat.lock().unwrap().is_some()
    }

    fn list_table(&self) -> Result<Option<String>> {
        Ok(nft::cli::list_table()?)
    }

    fn host_nets(&self, exclude_links: &[String]) -> Result<Vec<IpNet>> {
        self.with_sock(|s| {
            let links = netlink::list_links(s)?;
            let skip: Vec<u32> = links.iter().filter(|l| exclude_links.contains(&l.name)).map(|l| l.index).collect();
            let mut out: Vec<IpNet> = netlink::list_addresses(s)?
                .into_iter()
                .filter(|a| !skip.contains(&a.index) && !a.addr.addr().is_loopback())
                .map(|a| a.addr.trunc())
                .collect();
            for r in netlink::list_routes(s)? {
                let on_skipped = r.oif.is_some_and(|o| skip.contains(&o));
                if r.dst.prefix_len() > 0 && !on_skipped && !r.dst.addr().is_loopback() && r.table != 255 {
                    out.push(r.dst);
                }
            }
            Ok(out)
        })
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<bool> {
        Ok(sysctl::write(key, value)?)
    }

    fn check_netns(&self, path: &Path) -> Result<()> {
        let ns = Netns::open(path)?;
        // Never network the daemon's own (the host's) namespace as a container.
        if Netns::open(Path::new("/proc/self/ns/net")).and_then(|me| Ok(me.id()? == ns.id()?)).unwrap_or(false) {
            return Err(crate::error::DaemonError::BadRequest(format!(
                "{} is the daemon's own network namespace (the host's); containers need their own",
                path.display()
            )));
        }
        Ok(())
    }

    fn host_listeners(&self, udp: bool) -> Vec<(std::net::IpAddr, u16)> {
        berth_linux::ports::host_listeners(udp)
    }

    fn port_bindable(&self, udp: bool, ip: Option<std::net::IpAddr>, port: u16) -> std::io::Result<()> {
        berth_linux::ports::check_bindable(udp, ip, port)
    }

    fn ephemeral_range(&self) -> (u16, u16) {
        berth_linux::ports::ephemeral_range()
    }

    fn flush_conntrack(&self, mappings: &[berth_core::model::PortMapping]) -> Result<()> {
        let ports = mappings.iter().map(|m| (m.container.proto.number(), m.host_port)).collect();
        Ok(berth_linux::conntrack::delete_by_orig_dport(&ports, &berth_linux::conntrack::Which::All)?)
    }

    fn forget_early_flows(&self, mappings: &[berth_core::model::PortMapping]) -> Result<()> {
        if mappings.is_empty() {
            return Ok(());
        }
        let local = self.with_sock(|s| Ok(netlink::list_addresses(s)?.into_iter().map(|a| a.addr.addr()).collect()))?;
        let ports = mappings.iter().map(|m| (m.container.proto.number(), m.host_port)).collect();
        Ok(berth_linux::conntrack::delete_by_orig_dport(&ports, &berth_linux::conntrack::Which::UntranslatedTo(local))?)
    }
}
