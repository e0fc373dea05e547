//! A sandbox with real podman driving berth: the harness `Sandbox` (own
//! network and mount namespace, a daemon with private state), private
//! `/run` and `/dev/shm`, a cgroup2 subtree `berth-test-PID-N` removed at
//! the end, and podman with its state under the sandbox directory, its
//! backend the berth binary (as `netavark`), found through BERTH_HOST.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_linux::podman_sandbox::{private_run, CgroupTree, Podman};

use crate::common::{is_root, Sandbox, BERTH};

static SEQ: AtomicUsize = AtomicUsize::new(0);

pub struct PodmanBox {
    pub p: Podman,
    cg: Option<CgroupTree>,
    /// Dropped last: the daemon must outlive podman's teardowns.
    pub s: Sandbox,
}

fn have_podman() -> bool {
    ["podman", "runc", "conmon"].iter().all(|b| Command::new("sh").arg("-c").arg(format!("command -v {b}")).stdout(Stdio::null()).status().is_ok_and(|s| s.success()))
        && Path::new(berth_linux::podman_sandbox::BUSYBOX).exists()
}

/// The inode of this thread's network namespace (autostart's `ns-INODE`).
pub fn netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

impl PodmanBox {
    /// A sandbox with podman and a berth daemon; None (with a notice) when
    /// not root or podman is missing.
    pub fn new() -> Option<PodmanBox> {
        let mut b = Self::without_daemon()?;
        b.s.start_daemon();
        // podman's `container cleanup` processes (spawned by conmon when a
        // container exits) call the backend with a minimal environment, no
        // BERTH_HOST: they find the daemon where autostart looks for this
        // namespace's, so it is made to answer there too.
        let dir = PathBuf::from(format!("/run/berth/ns-{}", netns_inode()));
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(b.s.socket(), dir.join("berth.sock")).unwrap();
        Some(b)
    }

    /// The same without a daemon (the autostart test).
    pub fn without_daemon() -> Option<PodmanBox> {
        if !is_root() {
            eprintln!("skipped: root tests need root");
            return None;
        }
        if !have_podman() {
            eprintln!("skipped: podman, runc, conmon or busybox-static not installed (test.sh installs them)");
            return None;
        }
        let s = Sandbox::bare()?;
        private_run().expect("private /run and /dev/shm");
        let name = format!("berth-test-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let cg = CgroupTree::create(&name, &s.dir).expect("cgroup subtree");
        let p = Podman::new(&s.dir.join("podman"), Path::new(BERTH)).expect("podman state");
        Some(PodmanBox { p, cg: Some(cg), s })
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.s.socket().display())
    }

    /// podman ARGS with BERTH_HOST set.
    pub fn podman(&self, args: &[&str]) -> Output {
        self.p.cmd(args).env("BERTH_HOST", self.host()).stdin(Stdio::null()).output().expect("run podman")
    }

    fn explain(&self, what: &str, o: &Output) -> String {
        format!(
            "{what} ({}):\n{}{}\n--- daemon log ---\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.s.daemon_log()
        )
    }

    /// podman ARGS, which must succeed; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.podman(args);
        assert!(o.status.success(), "{}", self.explain(&format!("podman {args:?} failed"), &o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// podman ARGS, which must fail; stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.podman(args);
        assert!(!o.status.success(), "{}", self.explain(&format!("podman {args:?} should have failed"), &o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// `podman run OPTS... --rootfs ROOTFS CMD...`.
    pub fn run(&self, opts: &[&str], cmd: &[&str]) -> String {
        let args = self.p.run_args(opts, cmd);
        self.ok(&args.iter().map(String::as_str).collect::<Vec<_>>()).trim().to_string()
    }

    pub fn run_fails(&self, opts: &[&str], cmd: &[&str]) -> String {
        let args = self.p.run_args(opts, cmd);
        self.fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A detached busybox httpd answering `hello-from-container` on `port`
    /// (every `ports` given), once it listens.
    pub fn httpd(&self, name: &str, opts: &[&str], ports: &[u16]) -> String {
        let script: String = ports.iter().map(|p| format!("httpd -p {p} -h /www; ")).collect::<String>() + "exec sleep 100000";
        let mut o = vec!["-d", "--name", name];
        o.extend_from_slice(opts);
        let id = self.run(&o, &["/bin/sh", "-c", &script]);
        for p in ports {
            crate::common::wait_listening(self.pid(name), crate::common::Proto::Tcp, *p, name);
        }
        id
    }

    /// A container's main pid, from podman.
    pub fn pid(&self, name: &str) -> u32 {
        self.ok(&["inspect", "-f", "{{.State.Pid}}", name]).trim().parse().expect("a pid")
    }

    /// A container's network namespace path, from podman.
    pub fn netns(&self, name: &str) -> String {
        self.ok(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name]).trim().to_string()
    }

    /// Runs CMD in a container (`podman exec`).
    pub fn exec(&self, name: &str, cmd: &str) -> Output {
        self.podman(&["exec", name, "/bin/sh", "-c", cmd])
    }

    /// The berth front end itself, as podman calls it, with `stdin`.
    pub fn netavark(&self, args: &[&str], stdin: &[u8], env: &[(&str, String)]) -> Output {
        use std::io::Write;
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(BERTH);
        c.arg0("netavark").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.env("BERTH_HOST", self.host());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn the netavark front end");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Waits (at most 15 s) until `f` holds.
    pub fn eventually(&self, what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for: {what}\n--- daemon log ---\n{}", self.s.daemon_log());
    }
}


impl Drop for PodmanBox {
    fn drop(&mut self) {
        // podman's own teardowns first (the daemon still runs), then what
        // is left in the cgroup, by pid, and the cgroups.
        self.p.clean();
        // A daemon a front end started for this namespace (the autostart
        // test stops its own; this is for a test that failed half-way).
        for e in std::fs::read_dir("/run/berth").into_iter().flatten().flatten() {
            if let Some(pid) = std::fs::read_to_string(e.path().join("berth.pid")).ok().and_then(|s| s.trim().parse::<u32>().ok()) {
                stop_daemon(pid);
            }
        }
        if let Some(cg) = self.cg.take() {
            if let Err(e) = cg.remove() {
                eprintln!("podman test cleanup: {e}");
            }
        }
    }
}

/// Stops a berth daemon by its pid (SIGTERM, SIGKILL after 10 s) and
/// waits until it is gone; a pid that is not a berth daemon is left alone.
pub fn stop_daemon(pid: u32) {
    let is_berth = || std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|x| x == Path::new(BERTH)) && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ");
    if !is_berth() {
        return;
    }
    // SAFETY: signalling a berth daemon this test's front end started (checked by its exe).
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_berth() {
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
