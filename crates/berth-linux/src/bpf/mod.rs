//! Socket translation: published TCP ports reached from the host itself are
//! translated once, in `connect()`, instead of in every packet, for IPv4
//! and IPv6 sockets alike (see `programs` for what each program does).
//!
//! The nft rules stay the source of truth: every published port has its
//! DNAT element whether or not this is on, and anything the programs leave
//! alone (UDP, sockets bound before connect(), other namespaces) takes
//! that path. This is only a shortcut — with one addition the rules lack:
//! an IPv6 connection to `[::1]:PORT` or another of the host's IPv6
//! addresses reaches a port that is published on every address of an
//! IPv4-only network, over IPv4 (a v4-mapped destination), as Docker's
//! docker-proxy offers. That is TCP only, for sockets not bound before
//! connect() and not `IPV6_V6ONLY` (their `connect()` fails with
//! ENETUNREACH), and only while translation is on.
//!
//! It is safe to lose: the programs are attached through BPF links that
//! only the daemon holds (nothing is pinned), so when the daemon exits or
//! is killed they are detached by the kernel and connections fall back to
//! DNAT. A new daemon attaches fresh programs and refills the maps from the
//! store.
//!
//! The programs are attached at the root of the cgroup v2 tree, where they
//! see every process of the machine; each one compares the socket's network
//! namespace with its daemon's (`bpf_get_netns_cookie`), so a daemon in a
//! test sandbox never changes what the host's processes connect to.
//!
//! Equivalent by hand: `bpftool cgroup attach /sys/fs/cgroup connect4 …`
//! (and `connect6`, `getpeername4`, `getpeername6`).

pub mod asm;
pub mod programs;
pub mod sys;

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::hash::Hash;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, OwnedFd};

use berth_core::model::Proto;
use berth_core::nft::Element;

use crate::error::{Context, Result};
use programs::{Maps, IPPROTO_TCP};

/// A published TCP port as the programs look it up: host address (the
/// unspecified address, 0.0.0.0 or `::`, for every address) and port →
/// container address and port, in the family of the nft element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortEntry {
    V4((Ipv4Addr, u16), (Ipv4Addr, u16)),
    V6((Ipv6Addr, u16), (Ipv6Addr, u16)),
}

