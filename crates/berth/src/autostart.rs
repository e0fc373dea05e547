//! Finding the daemon of this network namespace, and starting one when none
//! answers: what the front ends that runtimes exec (netavark mode, the CNI
//! plugin) do before their one request, so a runtime needs no set-up.
//!
//! One daemon serves one network namespace, and a call is never served by
//! the daemon of another one (rootless podman, for one, runs its network
//! backend inside its own namespace). The socket follows from the caller:
//! - `BERTH_HOST=unix://PATH`: that socket (its directory is the exec root
//!   of a daemon started for it; `BERTH_ROOT` names its state directory,
//!   else `EXEC_ROOT/root`);
//! - otherwise, in the namespace of PID 1 (the host's): the default paths,
//!   `/run/berth/berth.sock` and `/var/lib/berth`;
//! - otherwise: `/run/berth/ns-INODE/berth.sock` and
//!   `/var/lib/berth/ns-INODE`, INODE naming the namespace (under
//!   `$XDG_RUNTIME_DIR/berth` for a caller that is not root).
//!
//! A daemon started here runs detached (its own session, no terminal),
//! logs to `EXEC_ROOT/daemon.log` and writes its pid to
//! `EXEC_ROOT/berth.pid`. Two calls racing to start one are serialized by
//! a lock file in the exec root.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hyper::Method;

use crate::client::Client;

/// Where the daemon for the caller's namespace is (or is to be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub socket: PathBuf,
    pub exec_root: PathBuf,
    pub root: PathBuf,
}

fn ns_inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0)
}

/// The target for the caller, from `BERTH_HOST`/`BERTH_ROOT` and its namespace.
pub fn target() -> Result<Target> {
    target_as(is_root())
}

