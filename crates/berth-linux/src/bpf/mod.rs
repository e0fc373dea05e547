//! Socket translation: published TCP ports reached from the host itself are
//! translated once, in `connect()`, instead of in every packet.
//!
//! The nft rules stay the source of truth: every published port has its
//! DNAT element whether or not this is on, and anything the programs leave
//! alone (UDP, sockets bound before connect(), other namespaces) takes
//! that path. This is only a shortcut, and it is safe to
//! lose: the programs are attached through BPF links that only the daemon
//! holds (nothing is pinned), so when the daemon exits or is killed they
//! are detached by the kernel and connections fall back to DNAT. A new
//! daemon attaches fresh programs and refills the maps from the store.
//!
//! The programs are attached at the root of the cgroup v2 tree, where they
//! see every process of the machine; each one compares the socket's network
//! namespace with its daemon's (`bpf_get_netns_cookie`), so a daemon in a
//! test sandbox never changes what the host's processes connect to.
//!
//! Equivalent by hand: `bpftool cgroup attach /sys/fs/cgroup connect4 …`.

pub mod asm;
pub mod programs;
pub mod sys;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{FromRawFd, OwnedFd};

use berth_core::model::Proto;
use berth_core::nft::Element;

use crate::error::{Context, Result};
use programs::{ports_key, ports_value, Maps, IPPROTO_TCP};

/// A published TCP port as the programs look it up: host address
/// (0.0.0.0 for every address) and port → container address and port.
pub type PortEntry = ((Ipv4Addr, u16), (Ipv4Addr, u16));

/// The entry an nft element implies, if the programs handle it (TCP only).
pub fn port_entry(e: &Element) -> Option<PortEntry> {
    match e {
        Element::PortAny { proto: Proto::Tcp, host_port, addr: IpAddr::V4(addr), port } => Some(((Ipv4Addr::UNSPECIFIED, *host_port), (*addr, *port))),
        Element::PortAddr { host_ip: IpAddr::V4(host_ip), proto: Proto::Tcp, host_port, addr: IpAddr::V4(addr), port } => {
            Some(((*host_ip, *host_port), (*addr, *port)))
        }
        _ => None,
    }
}

/// Attached programs and their maps, with a copy of what the maps hold.
pub struct SocketNat {
    ports: OwnedFd,
    local: OwnedFd,
    _origin: OwnedFd,
    _links: Vec<OwnedFd>,
    have_ports: HashMap<(Ipv4Addr, u16), (Ipv4Addr, u16)>,
    have_local: HashSet<Ipv4Addr>,
}