/// The entry an nft element implies, if the programs handle it (TCP only).
pub fn port_entry(e: &Element) -> Option<PortEntry> {
    let (host_ip, host_port, addr, port) = match e {
        Element::PortAny { proto: Proto::Tcp, host_port, addr, port } => {
            let any = match addr {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            (any, *host_port, *addr, *port)
        }
        Element::PortAddr { host_ip, proto: Proto::Tcp, host_port, addr, port } => (*host_ip, *host_port, *addr, *port),
        _ => return None,
    };
    match (host_ip, addr) {
        (IpAddr::V4(h), IpAddr::V4(a)) => Some(PortEntry::V4((h, host_port), (a, port))),
        (IpAddr::V6(h), IpAddr::V6(a)) => Some(PortEntry::V6((h, host_port), (a, port))),
        // Not an element nft takes (its maps are per family).
        _ => None,
    }
}

/// An address family as the maps encode it.
trait Family: Copy + Eq + Hash + Ord + Display {
    fn ports_key(self, port: u16) -> Vec<u8>;
    fn ports_value(self, port: u16) -> Vec<u8>;
    fn local_key(self) -> Vec<u8>;
}

impl Family for Ipv4Addr {
    fn ports_key(self, port: u16) -> Vec<u8> {
        programs::ports_key(self, port, IPPROTO_TCP).to_vec()
    }
    fn ports_value(self, port: u16) -> Vec<u8> {
        programs::ports_value(self, port).to_vec()
    }
    fn local_key(self) -> Vec<u8> {
        self.octets().to_vec()
    }
}

impl Family for Ipv6Addr {
    fn ports_key(self, port: u16) -> Vec<u8> {
        programs::ports6_key(self, port, IPPROTO_TCP).to_vec()
    }
    fn ports_value(self, port: u16) -> Vec<u8> {
        programs::ports6_value(self, port).to_vec()
    }
    fn local_key(self) -> Vec<u8> {
        self.octets().to_vec()
    }
}

type Mapping<A> = ((A, u16), (A, u16));

/// A `ports` map of one family, with a copy of what it holds.
struct Ports<A> {
    map: OwnedFd,
    name: &'static str,
    have: HashMap<(A, u16), (A, u16)>,
}

impl<A: Family> Ports<A> {
    fn set(&mut self, add: &[Mapping<A>]) -> Result<()> {
        let keys: Vec<u8> = add.iter().flat_map(|((ip, port), _)| ip.ports_key(*port)).collect();
        let values: Vec<u8> = add.iter().flat_map(|(_, (ip, port))| ip.ports_value(*port)).collect();
        let name = self.name;
        sys::map_update_batch(&self.map, &keys, &values, add.len()).ctx(|| format!("bpftool map update name {name} ({} entries)", add.len()))?;
        self.have.extend(add.iter().copied());
        Ok(())
    }

    fn remove(&mut self, mut del: Vec<(A, u16)>) -> Result<()> {
        // The batch call refuses keys that are not there: leave those out.
        del.retain(|k| self.have.contains_key(k));
        del.sort_unstable();
        del.dedup();
        let keys: Vec<u8> = del.iter().flat_map(|(ip, port)| ip.ports_key(*port)).collect();
        let name = self.name;
        sys::map_delete_batch(&self.map, &keys, del.len()).ctx(|| format!("bpftool map delete name {name} ({} entries)", del.len()))?;
        for k in &del {
            self.have.remove(k);
        }
        Ok(())
    }

    fn replace(&mut self, want: Vec<Mapping<A>>) -> Result<()> {
        let keep: HashMap<_, _> = want.into_iter().collect();
        self.remove(self.have.keys().filter(|k| !keep.contains_key(k)).copied().collect())?;
        let changed: Vec<Mapping<A>> = keep.into_iter().filter(|(from, to)| self.have.get(from) != Some(to)).collect();
        self.set(&changed)
    }
}

/// A `local` map of one family, with a copy of what it holds.
struct Local<A> {
    map: OwnedFd,
    name: &'static str,
    have: HashSet<A>,
}

impl<A: Family> Local<A> {
    fn set(&mut self, addrs: HashSet<A>) -> Result<()> {
        let gone: Vec<A> = self.have.difference(&addrs).copied().collect();
        let new: Vec<A> = addrs.difference(&self.have).copied().collect();
        let name = self.name;
        for ip in gone {
            sys::map_delete(&self.map, &ip.local_key()).ctx(|| format!("bpftool map delete name {name} key {ip}"))?;
            self.have.remove(&ip);
        }
        for ip in new {
            sys::map_update(&self.map, &ip.local_key(), &[1]).ctx(|| format!("bpftool map update name {name} key {ip}"))?;
            self.have.insert(ip);
        }
        Ok(())
    }
}

/// Splits entries by family.
fn split(entries: &[PortEntry]) -> (Vec<Mapping<Ipv4Addr>>, Vec<Mapping<Ipv6Addr>>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for e in entries {
        match *e {
            PortEntry::V4(from, to) => v4.push((from, to)),
            PortEntry::V6(from, to) => v6.push((from, to)),
        }
    }
    (v4, v6)
}

/// Attached programs and their maps, with a copy of what the maps hold.
pub struct SocketNat {
    ports4: Ports<Ipv4Addr>,
    ports6: Ports<Ipv6Addr>,
    local4: Local<Ipv4Addr>,
    local6: Local<Ipv6Addr>,
    _origins: [OwnedFd; 2],
    _links: Vec<OwnedFd>,
}

/// Preallocated (~5 MiB for IPv4, ~7 MiB for IPv6): inserting into a
/// preallocated hash map is about twice as fast, which a 10,000-port range
/// feels. One entry per TCP port of every address once, per family; beyond
/// that (one port on several addresses) a full map turns translation off
/// and the nft rules carry on alone.
const MAX_PORTS: u32 = 1 << 16;
const MAX_LOCAL: u32 = 4096;
/// Sockets whose getpeername is kept right, per family; older ones age out
/// (LRU).
const MAX_ORIGINS: u32 = 1 << 14;

impl SocketNat {
    /// Loads and attaches the programs for the calling thread's network
    /// namespace. Fails (and leaves nothing behind) where the kernel lacks
    /// cgroup v2, BPF links or the helpers (before Linux 5.8).
    pub fn attach() -> Result<SocketNat> {
        let netns = sys::netns_cookie().ctx(|| "getsockopt SO_NETNS_COOKIE".into())?;
        let map = |kind, key, value, entries, flags, name: &str| {
            sys::map_create(kind, key, value, entries, flags, name).ctx(|| format!("bpftool map create name {name}"))
        };
        let ports = map(sys::MAP_TYPE_HASH, programs::PORTS_KEY, programs::PORTS_VALUE, MAX_PORTS, 0, "berth_ports")?;
        let local = map(sys::MAP_TYPE_HASH, 4, 1, MAX_LOCAL, sys::F_NO_PREALLOC, "berth_local")?;
        let origin = map(sys::MAP_TYPE_LRU_HASH, 8, programs::ORIGIN_VALUE, MAX_ORIGINS, 0, "berth_origin")?;
        let ports6 = map(sys::MAP_TYPE_HASH, programs::PORTS6_KEY, programs::PORTS6_VALUE, MAX_PORTS, 0, "berth_ports6")?;
        let local6 = map(sys::MAP_TYPE_HASH, 16, 1, MAX_LOCAL, sys::F_NO_PREALLOC, "berth_local6")?;
        let origin6 = map(sys::MAP_TYPE_LRU_HASH, 8, programs::ORIGIN6_VALUE, MAX_ORIGINS, 0, "berth_origin6")?;
        use std::os::fd::AsRawFd;
        let m = Maps {
            ports: ports.as_raw_fd(),
            local: local.as_raw_fd(),
            origin: origin.as_raw_fd(),
            ports6: ports6.as_raw_fd(),
            local6: local6.as_raw_fd(),
            origin6: origin6.as_raw_fd(),
        };
        let cgroup = cgroup2_root().ctx(|| "open the cgroup v2 root".into())?;
        let mut links = Vec::new();
        for (name, attach, insns) in [
            ("berth_connect4", sys::CGROUP_INET4_CONNECT, programs::connect4(netns, m)),
            ("berth_peername4", sys::CGROUP_INET4_GETPEERNAME, programs::getpeername4(netns, m)),
            ("berth_connect6", sys::CGROUP_INET6_CONNECT, programs::connect6(netns, m)),
            ("berth_peername6", sys::CGROUP_INET6_GETPEERNAME, programs::getpeername6(netns, m)),
        ] {
            let prog = sys::prog_load(sys::PROG_TYPE_CGROUP_SOCK_ADDR, attach, &insns, name).ctx(|| format!("bpftool prog load {name}"))?;
            links.push(sys::link_create(&prog, &cgroup, attach).ctx(|| format!("bpftool cgroup attach / {name}"))?);
        }
        Ok(SocketNat {
            ports4: Ports { map: ports, name: "berth_ports", have: HashMap::new() },
            ports6: Ports { map: ports6, name: "berth_ports6", have: HashMap::new() },
            local4: Local { map: local, name: "berth_local", have: HashSet::new() },
            local6: Local { map: local6, name: "berth_local6", have: HashSet::new() },
            _origins: [origin, origin6],
            _links: links,
        })
    }

    /// Applies a change of nft elements: removals first (both families),
    /// so that a failure half-way never leaves a translation nft no longer
    /// has. One bpf(2) call for each side and family (a 10,000-port range
    /// is one call, not 10,000).
    pub fn apply(&mut self, del: &[PortEntry], add: &[PortEntry]) -> Result<()> {
        let ((del4, del6), (add4, add6)) = (split(del), split(add));
        self.ports4.remove(del4.iter().map(|(from, _)| *from).collect())?;
        self.ports6.remove(del6.iter().map(|(from, _)| *from).collect())?;
        self.ports4.set(&add4)?;
        self.ports6.set(&add6)
    }

    /// Makes the maps hold exactly `want` (reconcile).
    pub fn replace(&mut self, want: &[PortEntry]) -> Result<()> {
        let (want4, want6) = split(want);
        self.ports4.replace(want4)?;
        self.ports6.replace(want6)
    }

    /// The namespace's own addresses (both families), where a port
    /// published on every address is translated (127.0.0.0/8 and `::1`
    /// always are).
    pub fn set_local(&mut self, addrs: &[IpAddr]) -> Result<()> {
        let mut v4 = HashSet::new();
        let mut v6 = HashSet::new();
        for a in addrs {
            match a {
                IpAddr::V4(a) => v4.insert(*a),
                IpAddr::V6(a) => v6.insert(*a),
            };
        }
        self.local4.set(v4)?;
        self.local6.set(v6)
    }
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn open_dir(path: &str) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path).map_err(io::Error::other)?;
    // SAFETY: valid NUL-terminated path; the fd is owned at once.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is new and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    use std::os::fd::AsRawFd;
    // SAFETY: st is valid for the kernel to write.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.f_type as i64 != CGROUP2_SUPER_MAGIC {
        return Err(io::Error::other(format!("{path} is not cgroup2")));
    }
    Ok(fd)
}