/// [`target`] for a caller that says whether it counts as root: rootless
/// podman runs its backend as root of its own user namespace only, so
/// that daemon lives under `$XDG_RUNTIME_DIR/berth` (netavark's `--rootless true`).
pub fn target_as(root_user: bool) -> Result<Target> {
    let host = std::env::var("BERTH_HOST").ok();
    let root_env = std::env::var("BERTH_ROOT").ok().map(PathBuf::from);
    target_for(host.as_deref(), root_env, ns_inode("/proc/thread-self/ns/net"), ns_inode("/proc/1/ns/net"), std::env::var("XDG_RUNTIME_DIR").ok(), root_user)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// [`target`] with its inputs given (pure).
pub fn target_for(host: Option<&str>, root: Option<PathBuf>, my_ns: u64, init_ns: u64, xdg: Option<String>, root_user: bool) -> Result<Target> {
    if let Some(h) = host {
        let socket = PathBuf::from(h.strip_prefix("unix://").ok_or_else(|| anyhow!("BERTH_HOST={h}: berth listens on a Unix socket, e.g. unix:///run/berth/berth.sock"))?);
        let exec_root = socket.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
        let root = root.unwrap_or_else(|| if socket == Path::new(berth_core::config::DEFAULT_SOCKET) { PathBuf::from(berth_core::config::DEFAULT_ROOT) } else { exec_root.join("root") });
        return Ok(Target { socket, exec_root, root });
    }
    if my_ns == init_ns && root_user {
        return Ok(Target {
            socket: PathBuf::from(berth_core::config::DEFAULT_SOCKET),
            exec_root: PathBuf::from(berth_core::config::DEFAULT_EXEC_ROOT),
            root: root.unwrap_or_else(|| PathBuf::from(berth_core::config::DEFAULT_ROOT)),
        });
    }
    let (run, lib) = if root_user {
        (PathBuf::from(berth_core::config::DEFAULT_EXEC_ROOT), PathBuf::from(berth_core::config::DEFAULT_ROOT))
    } else {
        let base = PathBuf::from(xdg.ok_or_else(|| anyhow!("XDG_RUNTIME_DIR is not set: a berth daemon for this user's namespace has nowhere to live"))?).join("berth");
        (base.clone(), base)
    };
    let exec_root = run.join(format!("ns-{my_ns}"));
    Ok(Target { socket: exec_root.join("berth.sock"), root: root.unwrap_or_else(|| lib.join(format!("ns-{my_ns}"))), exec_root })
}

/// Whether the daemon at `c` serves the caller's namespace: Ok(true) yes,
/// Ok(false) nothing answers, Err another namespace's daemon answered.
async fn check(c: &Client, t: &Target) -> Result<bool> {
    let Ok(r) = c.raw(Method::GET, "/info", None).await else { return Ok(false) };
    let v = r.json()?;
    let theirs = v["NetnsId"].as_u64().unwrap_or(0);
    let mine = ns_inode("/proc/thread-self/ns/net");
    if theirs != mine {
        bail!(
            "the berth daemon at unix://{} serves another network namespace (inode {theirs}, this one is {mine}): set BERTH_HOST to the socket of this namespace's daemon",
            t.socket.display()
        );
    }
    Ok(true)
}

/// A client of the daemon for the caller's namespace, starting the daemon
/// (detached) when none answers, waiting at most 20 s for it.
pub async fn connect_or_start(t: &Target) -> Result<Client> {
    let c = Client::new(Some(&format!("unix://{}", t.socket.display())))?;
    if check(&c, t).await? {
        return Ok(c);
    }
    std::fs::create_dir_all(&t.exec_root).with_context(|| format!("mkdir {}", t.exec_root.display()))?;
    // One starter at a time; the others wait here and then find it running.
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(t.exec_root.join("autostart.lock"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on an fd we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("locking {}: {}", t.exec_root.join("autostart.lock").display(), std::io::Error::last_os_error());
    }
    if check(&c, t).await? {
        return Ok(c);
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(t.exec_root.join("daemon.log"))?;
    let mut cmd = Command::new(std::env::current_exe().context("finding the berth binary")?);
    cmd.arg0("berth").arg("daemon").arg("--root").arg(&t.root).arg("--exec-root").arg(&t.exec_root).arg("--socket").arg(&t.socket);
    // Not a CNI plugin itself: the binary dispatches on CNI_COMMAND.
    cmd.env_remove("CNI_COMMAND");
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // Its own session: the runtime's process group, terminal and signals are not its.
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| if libc::setsid() < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
    let mut child = cmd.spawn().context("starting berth daemon")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check(&c, t).await? {
            // Not waited for: it outlives this call (and is reaped by init).
            std::mem::forget(child);
            return Ok(c);
        }
        if let Some(st) = child.try_wait()? {
            let log = std::fs::read_to_string(t.exec_root.join("daemon.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            bail!("the berth daemon started for this namespace exited ({st}): {}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the berth daemon started for this namespace did not answer on unix://{} within 20 s (see {})", t.socket.display(), t.exec_root.join("daemon.log").display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_daemon_per_namespace() {
        let t = target_for(None, None, 7, 7, None, true).unwrap();
        assert_eq!(t.socket, PathBuf::from("/run/berth/berth.sock"));
        assert_eq!(t.root, PathBuf::from("/var/lib/berth"));
        let t = target_for(None, None, 9, 7, None, true).unwrap();
        assert_eq!((t.socket.to_str().unwrap(), t.root.to_str().unwrap()), ("/run/berth/ns-9/berth.sock", "/var/lib/berth/ns-9"));
        let t = target_for(None, None, 9, 7, Some("/run/user/1000".into()), false).unwrap();
        assert_eq!(t.socket, PathBuf::from("/run/user/1000/berth/ns-9/berth.sock"));
        assert!(target_for(None, None, 9, 7, None, false).is_err());
        let t = target_for(Some("unix:///tmp/x/run/berth.sock"), None, 9, 7, None, true).unwrap();
        assert_eq!((t.exec_root.to_str().unwrap(), t.root.to_str().unwrap()), ("/tmp/x/run", "/tmp/x/run/root"));
        let t = target_for(Some("unix:///tmp/x/run/berth.sock"), Some("/tmp/x/root".into()), 9, 7, None, true).unwrap();
        assert_eq!(t.root, PathBuf::from("/tmp/x/root"));
        assert!(target_for(Some("tcp://1.2.3.4:1"), None, 9, 7, None, true).is_err());
    }
}
