//! The container shim: one small process per `berth run` container.
//!
//! The daemon starts it (`berth shim ...`, the same binary) already inside
//! fresh network, UTS and mount namespaces, in its own session. It waits
//! until the daemon has plumbed the network, then sets the hostname, mounts
//! the container's `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` over
//! the host's (visible only in its private mount namespace), starts the
//! command in its own process group with output going to the log file, and
//! waits for it. The exit status goes to a file, so a daemon that was
//! restarted meanwhile still learns it. The shim keeps the namespaces alive
//! while the command runs and survives daemon restarts (live-restore).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Context, LinuxError, Result};

/// What the shim needs, written by the daemon as JSON next to the runtime files.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShimSpec {
    pub id: String,
    pub hostname: String,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Runtime directory: hosts, resolv.conf, hostname, pid and exit files.
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// What the shim reports once the command runs (also kept in `DIR/shim.json`).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct ShimState {
    pub shim_pid: u32,
    pub shim_start: u64,
    pub pid: u32,
}

pub fn hosts_path(dir: &Path) -> PathBuf {
    dir.join("hosts")
}
pub fn resolv_path(dir: &Path) -> PathBuf {
    dir.join("resolv.conf")
}
pub fn hostname_path(dir: &Path) -> PathBuf {
    dir.join("hostname")
}
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("shim.json")
}
pub fn exit_path(dir: &Path) -> PathBuf {
    dir.join("exit")
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The daemon's handle on a shim that is waiting for the go-ahead.
pub struct PendingShim {
    pub pid: u32,
    go: File,
    status: File,
    child: std::process::Child,
}

/// Starts `EXE shim SPEC GOFD STATUSFD` in new namespaces and a new session.
pub fn spawn(exe: &Path, spec_file: &Path) -> Result<PendingShim> {
    let (go_r, go_w) = pipe().ctx(|| "pipe".into())?;
    let (st_r, st_w) = pipe().ctx(|| "pipe".into())?;
    let (go_fd, st_fd) = (go_r.as_raw_fd(), st_w.as_raw_fd());
    let mut cmd = Command::new(exe);
    cmd.arg("shim").arg(spec_file).arg(go_fd.to_string()).arg(st_fd.to_string());
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for fd in [go_fd, st_fd] {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    crate::count_process();
    let child = cmd.spawn().ctx(|| format!("start {} shim", exe.display()))?;
    drop(go_r);
    drop(st_w);
    Ok(PendingShim { pid: child.id(), go: File::from(go_w), status: File::from(st_r), child })
}

impl PendingShim {
    /// Lets the shim start the command; returns once it runs.
    pub fn go(mut self) -> Result<ShimState> {
        self.go.write_all(b"g").ctx(|| "signal shim".into())?;
        drop(self.go);
        let s = read_with_deadline(&mut self.status, std::time::Duration::from_secs(30)).ctx(|| "read shim status".into())?;
        // The shim stays alive (it waits for the command); we never wait() on
        // it here: the daemon watches it by pidfd, and a restarted daemon can too.
        std::mem::forget(self.child);
        match serde_json::from_str::<Result<ShimState, String>>(&s) {
            Ok(Ok(st)) => Ok(st),
            Ok(Err(msg)) => Err(LinuxError::kernel("start container command", io::Error::other(msg))),
            Err(_) => Err(LinuxError::kernel("start container command", io::Error::other("shim exited without starting the command"))),
        }
    }

    /// Abandons the container: the shim sees EOF and exits without running anything.
    pub fn abort(mut self) {
        drop(self.go);
        let _ = self.child.wait();
    }
}

/// Reads until EOF, giving up after `limit` (a stuck shim must not hang a request).
fn read_with_deadline(f: &mut File, limit: std::time::Duration) -> io::Result<String> {
    let deadline = std::time::Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the shim did not report within 30 s"));
        }
        let mut pfd = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            continue;
        }
        match f.read(&mut buf)? {
            0 => return Ok(String::from_utf8_lossy(&out).into_owned()),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reaps a shim that is our child, if it has exited (the daemon's own
/// children would otherwise stay zombies).
pub fn reap(pid: u32) {
    // SAFETY: waitpid on a specific pid with WNOHANG; status unused.
    unsafe {
        let mut st = 0;
        libc::waitpid(pid as i32, &mut st, libc::WNOHANG);
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn bind(src: &Path, dst: &str) -> io::Result<()> {
    let (s, d) = (cstr(&src.to_string_lossy()), cstr(dst));
    // SAFETY: valid strings; a plain bind mount.
    if unsafe { libc::mount(s.as_ptr(), d.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) } != 0 {
        return Err(io::Error::other(format!("bind {} over {dst}: {}", src.display(), io::Error::last_os_error())));
    }
    Ok(())
}

fn setup(spec: &ShimSpec) -> io::Result<()> {
    let host = cstr(&spec.hostname);
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        if libc::sethostname(host.as_ptr(), spec.hostname.len()) != 0 {
            return Err(io::Error::other(format!("sethostname: {}", io::Error::last_os_error())));
        }
        // Our mounts must never propagate back to the host.
        let root = cstr("/");
        if libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_SLAVE, std::ptr::null()) != 0 {
            return Err(io::Error::other(format!("make / rslave: {}", io::Error::last_os_error())));
        }
    }
    bind(&hosts_path(&spec.dir), "/etc/hosts")?;
    bind(&resolv_path(&spec.dir), "/etc/resolv.conf")?;
    if Path::new("/etc/hostname").exists() {
        bind(&hostname_path(&spec.dir), "/etc/hostname")?;
    }
    Ok(())
}

/// The variables every container process starts with.
pub fn base_env(hostname: &str) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("HOSTNAME".into(), hostname.into()),
        ("HOME".into(), "/root".into()),
    ]
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, path)
}

