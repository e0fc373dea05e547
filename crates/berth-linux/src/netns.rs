//! Network namespaces.
//!
//! `setns(2)` switches only the calling thread. berth never calls it on a
//! thread it keeps: work inside a namespace runs on a fresh short-lived thread
//! that exits afterwards, so no pooled (tokio) thread can ever be left in a
//! container's namespace. The usual job of such a thread is to open a netlink
//! socket, which stays bound to that namespace when used from other threads.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use crate::error::{LinuxError, Result};
use crate::netlink::RtSocket;

/// `ioctl(fd, NS_GET_NSTYPE)`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// An open network namespace (`/proc/PID/ns/net` or a bind mount of one such
/// as `/run/netns/NAME`).
#[derive(Debug)]
pub struct Netns {
    file: File,
}

impl Netns {
    /// Opens `path` and checks that it really is a network namespace.
    pub fn open(path: &Path) -> Result<Netns> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|_| LinuxError::NotNetns(shown.clone()))?;
        // SAFETY: plain ioctl on an fd we own; no memory is passed.
        let t = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
        if t != libc::CLONE_NEWNET {
            return Err(LinuxError::NotNetns(shown));
        }
        Ok(Netns { file })
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` on a new thread that has entered this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let fd = self.fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on a valid namespace fd, affecting only this
                // thread, which ends when the closure returns.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(LinuxError::kernel("setns(CLONE_NEWNET)", std::io::Error::last_os_error()));
                }
                Ok(f())
            })
            .join()
            .map_err(|_| LinuxError::kernel("namespace thread", std::io::Error::other("panicked")))?
        })
    }

    /// Starts `f` on a new scoped thread that has entered this namespace, so
    /// the caller can do other work meanwhile; the thread ends with `f`.
    pub fn spawn_in<'scope, 'env, T: Send + 'scope>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        f: impl FnOnce() -> Result<T> + Send + 'scope,
    ) -> std::thread::ScopedJoinHandle<'scope, Result<T>> {
        let fd = self.fd();
        scope.spawn(move || {
            // SAFETY: see `run`.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(LinuxError::kernel("setns(CLONE_NEWNET)", std::io::Error::last_os_error()));
            }
            f()
        })
    }

    /// A route netlink socket that talks to this namespace.
    pub fn route_socket(&self) -> Result<RtSocket> {
        self.run(RtSocket::open)?
    }

    /// Namespace identity (device, inode), to tell two paths to one namespace apart.
    pub fn id(&self) -> Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = self.file.metadata().map_err(|e| LinuxError::kernel("fstat netns", e))?;
        Ok((m.dev(), m.ino()))
    }
}

/// The inode of the calling thread's network namespace
/// (`stat -L -c %i /proc/thread-self/ns/net`): what tells two namespaces apart.
pub fn own_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino()).unwrap_or(0)
}