/// Preallocated (~4.5 MiB): inserting into a preallocated hash map is about
/// twice as fast, which a 10,000-port range feels. One entry per TCP port of
/// every address once; beyond that (one port on several addresses) a full
/// map turns translation off and the nft rules carry on alone.
const MAX_PORTS: u32 = 1 << 16;
const MAX_LOCAL: u32 = 4096;
/// Sockets whose getpeername is kept right; older ones age out (LRU).
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
        use std::os::fd::AsRawFd;
        let m = Maps { ports: ports.as_raw_fd(), local: local.as_raw_fd(), origin: origin.as_raw_fd() };
        let cgroup = cgroup2_root().ctx(|| "open the cgroup v2 root".into())?;
        let mut links = Vec::new();
        for (name, attach, insns) in [
            ("berth_connect4", sys::CGROUP_INET4_CONNECT, programs::connect4(netns, m)),
            ("berth_peername4", sys::CGROUP_INET4_GETPEERNAME, programs::getpeername4(netns, m)),
        ] {
            let prog = sys::prog_load(sys::PROG_TYPE_CGROUP_SOCK_ADDR, attach, &insns, name).ctx(|| format!("bpftool prog load {name}"))?;
            links.push(sys::link_create(&prog, &cgroup, attach).ctx(|| format!("bpftool cgroup attach / {name}"))?);
        }
        Ok(SocketNat { ports, local, _origin: origin, _links: links, have_ports: HashMap::new(), have_local: HashSet::new() })
    }

    /// Applies a change of nft elements: removals first, so that a failure
    /// half-way never leaves a translation nft no longer has. One bpf(2)
    /// call for each side (a 10,000-port range is one call, not 10,000).
    pub fn apply(&mut self, del: &[PortEntry], add: &[PortEntry]) -> Result<()> {
        self.remove_ports(del.iter().map(|(from, _)| *from).collect())?;
        self.set_ports(add)
    }

    /// Makes the map hold exactly `want` (reconcile).
    pub fn replace(&mut self, want: &[PortEntry]) -> Result<()> {
        let keep: HashMap<_, _> = want.iter().copied().collect();
        self.remove_ports(self.have_ports.keys().filter(|k| !keep.contains_key(k)).copied().collect())?;
        let changed: Vec<PortEntry> = keep.into_iter().filter(|(from, to)| self.have_ports.get(from) != Some(to)).collect();
        self.set_ports(&changed)
    }

    fn set_ports(&mut self, add: &[PortEntry]) -> Result<()> {
        let keys: Vec<u8> = add.iter().flat_map(|((ip, port), _)| ports_key(*ip, *port, IPPROTO_TCP)).collect();
        let values: Vec<u8> = add.iter().flat_map(|(_, (ip, port))| ports_value(*ip, *port)).collect();
        sys::map_update_batch(&self.ports, &keys, &values, add.len()).ctx(|| format!("bpftool map update name berth_ports ({} entries)", add.len()))?;
        self.have_ports.extend(add.iter().copied());
        Ok(())
    }

    fn remove_ports(&mut self, mut del: Vec<(Ipv4Addr, u16)>) -> Result<()> {
        // The batch call refuses keys that are not there: leave those out.
        del.retain(|k| self.have_ports.contains_key(k));
        del.sort_unstable();
        del.dedup();
        let keys: Vec<u8> = del.iter().flat_map(|(ip, port)| ports_key(*ip, *port, IPPROTO_TCP)).collect();
        sys::map_delete_batch(&self.ports, &keys, del.len()).ctx(|| format!("bpftool map delete name berth_ports ({} entries)", del.len()))?;
        for k in &del {
            self.have_ports.remove(k);
        }
        Ok(())
    }

    /// The namespace's own addresses, where a port published on every
    /// address is translated (127.0.0.0/8 always is).
    pub fn set_local(&mut self, addrs: &HashSet<Ipv4Addr>) -> Result<()> {
        let gone: Vec<Ipv4Addr> = self.have_local.difference(addrs).copied().collect();
        let new: Vec<Ipv4Addr> = addrs.difference(&self.have_local).copied().collect();
        for ip in gone {
            sys::map_delete(&self.local, &ip.octets()).ctx(|| format!("bpftool map delete name berth_local key {ip}"))?;
            self.have_local.remove(&ip);
        }
        for ip in new {
            sys::map_update(&self.local, &ip.octets(), &[1]).ctx(|| format!("bpftool map update name berth_local key {ip}"))?;
            self.have_local.insert(ip);
        }
        Ok(())
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
        assert_eq!(port_entry(&any), Some(((Ipv4Addr::UNSPECIFIED, 8080), (a, 80))));
        let one = Element::PortAddr { host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), proto: Proto::Tcp, host_port: 8080, addr: IpAddr::V4(a), port: 80 };
        assert_eq!(port_entry(&one), Some(((Ipv4Addr::LOCALHOST, 8080), (a, 80))));
        assert_eq!(port_entry(&Element::PortAny { proto: Proto::Udp, host_port: 53, addr: IpAddr::V4(a), port: 53 }), None);
        assert_eq!(port_entry(&Element::Bridge("berth0".into())), None);
    }
}