/// Entry point of `berth shim SPEC GOFD STATUSFD`. Never returns.
pub fn main(spec_file: &Path, go_fd: RawFd, status_fd: RawFd) -> ! {
    // SAFETY: the daemon passed these fds to us; nobody else owns them. They
    // must not leak into the command, or the daemon would never see EOF.
    let (mut go, mut status) = unsafe {
        libc::fcntl(go_fd, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(status_fd, libc::F_SETFD, libc::FD_CLOEXEC);
        (File::from_raw_fd(go_fd), File::from_raw_fd(status_fd))
    };
    // Stray terminal signals must not take the shim down.
    // SAFETY: setting dispositions to SIG_IGN.
    unsafe {
        for s in [libc::SIGINT, libc::SIGHUP, libc::SIGTERM, libc::SIGPIPE] {
            libc::signal(s, libc::SIG_IGN);
        }
    }
    let mut b = [0u8; 1];
    if go.read(&mut b).unwrap_or(0) == 0 {
        std::process::exit(1); // the daemon gave up on this container
    }
    let report = |status: &mut File, r: Result<ShimState, String>| {
        let _ = status.write_all(serde_json::to_string(&r).unwrap_or_default().as_bytes());
    };
    let spec: ShimSpec = match std::fs::read(spec_file).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
        Ok(s) => s,
        Err(e) => {
            report(&mut status, Err(format!("read {}: {e}", spec_file.display())));
            std::process::exit(1);
        }
    };
    if let Err(e) = setup(&spec) {
        report(&mut status, Err(e.to_string()));
        std::process::exit(1);
    }
    let log = match OpenOptions::new().create(true).append(true).open(&spec.log) {
        Ok(f) => f,
        Err(e) => {
            report(&mut status, Err(format!("open log {}: {e}", spec.log.display())));
            std::process::exit(1);
        }
    };
    let mut cmd = Command::new(&spec.cmd[0]);
    // A container starts with a clean environment, as in Docker: PATH,
    // HOSTNAME, HOME, then the user's and the links' variables.
    cmd.args(&spec.cmd[1..]).env_clear().envs(base_env(&spec.hostname)).envs(spec.env.iter().cloned()).current_dir("/").process_group(0);
    cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("dup log")).stderr(log);
    // SAFETY: restore default signal dispositions in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            for s in [libc::SIGINT, libc::SIGHUP, libc::SIGTERM, libc::SIGPIPE] {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            report(&mut status, Err(format!("exec {:?}: {e}", spec.cmd[0])));
            std::process::exit(1);
        }
    };
    let me = std::process::id();
    let st = ShimState { shim_pid: me, shim_start: crate::proc::start_time(me).unwrap_or(0), pid: child.id() };
    let _ = write_atomic(&state_path(&spec.dir), serde_json::to_string(&st).unwrap_or_default().as_bytes());
    report(&mut status, Ok(st));
    drop(status);
    let code = match child.wait() {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(_) => 255,
    };
    // Take down anything the command left running in its process group.
    // SAFETY: signalling our own child's process group.
    unsafe {
        libc::kill(-(st.pid as i32), libc::SIGKILL);
    }
    let _ = write_atomic(&exit_path(&spec.dir), code.to_string().as_bytes());
    std::process::exit(0);
}

/// Exit status recorded by a shim, if it has finished.
pub fn read_exit(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(exit_path(dir)).ok()?.trim().parse().ok()
}

pub fn read_state(dir: &Path) -> Option<ShimState> {
    serde_json::from_slice(&std::fs::read(state_path(dir)).ok()?).ok()
}

/// `kill -SIG -PGID`: signals the command's whole process group.
pub fn signal_group(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group.
    unsafe {
        libc::kill(-(pid as i32), sig);
    }
}

/// `pidfd_open(pid)`: a file descriptor that becomes readable when the process exits.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: raw syscall returning a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Kills every container process whose shim recorded its state under
/// `containers_dir` (an exec root's `containers/`): each shim and its
/// command's process group, by the pids the shim wrote, after checking by
/// start time that the pid is still that shim. For tearing down a private
/// daemon's containers when the daemon itself can no longer be asked.
pub fn kill_all_under(containers_dir: &Path) {
    for entry in std::fs::read_dir(containers_dir).into_iter().flatten().flatten() {
        let Some(s) = read_state(&entry.path()) else { continue };
        if crate::proc::is_same_process(s.shim_pid, s.shim_start) {
            signal_group(s.pid, libc::SIGKILL);
            // SAFETY: signalling a process identified by pid and start time.
            unsafe { libc::kill(s.shim_pid as i32, libc::SIGKILL) };
        }
    }
}
