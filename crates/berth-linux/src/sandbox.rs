//! A private network and mount namespace for the calling thread and every
//! process or thread it starts afterwards: what root tests and `berth demo`
//! run in, so the host's network is never touched.
//!
//! `unshare --net --mount --propagation private` plus a private `/run/netns`
//! (so `ip netns add` names cannot collide with the host's or another test's)
//! and `lo` up.

use std::ffi::CString;
use std::io;

use crate::error::{Context, Result};
use crate::netlink::{self, RtSocket};

/// `mount -t FSTYPE SRC TARGET`.
pub(crate) fn mount(src: &str, target: &str, fstype: &str, flags: libc::c_ulong) -> io::Result<()> {
    let c = |s: &str| CString::new(s).unwrap();
    let (src, target, fstype) = (c(src), c(target), c(fstype));
    // SAFETY: valid NUL-terminated strings; no data argument.
    let r = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, std::ptr::null()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Enters a fresh network and mount namespace. Needs root.
pub fn enter() -> Result<()> {
    // SAFETY: unshare affects only the calling thread (and its future children).
    if unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS) } != 0 {
        return Err(io::Error::last_os_error()).ctx(|| "unshare --net --mount (are you root?)".into());
    }
    mount("none", "/", "", libc::MS_REC | libc::MS_PRIVATE).ctx(|| "mount --make-rprivate /".into())?;
    for dir in ["/run/netns", "/run/berth"] {
        std::fs::create_dir_all(dir).ctx(|| format!("mkdir {dir}"))?;
        mount("tmpfs", dir, "tmpfs", 0).ctx(|| format!("mount -t tmpfs tmpfs {dir}"))?;
    }
    // /sys shows the network devices of the namespace that mounted it.
    let _ = mount("sysfs", "/sys", "sysfs", 0);
    let mut sock = RtSocket::open()?;
    let lo = netlink::link_index(&mut sock, "lo")?.ok_or_else(|| io::Error::other("no lo")).ctx(|| "ip link show lo".into())?;
    netlink::set_link_up(&mut sock, lo.index, None)?;
    Ok(())
}
