//! Real podman inside a sandbox (`crate::sandbox`), for the podman tests
//! and `berth bench-podman`: everything podman, conmon and runc write goes
//! to a temporary directory or to mounts private to the sandbox's mount
//! namespace, and their cgroups to a subtree that is removed afterwards.
//!
//! - podman hard-codes `/run/containers/networks`, `/run/netns`,
//!   `/run/libpod`; runc keeps `/run/runc`; the shm lock is
//!   `/dev/shm/libpod_lock`: private tmpfs on `/run` and `/dev/shm`.
//! - cgroups: a cgroup2 subtree `NAME` bind-mounted on `/sys/fs/cgroup`, so
//!   podman sees a plain cgroup v2 tree (this machine's hybrid layout makes
//!   crun refuse and leaves runc's v1 cgroups behind) and every cgroup it
//!   or runc makes lands below `NAME`. It has no pids controller: podman
//!   runs with `pids_limit = 0`.
//! - the backend: `HELPERS/netavark`, a symlink to the binary to test
//!   (berth, or Debian's netavark), found through `helper_binaries_dir` in
//!   a containers.conf of its own (`CONTAINERS_CONF`: podman then reads no
//!   other).
//! - containers run `--rootfs` on a busybox tree (no image registry here).

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::sandbox::mount;

/// Where Debian's busybox-static lives.
pub const BUSYBOX: &str = "/bin/busybox";

/// podman's ulimit flags for every run: this machine's hard nofile limit
/// is below podman's default request.
pub const ULIMITS: [&str; 4] = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Private tmpfs on `/run` (with `/run/netns` and `/run/berth` in it) and
/// `/dev/shm`. Hides the sandbox's earlier `/run/netns` and `/run/berth`
/// mounts: call it before making namespaces or starting a daemon.
pub fn private_run() -> io::Result<()> {
    mount("tmpfs", "/run", "tmpfs", 0)?;
    for d in ["/run/netns", "/run/berth"] {
        std::fs::create_dir_all(d)?;
    }
    mount("tmpfs", "/dev/shm", "tmpfs", 0)
}

fn umount(path: &Path) {
    if let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A cgroup2 subtree of the sandbox, shown as `/sys/fs/cgroup`.
pub struct CgroupTree {
    /// The whole cgroup2 hierarchy, mounted privately (to remove the subtree).
    root: PathBuf,
    pub name: String,
}

impl CgroupTree {
    /// Makes subtree `name` (e.g. `berth-test-1234-podman`) and mounts it on
    /// `/sys/fs/cgroup`; `scratch` is a private directory for the root mount.
    pub fn create(name: &str, scratch: &Path) -> io::Result<CgroupTree> {
        let root = scratch.join("cgroup2");
        std::fs::create_dir_all(&root)?;
        mount("none", root.to_str().ok_or_else(|| other("path"))?, "cgroup2", 0)?;
        let tree = CgroupTree { root, name: name.to_string() };
        std::fs::create_dir(tree.path())?;
        mount(tree.path().to_str().ok_or_else(|| other("path"))?, "/sys/fs/cgroup", "", libc::MS_BIND)?;
        Ok(tree)
    }

    pub fn path(&self) -> PathBuf {
        self.root.join(&self.name)
    }

    /// Every process in the subtree.
    pub fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut dirs = vec![self.path()];
        while let Some(d) = dirs.pop() {
            out.extend(std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default().lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
        }
        out
    }

    /// Kills what is left in the subtree (by pid, SIGKILL), waits until it
    /// is empty (at most 10 s), removes every cgroup in it, deepest first,
    /// and the mounts.
    pub fn remove(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(other(format!("cgroup {} still has processes {pids:?}", self.name)));
            }
            for p in pids {
                // SAFETY: a pid read from our own subtree a moment ago.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        umount(Path::new("/sys/fs/cgroup"));
        let mut dirs = vec![self.path()];
        let mut all = Vec::new();
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
            all.push(d);
        }
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        let mut r = Ok(());
        for d in all {
            if let Err(e) = std::fs::remove_dir(&d) {
                r = Err(other(format!("rmdir {}: {e}", d.display())));
            }
        }
        umount(&self.root);
        r
    }
}

/// A busybox tree for `podman run --rootfs`: the static busybox, one
/// link per applet, `/etc/passwd`, `/etc/group`, `/www/index.html`.
pub fn busybox_rootfs(dir: &Path) -> io::Result<PathBuf> {
    let r = dir.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "www", "run"] {
        std::fs::create_dir_all(r.join(d))?;
    }
    std::fs::copy(BUSYBOX, r.join("bin/busybox"))?;
    let list = Command::new(BUSYBOX).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| !a.is_empty() && *a != "busybox") {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(applet))?;
    }
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(r.join("etc/group"), "root:x:0:\n")?;
    std::fs::write(r.join("www/index.html"), "hello-from-container\n")?;
    Ok(r)
}

/// One podman installation: its state under `dir`, its backend `backend`.
pub struct Podman {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    conf: PathBuf,
}

impl Podman {
    /// Writes the helpers directory (netavark → `backend`), the
    /// containers.conf and the busybox tree under `dir`.
    pub fn new(dir: &Path, backend: &Path) -> io::Result<Podman> {
        let helpers = dir.join("helpers");
        std::fs::create_dir_all(&helpers)?;
        std::os::unix::fs::symlink(backend, helpers.join("netavark"))?;
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            format!(
                "[containers]\npids_limit = 0\n[network]\nnetwork_backend = \"netavark\"\n[engine]\nhelper_binaries_dir = [\"{}\"]\n",
                helpers.display()
            ),
        )?;
        Ok(Podman { dir: dir.to_path_buf(), rootfs: busybox_rootfs(dir)?, conf })
    }

    /// `podman GLOBAL-FLAGS ARGS...` with this installation's state and configuration.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let d = |s: &str| self.dir.join(s).display().to_string();
        let mut c = Command::new("podman");
        c.args(["--root", &d("root"), "--runroot", &d("runroot"), "--tmpdir", &d("tmp"), "--network-config-dir", &d("net")]);
        c.args(["--cgroup-manager", "cgroupfs", "--runtime", "runc", "--storage-driver", "vfs", "--events-backend", "file"]);
        c.args(args).env("CONTAINERS_CONF", &self.conf).env_remove("RUST_LOG").env_remove("RUST_BACKTRACE");
        c
    }

    /// `podman run ARGS... --rootfs ROOTFS CMD...` (`--rootfs` ends podman's options).
    pub fn run_args(&self, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into()];
        v.extend(opts.iter().map(|s| s.to_string()));
        v.extend(ULIMITS.iter().map(|s| s.to_string()));
        v.push("--rootfs".into());
        v.push(self.rootfs.display().to_string());
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    }

    /// Removes every container (`rm -af -t 0`) and network (`network prune -f`).
    pub fn clean(&self) {
        let _ = self.cmd(&["rm", "-af", "-t", "0"]).output();
        let _ = self.cmd(&["network", "prune", "-f"]).output();
    }
}
