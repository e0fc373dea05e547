//! Harness of the root tests: each test runs in its own network and mount
//! namespace (`berth_linux::sandbox`), starts its own daemon with private
//! state, and tears everything down when it ends. Tests skip (with a notice)
//! when not run as root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a shell command in the sandbox; panics with its output on failure.
pub fn sh(cmd: &str) -> String {
    let o = sh_out(cmd);
    assert!(o.status.success(), "`{cmd}` failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn sh_out(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

/// True when `cmd` succeeds.
pub fn ok(cmd: &str) -> bool {
    sh_out(cmd).status.success()
}

pub struct Sandbox {
    pub dir: PathBuf,
    daemon: Option<Child>,
    pub extra: Vec<String>,
    udp: std::sync::Mutex<Vec<UdpEcho>>,
    /// A "host" of a multi-host test: its daemon runs in this network
    /// namespace (inside the test's sandbox, which cleans up the rest).
    pub netns: Option<String>,
}

impl Sandbox {
    /// Enters a fresh namespace and starts a daemon; None when not root.
    pub fn new() -> Option<Sandbox> {
        Self::with_args(&[])
    }

    pub fn with_args(args: &[&str]) -> Option<Sandbox> {
        let mut s = Self::bare()?;
        s.extra = args.iter().map(|a| a.to_string()).collect();
        s.start_daemon();
        Some(s)
    }

    /// The namespace without a daemon.
    pub fn bare() -> Option<Sandbox> {
        if !is_root() {
            eprintln!("skipped: root tests need root");
            return None;
        }
        berth_linux::sandbox::enter().expect("enter sandbox");
        let dir = PathBuf::from(sh("mktemp -d /tmp/berth-test.XXXXXX").trim());
        Some(Sandbox { dir, daemon: None, extra: vec![], udp: Default::default(), netns: None })
    }

    /// A host of a multi-host test, already inside the test's sandbox: a
    /// daemon with its own root, exec root and socket under `dir`, run in
    /// network namespace `netns` (and, through `ip netns exec`, in a mount
    /// namespace of its own). Not started yet.
    pub fn host(dir: PathBuf, netns: &str, extra: &[String]) -> Sandbox {
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir, daemon: None, extra: extra.to_vec(), udp: Default::default(), netns: Some(netns.to_string()) }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/berth.sock")
    }

    pub fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("daemon.log")).unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BERTH]);
                c
            }
            None => Command::new(BERTH),
        };
        cmd.arg("daemon").arg("--root").arg(self.dir.join("root")).arg("--exec-root").arg(self.dir.join("run"));
        cmd.args(&self.extra).stdout(log.try_clone().unwrap()).stderr(log).stdin(Stdio::null());
        let child = cmd.spawn().expect("start daemon");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.berth(&["info"]).status.success() {
                return;
            }
            if let Some(st) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {st}: {}", self.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not come up: {}", self.daemon_log());
    }

    /// SIGTERM (graceful) or SIGKILL the daemon and wait for it.
    pub fn stop_daemon(&mut self, kill: bool) {
        if let Some(mut c) = self.daemon.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, if kill { libc::SIGKILL } else { libc::SIGTERM }) };
            let _ = c.wait();
        }
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().unwrap().id()
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.args(args).env("BERTH_HOST", format!("unix://{}", self.socket().display()));
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    /// Runs berth and returns stdout; panics with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(o.status.success(), "berth {args:?} failed ({}): {}\n--- daemon log ---\n{}", o.status, String::from_utf8_lossy(&o.stderr), self.daemon_log());
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs berth expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(!o.status.success(), "berth {args:?} should have failed but printed {}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0].clone()
    }

    /// IPv4 address of a container on a network.
    pub fn ip(&self, name: &str, net: &str) -> String {
        self.inspect(name)["NetworkSettings"]["Networks"][net]["IPAddress"].as_str().unwrap().to_string()
    }

    /// IPv6 address of a container on a network.
    pub fn ip6(&self, name: &str, net: &str) -> String {
        self.inspect(name)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"].as_str().unwrap().to_string()
    }

    /// `berth run -d` with a command string run by sh.
    pub fn run(&self, name: &str, opts: &[&str], script: &str) -> String {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        self.ok(&args).trim().to_string()
    }

    /// A container that answers `ok-from-NAME` on TCP `port`, over IPv4 and
    /// IPv6; returns once
    /// the server listens (`run -d` returns when the command has started,
    /// which is before it has bound its socket).
    pub fn server(&self, name: &str, opts: &[&str], port: u16) -> String {
        // Both families: an IPv6 socket that takes IPv4 too (as v4-mapped).
        let id = self.run(name, opts, &format!("exec socat TCP6-LISTEN:{port},ipv6only=0,fork,reuseaddr SYSTEM:'echo ok-from-{name}'"));
        self.wait_port(name, Proto::Tcp, port);
        id
    }

    /// A container that answers `reply` to every UDP datagram on `port`
    /// (bound when this returns). The server is a thread of the test in
    /// the container's network namespace: `socat UDP-RECVFROM,fork` is not
    /// one, as the child that answered a datagram lingers and may swallow
    /// the next one.
    pub fn udp_server(&self, name: &str, opts: &[&str], port: u16, reply: &str) -> String {
        let id = self.run(name, opts, "sleep 100000");
        let echo = UdpEcho::start(&format!("/proc/{}/ns/net", self.pid_of(name)), port, reply);
        self.udp.lock().unwrap().push(echo);
        id
    }

    /// Pid of a running container's command.
    pub fn pid_of(&self, name: &str) -> u32 {
        let v = self.inspect(name);
        v["State"]["Pid"].as_u64().filter(|p| *p > 0).unwrap_or_else(|| panic!("{name} is not running: {v}")) as u32
    }

    /// Waits until a server in container `name` has bound `port`.
    pub fn wait_port(&self, name: &str, proto: Proto, port: u16) {
        wait_listening(self.pid_of(name), proto, port, name);
    }

    /// Runs a command in a container; Output.
    pub fn exec(&self, name: &str, cmd: &str) -> Output {
        self.berth(&["exec", name, "--", "sh", "-c", cmd])
    }

    /// TCP request from a container (to a name, an IPv4 or an IPv6
    /// address); the answer or None.
    pub fn tcp_from(&self, name: &str, ip: &str, port: u16) -> Option<String> {
        let o = self.exec(name, &format!("socat -t5 -T5 - TCP:{}:{port},connect-timeout=1 </dev/null", bracket(ip)));
        let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
        (o.status.success() && !out.is_empty()).then_some(out)
    }

    /// ICMP (ICMPv6 for an IPv6 address) echo from a container.
    pub fn ping_from(&self, name: &str, ip: &str) -> bool {
        self.exec(name, &format!("ping -c1 -W1 {ip}")).status.success()
    }

    /// Dump of the daemon's store, for before/after comparisons.
    pub fn store_dump(&self) -> String {
        self.ok(&["debug-store"])
    }

    /// What the kernel shows of berth's world, for before/after comparisons.
    pub fn kernel_view(&self) -> String {
        // Names, MTUs, masters, MACs, addresses and routes of both
        // families; not the fields the kernel changes by itself (carrier
        // flags, timers, IPv6 routes' expiry and preference).
        let links = sh("ip -o link show | sed -E 's/<[^>]*>//; s/ state [A-Z]+//; s/ qlen [0-9]+//' | sort");
        // IPv6 link-local addresses (and their routes) are the kernel's own,
        // made and checked (tentative) in the background.
        let addrs = sh("ip -o addr show | grep -v ' inet6 fe80::' | sed -E 's/^[0-9]+: //; s/ valid_lft.*//' | sort");
        let routes = sh("(ip -4 route show table all; ip -6 route show table all) | grep -vE '(^| )fe80::' | sed -E 's/ expires [0-9]+sec//; s/ pref [a-z]+//' | sort");
        let nft = sh("nft list table inet berth 2>/dev/null | sort || true");
        format!("{links}\n{addrs}\n{routes}\n{nft}")
    }

    /// Makes an "outside" namespace wired to the sandbox as another machine:
    /// sandbox 10.99.0.1/24 and fd99::1/64 on `uplink`, the outsider
    /// 10.99.0.2/24 and fd99::2/64, with a route to each of `routes` (of
    /// either family) via the sandbox.
    pub fn outside(&self, routes: &[&str]) {
        sh("ip netns add outside && ip link add uplink type veth peer name eth0 netns outside");
        // No DAD: a link-local address still tentative sends no neighbour
        // solicitations for forwarded IPv6 (a long-running uplink has
        // settled long ago; this one was made a moment ago).
        sh("sysctl -qw net.ipv6.conf.uplink.accept_dad=0 && ip netns exec outside sysctl -qw net.ipv6.conf.eth0.accept_dad=0");
        sh("ip addr add 10.99.0.1/24 dev uplink && ip addr add fd99::1/64 dev uplink nodad && ip link set uplink up");
        sh("ip -n outside addr add 10.99.0.2/24 dev eth0 && ip -n outside addr add fd99::2/64 dev eth0 nodad && ip -n outside link set eth0 up && ip -n outside link set lo up");
        for r in routes {
            let via = if r.contains(':') { "fd99::1" } else { "10.99.0.1" };
            sh(&format!("ip -n outside route add {r} via {via}"));
        }
    }

    /// A TCP server in the "outside" namespace that answers every
    /// connection with the address it came from (IPv4, or with `v6` IPv6);
    /// stopped when dropped.
    pub fn outside_echo_peer(&self, port: u16) -> Bg {
        self.outside_echo(port, "TCP4")
    }

    pub fn outside_echo_peer6(&self, port: u16) -> Bg {
        self.outside_echo(port, "TCP6")
    }

    fn outside_echo(&self, port: u16, kind: &str) -> Bg {
        let bg = Bg::in_netns("outside", &format!("socat {kind}-LISTEN:{port},fork,reuseaddr SYSTEM:'echo $SOCAT_PEERADDR'"));
        bg.wait_listening(Proto::Tcp, port);
        bg
    }

    /// Waits until `f` holds (polling), for asynchronous effects.
    pub fn eventually(&self, what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for: {what}\n--- daemon log ---\n{}", self.daemon_log());
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.udp.lock().unwrap().clear();
        if self.daemon.is_none() && self.socket().exists() {
            self.start_daemon_quiet();
        }
        if self.daemon.is_some() {
            let ids = String::from_utf8_lossy(&self.berth(&["ps", "-a", "-q"]).stdout).into_owned();
            for id in ids.split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]);
            }
        }
        self.stop_daemon(false);
        // Anything a failed test left: every shim records its own pid and
        // its command's (which leads a process group) in its runtime dir;
        // each is killed by pid, after checking it is still that process.
        berth_linux::shim::kill_all_under(&self.dir.join("run/containers"));
        if self.netns.is_some() {
            // A host: the test's sandbox removes namespaces, mounts and files.
            return;
        }
        let _ = sh_out("for n in $(ip netns list | cut -d' ' -f1); do ip netns pids $n | xargs -r kill -9; ip netns del $n; done");
        // Filesystems a test mounted under its directory (in its private
        // mount namespace), deepest first.
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/thread-self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = sh_out(&format!("umount -l {m}"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Sandbox {
    fn start_daemon_quiet(&mut self) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.start_daemon())).is_err() {
            self.daemon = None;
        }
    }
}