/// The root of the cgroup v2 tree: a mount of it at its root if one is
/// visible (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid
/// systems), else a private mount made for the moment and detached at once
/// (the fd keeps the tree; no mount stays behind).
fn cgroup2_root() -> io::Result<OwnedFd> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else { continue };
        if f.get(dash + 1) == Some(&"cgroup2") && f.get(3) == Some(&"/") {
            if let Ok(fd) = open_dir(f[4]) {
                return Ok(fd);
            }
        }
    }
    let dir = format!("/run/.berth-cgroup2-{}", std::process::id());
    std::fs::create_dir_all(&dir)?;
    let fd = crate::sandbox::mount("cgroup2", &dir, "cgroup2", 0).and_then(|()| {
        let fd = open_dir(&dir);
        let c = std::ffi::CString::new(dir.as_str()).unwrap();
        // SAFETY: valid path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        fd
    });
    let _ = std::fs::remove_dir(&dir);
    fd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_mappings_are_translated() {
        let a = Ipv4Addr::new(10, 0, 0, 2);
        let any = Element::PortAny { proto: Proto::Tcp, host_port: 8080, addr: IpAddr::V4(a), port: 80 };
        assert_eq!(port_entry(&any), Some(PortEntry::V4((Ipv4Addr::UNSPECIFIED, 8080), (a, 80))));
        let one = Element::PortAddr { host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), proto: Proto::Tcp, host_port: 8080, addr: IpAddr::V4(a), port: 80 };
        assert_eq!(port_entry(&one), Some(PortEntry::V4((Ipv4Addr::LOCALHOST, 8080), (a, 80))));
        assert_eq!(port_entry(&Element::PortAny { proto: Proto::Udp, host_port: 53, addr: IpAddr::V4(a), port: 53 }), None);
        assert_eq!(port_entry(&Element::Bridge("berth0".into())), None);
    }

    #[test]
    fn ipv6_mappings_keep_their_family() {
        let a: Ipv6Addr = "fd00:17::2".parse().unwrap();
        let any = Element::PortAny { proto: Proto::Tcp, host_port: 8080, addr: IpAddr::V6(a), port: 80 };
        assert_eq!(port_entry(&any), Some(PortEntry::V6((Ipv6Addr::UNSPECIFIED, 8080), (a, 80))));
        let one = Element::PortAddr { host_ip: IpAddr::V6(Ipv6Addr::LOCALHOST), proto: Proto::Tcp, host_port: 8080, addr: IpAddr::V6(a), port: 80 };
        assert_eq!(port_entry(&one), Some(PortEntry::V6((Ipv6Addr::LOCALHOST, 8080), (a, 80))));
        assert_eq!(port_entry(&Element::PortAny { proto: Proto::Udp, host_port: 53, addr: IpAddr::V6(a), port: 53 }), None);
        // Mixed families are no nft element: nothing to translate.
        let mixed = Element::PortAddr { host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), proto: Proto::Tcp, host_port: 8080, addr: IpAddr::V6(a), port: 80 };
        assert_eq!(port_entry(&mixed), None);
        let (v4, v6) = split(&[port_entry(&any).unwrap(), PortEntry::V4((Ipv4Addr::UNSPECIFIED, 1), (Ipv4Addr::LOCALHOST, 2))]);
        assert_eq!((v4.len(), v6.len()), (1, 1));
        assert_eq!(v6[0], ((Ipv6Addr::UNSPECIFIED, 8080), (a, 80)));
        assert_eq!(Ipv6Addr::UNSPECIFIED.ports_key(8080), programs::ports6_key(Ipv6Addr::UNSPECIFIED, 8080, IPPROTO_TCP));
    }
}
