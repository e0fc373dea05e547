//! The bpf(2) calls berth makes, with `union bpf_attr` laid out by hand
//! (offsets from include/uapi/linux/bpf.h; the kernel zero-fills what a
//! caller leaves out). Every fd the kernel hands back is close-on-exec, so
//! container processes never keep berth's programs attached.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::asm::Insn;

const MAP_CREATE: i32 = 0;
const MAP_UPDATE_ELEM: i32 = 2;
const MAP_DELETE_ELEM: i32 = 3;
const PROG_LOAD: i32 = 5;
const MAP_UPDATE_BATCH: i32 = 26;
const MAP_DELETE_BATCH: i32 = 27;
const LINK_CREATE: i32 = 28;

pub const MAP_TYPE_HASH: u32 = 1;
pub const MAP_TYPE_LRU_HASH: u32 = 9;
/// Hash map entries allocated on insert, not up front.
pub const F_NO_PREALLOC: u32 = 1;

pub const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
/// `enum bpf_attach_type`: BPF_CGROUP_INET4_CONNECT, …_INET6_CONNECT,
/// …_INET4_GETPEERNAME, …_INET6_GETPEERNAME.
pub const CGROUP_INET4_CONNECT: u32 = 10;
pub const CGROUP_INET6_CONNECT: u32 = 11;
pub const CGROUP_INET4_GETPEERNAME: u32 = 29;
pub const CGROUP_INET6_GETPEERNAME: u32 = 30;

/// `union bpf_attr`, as raw bytes.
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn name(&mut self, off: usize, name: &str) -> &mut Self {
        let n = name.len().min(15);
        self.0[off..off + n].copy_from_slice(&name.as_bytes()[..n]);
        self
    }
    fn call(&mut self, cmd: i32) -> io::Result<i64> {
        // SAFETY: the attr buffer outlives the call and is as large as we say;
        // pointers stored in it point at live buffers of the caller.
        let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, self.0.as_mut_ptr(), self.0.len() as u32) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }
    fn call_fd(&mut self, cmd: i32) -> io::Result<OwnedFd> {
        // SAFETY: a successful call returns a new fd that nobody else owns.
        self.call(cmd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// `bpftool map create … type TYPE key K value V entries N`.
pub fn map_create(kind: u32, key: u32, value: u32, entries: u32, flags: u32, name: &str) -> io::Result<OwnedFd> {
    Attr::new().u32(0, kind).u32(4, key).u32(8, value).u32(12, entries).u32(16, flags).name(28, name).call_fd(MAP_CREATE)
}

/// `bpftool map update`: inserts or replaces.
pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    Attr::new().u32(0, map.as_raw_fd() as u32).u64(8, key.as_ptr() as u64).u64(16, value.as_ptr() as u64).u64(24, 0).call(MAP_UPDATE_ELEM).map(drop)
}

/// `bpftool map delete`; a missing key is not an error.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    match Attr::new().u32(0, map.as_raw_fd() as u32).u64(8, key.as_ptr() as u64).call(MAP_DELETE_ELEM) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r.map(drop),
    }
}

/// Many updates in one call: `keys` and `values` are `count` fixed-size
/// entries back to back. Stops at the first failure, with its error.
pub fn map_update_batch(map: &OwnedFd, keys: &[u8], values: &[u8], count: usize) -> io::Result<()> {
    batch(MAP_UPDATE_BATCH, map, keys, Some(values), count)
}

/// Many deletions in one call; every key must exist (ENOENT otherwise).
pub fn map_delete_batch(map: &OwnedFd, keys: &[u8], count: usize) -> io::Result<()> {
    batch(MAP_DELETE_BATCH, map, keys, None, count)
}

fn batch(cmd: i32, map: &OwnedFd, keys: &[u8], values: Option<&[u8]>, count: usize) -> io::Result<()> {
    if count == 0 {
        return Ok(());
    }
    // `struct { in_batch, out_batch, keys, values; count, map_fd; elem_flags; flags }`
    let mut a = Attr::new();
    a.u64(16, keys.as_ptr() as u64).u64(24, values.map_or(0, |v| v.as_ptr() as u64)).u32(32, count as u32).u32(36, map.as_raw_fd() as u32);
    a.call(cmd).map(drop)
}

/// `bpftool prog load`. On a verifier refusal the error carries the end of
/// the verifier's log.
pub fn prog_load(kind: u32, attach: u32, insns: &[Insn], name: &str) -> io::Result<OwnedFd> {
    let code: Vec<u8> = insns.iter().flat_map(|i| i.bytes()).collect();
    let license = CString::new("MIT").unwrap();
    let mut log = vec![0u8; 1 << 16];
    let mut attr = Attr::new();
    attr.u32(0, kind).u32(4, insns.len() as u32).u64(8, code.as_ptr() as u64).u64(16, license.as_ptr() as u64);
    attr.name(48, name).u32(68, attach);
    match attr.call_fd(PROG_LOAD) {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EINVAL) => {
            // Again with the verifier's log, to say why.
            attr.u32(24, 1).u32(28, log.len() as u32).u64(32, log.as_mut_ptr() as u64);
            let retry = attr.call_fd(PROG_LOAD);
            let text = String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)]).into_owned();
            let tail: String = text.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
            retry.map_err(|_| io::Error::new(e.kind(), format!("{e}; verifier: {tail}")))
        }
        r => r,
    }
}

/// Attaches a program to a cgroup for as long as the returned link is open
/// (`bpftool cgroup attach CGROUP TYPE PROG multi`, without pinning).
pub fn link_create(prog: &OwnedFd, cgroup: &OwnedFd, attach: u32) -> io::Result<OwnedFd> {
    Attr::new().u32(0, prog.as_raw_fd() as u32).u32(4, cgroup.as_raw_fd() as u32).u32(8, attach).call_fd(LINK_CREATE)
}

/// The cookie of the calling thread's network namespace (SO_NETNS_COOKIE),
/// the value `bpf_get_netns_cookie` returns for sockets in it.
pub fn netns_cookie() -> io::Result<u64> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new socket nobody else owns.
    let s = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut v = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    const SO_NETNS_COOKIE: i32 = 71;
    // SAFETY: v and len are valid for the kernel to write.
    let r = unsafe { libc::getsockopt(s.as_raw_fd(), libc::SOL_SOCKET, SO_NETNS_COOKIE, &mut v as *mut u64 as *mut libc::c_void, &mut len) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}