pub use berth_core::model::Proto;

/// Waits (at most 15 s) until a server in the network namespace of `pid`
/// has bound `port`; panics naming `what` if not.
pub fn wait_listening(pid: u32, proto: Proto, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !berth_linux::ports::listening_in(pid, proto == Proto::Udp, port) {
        assert!(Instant::now() < deadline, "{what} (pid {pid}) never bound {port}/{proto}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process a test runs in the background (a server in another
/// namespace, a listener on the host), in its own process group; dropping
/// it kills that group by its pid and reaps it.
pub struct Bg {
    child: Child,
}

impl Bg {
    /// `sh -c 'exec CMD'` in this (the sandbox's) namespace.
    pub fn spawn(cmd: &str) -> Bg {
        Self::from_command(Command::new("sh").arg("-c").arg(format!("exec {cmd}")))
    }

    /// `ip netns exec NS sh -c 'exec CMD'`.
    pub fn in_netns(ns: &str, cmd: &str) -> Bg {
        Self::from_command(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", &format!("exec {cmd}")]))
    }

    fn from_command(cmd: &mut Command) -> Bg {
        use std::os::unix::process::CommandExt;
        let child = cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        Bg { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until this process has bound `port`.
    pub fn wait_listening(&self, proto: Proto, port: u16) {
        wait_listening(self.pid(), proto, port, "background server");
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // SAFETY: the group this test started (the child leads it).
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// One UDP request and its first reply (within 5 s), sent from the network
/// namespace at `netns` (None: the sandbox's own), optionally from a fixed
/// source port. A client that waits for the reply, unlike socat reading
/// from a pipe, which gives up half a second after its input ends however
/// slow the server is.
pub fn udp_ask(netns: Option<&str>, to: &str, source_port: Option<u16>) -> Option<String> {
    let (netns, to) = (netns.map(str::to_string), to.to_string());
    std::thread::spawn(move || -> Option<String> {
        if let Some(ns) = netns {
            let f = std::fs::File::open(&ns).expect("open netns");
            use std::os::fd::AsRawFd;
            // SAFETY: this short-lived thread enters the namespace and ends there.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
        }
        let any = if to.starts_with('[') { "::" } else { "0.0.0.0" };
        let sock = std::net::UdpSocket::bind((any, source_port.unwrap_or(0))).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.connect(&to).ok()?;
        sock.send(b"q\n").ok()?;
        let mut buf = [0u8; 1500];
        let n = sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    })
    .join()
    .expect("udp client thread")
}

/// A UDP server thread in a network namespace: answers every datagram on
/// `port`, either family, with a fixed reply; stopped (and joined) when
/// dropped.
pub struct UdpEcho {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpEcho {
    pub fn start(netns: &str, port: u16, reply: &str) -> UdpEcho {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(netns).unwrap_or_else(|e| panic!("{netns}: {e}"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (flag, reply) = (stop.clone(), reply.to_string());
        let thread = std::thread::spawn(move || {
            // SAFETY: this thread enters the namespace and ends there.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            // [::] takes IPv4 too (as v4-mapped) unless bindv6only is set.
            let sock = std::net::UdpSocket::bind(("::", port)).expect("bind");
            sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 1500];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(format!("{reply}\n").as_bytes(), peer);
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("UDP server bound");
        UdpEcho { stop, thread: Some(thread) }
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `[ADDR]` for an IPv6 address (as socat and URLs want it), else as is.
pub fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// A path under the sandbox's private /run/netns.
pub fn netns(name: &str) -> String {
    sh(&format!("ip netns add {name}"));
    Path::new("/run/netns").join(name).display().to_string()
}

/// A raw HTTP/1.1 request on the daemon's socket: (status, body).
pub fn http(s: &Sandbox, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(s.socket()).expect("connect to daemon");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    let _ = c.write_all(body);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A small seeded generator (xorshift64) for the randomized suites, so a
/// printed seed replays a run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// `curl URL` from the sandbox (the host) or from the netns `from`: the
/// body, or None when curl fails or answers nothing.
pub fn curl(from: Option<&str>, url: &str) -> Option<String> {
    let cmd = format!("curl -s -m 5 {url}");
    let o = match from {
        None => Command::new("sh").arg("-c").arg(&cmd).output(),
        Some(ns) => Command::new("ip").args(["netns", "exec", ns, "sh", "-c", &cmd]).output(),
    }
    .ok()?;
    let body = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !body.is_empty()).then_some(body)
}
