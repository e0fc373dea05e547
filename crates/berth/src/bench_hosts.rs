//! `berth bench --hosts N`: what berth promises for networks that span
//! hosts, measured on this machine in one run, each figure beside its
//! reference:
//!
//! 1. convergence: a container started on host A is reachable *by name*
//!    from a container on host B (through B's embedded resolver) how soon
//!    after `run -d` returned;
//! 2. throughput container to container across two hosts, as a ratio to a
//!    VXLAN link made by hand between the same two host namespaces;
//! 3. kernel objects on one host as the cluster grows: what grows per
//!    remote host and what per remote container;
//! 4. etcd traffic per container start (the daemons' own counters).
//!
//! Everything runs in a private sandbox laid out as the cluster tests'
//! (`tests/cluster_support`): the sandbox's own namespace is the LAN's
//! switch (bridge `lan`, 10.90.0.254/24) and the etcd machine; host `i` is
//! namespace `hI` with `eth0` 10.90.0.(i+1)/24 and a daemon named `host-I`
//! run with `ip netns exec` (so it has its own mount namespace too). etcd
//! (Debian's) keeps its data under the bench's temporary directory. The
//! [`Lab`] guard kills daemons, container processes, servers and etcd by
//! PID and removes the directory, also when a step fails; the namespaces
//! go with the sandbox.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hyper::Method;
use serde_json::{json, Value};

use crate::bench::{interleaved, settle, sh, verdict};
use crate::client::{Client, Reply};

/// What `berth bench` passes on (see `BenchArgs`).
pub(crate) struct Opts {
    /// Hosts for convergence and throughput.
    pub hosts: usize,
    /// Containers of the big object count (on [`BIG`] hosts).
    pub containers: usize,
    /// Throughput rounds (`interleaved`).
    pub rounds: usize,
    pub throughput: bool,
}

const LAN: &str = "10.90.0.254";
const ETCD: &str = "10.90.0.254:2379";
/// The daemons' default liveness TTL: keep-alives go out every TTL/3, as
/// in production.
const TTL: u64 = 15;
/// The two sizes of the object count: (SMALL hosts, SMALL*PER_HOST
/// containers) and (BIG hosts, --containers).
const SMALL: usize = 3;
const BIG: usize = 20;
const PER_HOST: usize = 50;
/// Container starts measured for convergence and etcd traffic.
const STARTS: usize = 50;
/// The longest a single convergence probe waits.
const PROBE_LIMIT: Duration = Duration::from_secs(5);
/// The longest any API request may take before the bench gives up.
const API_LIMIT: Duration = Duration::from_secs(30);
/// Overlay subnets: convergence/throughput, object count.
const CONV_NET: &str = "conv";
const OBJ_NET: &str = "objs";

pub fn run(o: &Opts) -> ExitCode {
    crate::local::run_sandboxed("bench --hosts", || async { bench(o).await.map(|()| 0) })
}

// ---------------------------------------------------------------- the lab

/// One host: its namespace, its daemon (a child of ours: `ip netns exec`
/// execs the daemon, so the PID is the daemon's) and a client on its socket.
struct Host {
    name: String,
    ns: String,
    dir: PathBuf,
    daemon: Child,
    client: Client,
}

/// The LAN, etcd and the hosts. Dropping it stops everything it started,
/// by PID, whatever state a failed step left.
struct Lab {
    dir: PathBuf,
    etcd: Option<Child>,
    hosts: Vec<Host>,
    /// Servers outside containers (the by-hand VXLAN's iperf3).
    servers: Vec<Child>,
    resolv_bound: bool,
    t0: Instant,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &self.hosts {
            berth_linux::shim::kill_all_under(&h.dir.join("run/containers"));
        }
        for h in &mut self.hosts {
            let _ = h.daemon.kill();
            let _ = h.daemon.wait();
        }
        // A start in flight when its daemon died may have left a process.
        for h in &self.hosts {
            berth_linux::shim::kill_all_under(&h.dir.join("run/containers"));
        }
        for s in &mut self.servers {
            // SAFETY: signalling the process group of a child we started (it leads it).
            unsafe { libc::kill(-(s.id() as i32), libc::SIGKILL) };
            let _ = s.wait();
        }
        if let Some(e) = &mut self.etcd {
            let _ = e.kill();
            let _ = e.wait();
        }
        if self.resolv_bound {
            let _ = sh("umount /etc/resolv.conf");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last `n` lines of a log file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// This binary, as a path that stays valid if the file is replaced while
/// the bench runs (a rebuild): `/proc/self/exe` would name `ip` once `ip
/// netns exec` has exec'ed it.
fn exe() -> String {
    format!("/proc/{}/exe", std::process::id())
}

impl Lab {
    /// The LAN and a running etcd.
    fn new() -> Result<Lab> {
        let dir = PathBuf::from(sh("mktemp -d /tmp/berth-hosts.XXXXXX")?.trim());
        let mut lab = Lab { dir, etcd: None, hosts: vec![], servers: vec![], resolv_bound: false, t0: Instant::now() };
        sh(&format!("ip link add lan type bridge && ip addr add {LAN}/24 dev lan && ip link set lan up"))?;
        // Names nobody in the cluster has are forwarded to the LAN machine,
        // which refuses them at once (nothing listens on its port 53):
        // nothing leaves the sandbox and a probe for a name not yet known
        // gets its answer without waiting for a timeout.
        let resolv = lab.dir.join("resolv.conf");
        std::fs::write(&resolv, format!("nameserver {LAN}\n"))?;
        sh(&format!("mount --bind {} /etc/resolv.conf", resolv.display()))?;
        lab.resolv_bound = true;
        lab.start_etcd()?;
        Ok(lab)
    }

    fn progress(&self, what: &str) {
        eprintln!("[{:6.1} s] {what}", self.t0.elapsed().as_secs_f64());
    }

    /// etcd on the LAN address; returns once it says it is healthy (at most 20 s).
    fn start_etcd(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("etcd.log"))?;
        let url = format!("http://{ETCD}");
        let child = Command::new("etcd")
            .args(["--name", "e", "--data-dir"])
            .arg(self.dir.join("etcd"))
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-cluster", "e=http://127.0.0.1:2380"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting etcd (apt-get install etcd-server)")?;
        self.etcd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if etcd_healthy() {
                return Ok(());
            }
            if let Some(st) = self.etcd.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("etcd exited ({st}): {}", tail(&self.dir.join("etcd.log"), 20));
            }
            if Instant::now() > deadline {
                bail!("etcd not healthy after 20 s: {}", tail(&self.dir.join("etcd.log"), 20));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Grows the cluster to `n` hosts: namespaces, LAN links and daemons;
    /// returns once every daemon answers, says it is connected to etcd, and
    /// host-0 sees all `n` alive (at most 90 s: 17 daemons starting at
    /// once on 2 loaded cores take a while).
    async fn grow(&mut self, n: usize) -> Result<()> {
        let from = self.hosts.len();
        if n <= from {
            return Ok(());
        }
        for i in from..n {
            let ns = format!("h{i}");
            sh(&format!(
                "ip netns add {ns} && ip link add lan{i} type veth peer name eth0 netns {ns} && ip link set lan{i} master lan up && \
                 ip -n {ns} addr add 10.90.0.{}/24 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up && \
                 ip -n {ns} route add default via {LAN}",
                i + 1
            ))?;
            let dir = self.dir.join(format!("host-{i}"));
            std::fs::create_dir_all(&dir)?;
            let log = std::fs::File::create(dir.join("daemon.log"))?;
            let daemon = Command::new("ip")
                .args(["netns", "exec", &ns, &exe(), "daemon", "--log-level", "warn", "--root"])
                .arg(dir.join("root"))
                .arg("--exec-root")
                .arg(dir.join("run"))
                .args(["--cluster-store", &format!("etcd://{ETCD}"), "--cluster-advertise", "eth0", "--node-name", &format!("host-{i}")])
                .args(["--cluster-store-opt", &format!("discovery.ttl={TTL}s,blocks.grace=120s")])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting the daemon of host-{i}"))?;
            let client = Client::new(Some(&format!("unix://{}", dir.join("run/berth.sock").display())))?;
            self.hosts.push(Host { name: format!("host-{i}"), ns, dir, daemon, client });
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        for h in &mut self.hosts[from..] {
            loop {
                if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), h.client.raw(Method::GET, "/_ping", None)).await {
                    if r.status.is_success() {
                        break;
                    }
                }
                if let Some(st) = h.daemon.try_wait()? {
                    bail!("the daemon of {} exited ({st}): {}", h.name, tail(&h.dir.join("daemon.log"), 20));
                }
                if Instant::now() > deadline {
                    bail!("the daemon of {} did not answer within 90 s: {}", h.name, tail(&h.dir.join("daemon.log"), 20));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        loop {
            let mut missing = vec![];
            for h in &self.hosts {
                let v = get(&h.client, "/info").await?;
                if v["Cluster"]["Connected"].as_bool() != Some(true) {
                    missing.push(format!("{} not connected to etcd", h.name));
                }
            }
            let nodes = get(&self.hosts[0].client, "/nodes").await?;
            let alive = nodes["Nodes"].as_array().map_or(0, |a| a.iter().filter(|x| x["Alive"].as_bool() == Some(true)).count());
            if alive != n {
                missing.push(format!("host-0 sees {alive} of {n} hosts alive"));
            }
            if missing.is_empty() {
                self.progress(&format!("{n} hosts up"));
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("cluster of {n} hosts not ready within 90 s: {}", missing.join("; "));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most 30 s) until every host has network `name` (or, with
    /// `present` false, none has it any more).
    async fn wait_network(&self, name: &str, present: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut all = true;
            for h in &self.hosts {
                let has = matches!(tokio::time::timeout(API_LIMIT, h.client.call(Method::GET, &format!("/networks/{name}"), None)).await, Ok(Ok(_)));
                if has != present {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("network {name} not {} on every host within 30 s", if present { "present" } else { "gone" });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// StoreRequests and StoreBytes of every host, in host order.
    async fn store_counters(&self) -> Result<Vec<(u64, u64)>> {
        let mut v = vec![];
        for h in &self.hosts {
            let i = get(&h.client, "/info").await?;
            let c = &i["Cluster"];
            v.push((c["StoreRequests"].as_u64().context("/info has no Cluster.StoreRequests")?, c["StoreBytes"].as_u64().unwrap_or(0)));
        }
        Ok(v)
    }
}

/// `GET path` on etcd's client port, where HTTP/1 is served next to gRPC;
/// the whole response, or None if etcd does not answer within `limit`.
fn etcd_http(path: &str, limit: Duration) -> Option<String> {
    let addr = SocketAddr::from(([10, 90, 0, 254], 2379));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: etcd\r\n\r\n").as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn etcd_healthy() -> bool {
    etcd_http("/health", Duration::from_millis(500)).is_some_and(|b| b.contains("\"health\":\"true\""))
}

/// etcd's WAL fsync histogram (`etcd_disk_wal_fsync_duration_seconds`):
/// cumulative (bound in s, count) buckets, sum and count. Every write
/// berth makes waits for one; on a disk shared with other work it is
/// what a slow convergence sample is most often made of.
#[derive(Default)]
struct Fsyncs {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

fn fsyncs() -> Fsyncs {
    let mut f = Fsyncs::default();
    const H: &str = "etcd_disk_wal_fsync_duration_seconds";
    for l in etcd_http("/metrics", Duration::from_secs(2)).unwrap_or_default().lines() {
        let Some(rest) = l.strip_prefix(H) else { continue };
        if let Some((le, n)) = rest.strip_prefix("_bucket{le=\"").and_then(|r| r.split_once("\"} ")) {
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
            if let Ok(n) = n.trim().parse() {
                f.buckets.push((le, n));
            }
        } else if let Some(v) = rest.strip_prefix("_sum ") {
            f.sum = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = rest.strip_prefix("_count ") {
            f.count = v.trim().parse().unwrap_or(0.0);
        }
    }
    f
}

/// The fsyncs between two looks at the histogram: how many, their mean,
/// and the bucket bounds that hold 99% and all of them.
fn fsync_text(a: &Fsyncs, b: &Fsyncs) -> String {
    let n = b.count - a.count;
    if n <= 0.0 {
        return "etcd's WAL fsyncs meanwhile: none seen (no /metrics?)".into();
    }
    let mean = (b.sum - a.sum) / n * 1000.0;
    let before = |le: f64| a.buckets.iter().find(|x| x.0 == le).map_or(0.0, |x| x.1);
    let bound = |q: f64| {
        b.buckets.iter().find(|(le, c)| c - before(*le) >= q * n).map_or("?".to_string(), |(le, _)| if le.is_finite() { format!("{:.0}", le * 1000.0) } else { "inf".into() })
    };
    format!("etcd's WAL fsyncs meanwhile: {n:.0}, mean {mean:.1} ms, 99% within {} ms, all within {} ms", bound(0.99), bound(1.0))
}

/// One API request, bounded in time.
async fn call(c: &Client, m: Method, path: &str, body: Option<&Value>) -> Result<Reply> {
    tokio::time::timeout(API_LIMIT, c.call(m, path, body)).await.map_err(|_| anyhow!("{path}: no answer within {} s", API_LIMIT.as_secs()))?
}

async fn get(c: &Client, path: &str) -> Result<Value> {
    call(c, Method::GET, path, None).await?.json()
}

async fn post(c: &Client, path: &str, body: &Value) -> Result<Reply> {
    call(c, Method::POST, path, Some(body)).await
}

/// `POST /containers/run` (`run -d`: returns once the command runs with
/// its network up); the container's PID and its address and gateway on `net`.
async fn run_container(h: &Host, name: &str, net: &str, cmd: &[&str]) -> Result<(u32, Ipv4Addr, String)> {
    post(&h.client, "/containers/run", &json!({"Name": name, "Network": net, "Cmd": cmd})).await.with_context(|| format!("run {name} on {}", h.name))?;
    let (pid, ip, gw) = container_info(h, name, net).await?;
    Ok((pid.with_context(|| format!("{name} on {} has no PID", h.name))?, ip, gw))
}

/// A container's PID (None for an attached namespace), address and gateway on `net`.
async fn container_info(h: &Host, name: &str, net: &str) -> Result<(Option<u32>, Ipv4Addr, String)> {
    let v = get(&h.client, &format!("/containers/{name}/json")).await?;
    let pid = v["State"]["Pid"].as_u64().filter(|p| *p > 0).map(|p| p as u32);
    let n = &v["NetworkSettings"]["Networks"][net];
    let ip = n["IPAddress"].as_str().and_then(|s| s.parse().ok()).with_context(|| format!("{name} has no IPv4 address on {net}: {v}"))?;
    Ok((pid, ip, n["Gateway"].as_str().unwrap_or_default().to_string()))
}

/// Waits (at most 10 s) until a process in the network namespace of `pid` listens on TCP `port`.
fn wait_listening(pid: u32, port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !berth_linux::ports::listening_in(pid, false, port) {
        if Instant::now() > deadline {
            bail!("{what} (pid {pid}) did not listen on {port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

// ------------------------------------------------------------ the probes

/// Enters a network namespace on the calling thread (a thread of our own,
/// used for nothing else: setns changes only the calling thread).
fn enter(ns: &str) -> Result<()> {
    let f = std::fs::File::open(ns).with_context(|| format!("open {ns}"))?;
    // SAFETY: setns on a thread that does only this probing.
    anyhow::ensure!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } == 0, "setns {ns}: {}", std::io::Error::last_os_error());
    Ok(())
}

/// Skips a (possibly compressed) name in a DNS message; the offset after it.
fn skip_name(m: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let l = *m.get(pos)? as usize;
        if l == 0 {
            return Some(pos + 1);
        }
        if l & 0xc0 == 0xc0 {
            m.get(pos + 1)?;
            return Some(pos + 2);
        }
        pos += 1 + l;
    }
}

/// A DNS answer in `m`: its id, and its first A record (None when it has
/// none: the name is not known yet, NXDOMAIN or a failed forward); None
/// if `m` is no well-formed answer. Checked by hand, every offset
/// bounded: the bench's only DNS need is this one.
fn a_answer(m: &[u8]) -> Option<(u16, Option<Ipv4Addr>)> {
    if m.len() < 12 || m[2] & 0x80 == 0 {
        return None;
    }
    let id = u16::from_be_bytes([m[0], m[1]]);
    if m[3] & 0x0f != 0 {
        return Some((id, None));
    }
    let (qd, an) = (u16::from_be_bytes([m[4], m[5]]), u16::from_be_bytes([m[6], m[7]]));
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(m, pos).map(|p| p + 4)?;
    }
    for _ in 0..an {
        pos = skip_name(m, pos)?;
        let h = m.get(pos..pos + 10)?;
        let (ty, class, len) = (u16::from_be_bytes([h[0], h[1]]), u16::from_be_bytes([h[2], h[3]]), u16::from_be_bytes([h[8], h[9]]) as usize);
        let data = m.get(pos + 10..pos + 10 + len)?;
        if ty == 1 && class == 1 && len == 4 {
            return Some((id, Some(Ipv4Addr::new(data[0], data[1], data[2], data[3]))));
        }
        pos += 10 + len;
    }
    Some((id, None))
}

/// A UDP socket towards a resolver, in the calling thread's namespace.
struct Resolver {
    sock: UdpSocket,
    id: u16,
    /// The first id of the current name's queries.
    first: u16,
}

impl Resolver {
    fn new(server: SocketAddr) -> Result<Resolver> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.connect(server)?;
        let id = std::process::id() as u16;
        Ok(Resolver { sock, id, first: id })
    }

    /// Starts asking for another name: answers to earlier names' queries
    /// are ignored from now on.
    fn next_name(&mut self) {
        self.first = self.id.wrapping_add(1);
    }

    /// Sends one more A query for `name` and waits at most 1 ms for an
    /// answer with an address to any query for it sent so far. A query for
    /// a name the resolver does not know yet may be held for seconds (it
    /// is forwarded, and the LAN machine refuses by an ICMP error the
    /// forwarder does not see): waiting for each answer in turn would
    /// measure that, not when the name became known, so queries overlap.
    fn ask(&mut self, name: &str) -> Option<Ipv4Addr> {
        self.id = self.id.wrapping_add(1);
        self.sock.send(&crate::bench_dns::query(self.id, name)).ok()?;
        let asked = self.id.wrapping_sub(self.first);
        let until = Instant::now() + Duration::from_millis(1);
        let mut buf = [0u8; 1500];
        loop {
            let left = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
            self.sock.set_read_timeout(Some(left)).ok()?;
            let n = self.sock.recv(&mut buf).ok()?;
            if let Some((id, Some(a))) = a_answer(&buf[..n]) {
                if id.wrapping_sub(self.first) <= asked {
                    return Some(a);
                }
            }
        }
    }
}

/// What one convergence probe saw, in ms after the API call returned.
#[derive(Clone, Copy)]
struct Seen {
    resolved: f64,
    connected: f64,
}

/// A thread inside the client container's network namespace that, for
/// each name it is given, asks the container's resolver every ~1 ms until
/// the name resolves, then tries a TCP connection to it every ~1 ms
/// (20 ms connect timeout: a SYN dropped before the route exists would
/// otherwise be retried by the kernel only after a second) until one
/// succeeds; at most [`PROBE_LIMIT`] in all.
struct Prober {
    jobs: mpsc::Sender<(String, Instant)>,
    done: mpsc::Receiver<Option<Seen>>,
}

impl Prober {
    fn start(netns: String, dns: SocketAddr, port: u16) -> Result<Prober> {
        let (jobs, job_rx) = mpsc::channel::<(String, Instant)>();
        let (done_tx, done) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            let setup = enter(&netns).and_then(|()| Resolver::new(dns));
            let mut r = match setup {
                Ok(r) => {
                    let _ = ready_tx.send(Ok(()));
                    r
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Ok((name, since)) = job_rx.recv() {
                let _ = done_tx.send(probe(&mut r, &name, port, since));
            }
        });
        ready.recv_timeout(Duration::from_secs(5)).context("the probe thread did not start")??;
        Ok(Prober { jobs, done })
    }

    fn probe(&self, name: &str, since: Instant) -> Result<Option<Seen>> {
        self.jobs.send((name.to_string(), since)).map_err(|_| anyhow!("the probe thread is gone"))?;
        self.done.recv_timeout(PROBE_LIMIT + Duration::from_secs(2)).context("the probe thread did not answer")
    }
}

fn probe(r: &mut Resolver, name: &str, port: u16, since: Instant) -> Option<Seen> {
    let ms = || since.elapsed().as_secs_f64() * 1000.0;
    let mut found: Option<(Ipv4Addr, f64)> = None;
    r.next_name();
    while since.elapsed() < PROBE_LIMIT {
        if found.is_none() {
            // Waits up to 1 ms itself.
            found = r.ask(name).map(|a| (a, ms()));
            continue;
        }
        if let Some((a, resolved)) = found {
            if TcpStream::connect_timeout(&SocketAddr::from((a, port)), Duration::from_millis(20)).is_ok() {
                return Some(Seen { resolved, connected: ms() });
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Resolves `name` from namespace `netns` through `dns`, retrying for at
/// most `limit` (a thread of its own enters the namespace).
fn resolves_from(netns: &str, dns: SocketAddr, name: &str, limit: Duration) -> bool {
    let (netns, name) = (netns.to_string(), name.to_string());
    std::thread::spawn(move || {
        if enter(&netns).is_err() {
            return false;
        }
        let Ok(mut r) = Resolver::new(dns) else { return false };
        let t = Instant::now();
        while t.elapsed() < limit {
            if r.ask(&name).is_some() {
                return true;
            }
        }
        false
    })
    .join()
    .unwrap_or(false)
}

// ----------------------------------------------------------- the figures

/// Percentile `p` (0-1) of sorted `v` (nearest rank); NaN when empty.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

fn pct_row(out: &mut String, label: &str, v: &[f64]) {
    let s = sorted(v);
    let _ = writeln!(out, "  {label:<52} {:>4} {:>8.1} {:>8.1} {:>8.1} {:>8.1}", s.len(), pct(&s, 0.5), pct(&s, 0.95), pct(&s, 0.99), pct(&s, 1.0));
}

/// The result sections, printed in this order at the end whatever order
/// the steps ran in (the cluster grows through the sizes in turn).
#[derive(Default)]
struct Report {
    convergence: Option<String>,
    throughput: Option<String>,
    objects: Vec<(usize, usize, Objects)>,
    /// The object count's attaches, phase by phase.
    attach: Vec<(String, Attaches)>,
    objects_text: Option<String>,
    etcd: Option<String>,
}

impl Report {
    fn print(&self) {
        for s in [&self.convergence, &self.throughput, &self.objects_text, &self.etcd].into_iter().flatten() {
            println!("{s}");
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// Convergence, throughput and etcd traffic, on `--hosts` hosts.
    Convergence,
    /// Object count at (3, 150).
    Small,
    /// Object count at (20, --containers).
    Big,
}

async fn bench(o: &Opts) -> Result<()> {
    anyhow::ensure!((2..=200).contains(&o.hosts), "--hosts: between 2 and 200 (convergence needs a host A and a host B)");
    let small_total = SMALL * PER_HOST;
    anyhow::ensure!(o.containers > small_total + (BIG - SMALL), "--containers: more than {} for the {BIG}-host size (each new host gets at least one)", small_total + BIG - SMALL);
    for (tool, why) in [("etcd", "apt-get install etcd-server"), ("socat", "apt-get install socat"), ("nsenter", "util-linux"), ("bridge", "iproute2")] {
        anyhow::ensure!(sh(&format!("command -v {tool}")).is_ok(), "{tool} is not installed ({why})");
    }
    let cpus = std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let etcd_v = sh("etcd --version").unwrap_or_default().lines().next().unwrap_or("").to_string();
    println!(
        "berth bench --hosts {}: hosts are network namespaces on one LAN bridge, one daemon each, {etcd_v} on the LAN \
         (data on {}); {cpus} CPUs, load average {}",
        o.hosts,
        sh("df --output=fstype /tmp | tail -1").unwrap_or_default().trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("(all hosts share this machine's CPUs: every figure includes the other hosts' daemons and etcd running beside it)\n");

    let mut lab = Lab::new()?;
    lab.progress("LAN and etcd up");
    let mut steps = vec![(o.hosts, Step::Convergence), (SMALL, Step::Small), (BIG, Step::Big)];
    steps.sort();
    let mut rep = Report::default();
    let res: Result<()> = async {
        let last = steps.len() - 1;
        for (k, (n, step)) in steps.iter().enumerate() {
            lab.grow(*n).await?;
            match step {
                Step::Convergence => {
                    // The object count's containers, when its small size ran first.
                    let present = rep.objects.last().map_or(0, |r| r.1);
                    convergence(&mut lab, o, present, &mut rep).await?;
                    if k != last {
                        remove_conv(&lab).await?;
                    }
                }
                Step::Small => {
                    post(&lab.hosts[0].client, "/networks/create", &json!({"Name": OBJ_NET, "Driver": "overlay", "IPAM": {"Config": [{"Subnet": "10.201.0.0/16"}]}})).await?;
                    lab.wait_network(OBJ_NET, true).await?;
                    for h in 0..SMALL {
                        let a = attach_many(&lab, h, 0..PER_HOST).await?;
                        rep.attach.push((format!("{SMALL} hosts: the {PER_HOST} of host-{h} (up to {} on the cluster)", (h + 1) * PER_HOST), a));
                    }
                    let r = settled_objects(&lab, small_total).await?;
                    rep.objects.push((lab.hosts.len(), small_total, r));
                }
                Step::Big => {
                    // The hosts past the small size get one container each
                    // (what they add per host), then the rest (what their
                    // containers add).
                    lab.wait_network(OBJ_NET, true).await?;
                    let new = BIG - SMALL;
                    let rest = o.containers - small_total - new;
                    let mut first = Attaches { took: vec![], own_cpu: 0.0, others_cpu: 0.0 };
                    for h in SMALL..BIG {
                        let a = attach_many(&lab, h, 0..1).await?;
                        first.took.extend(a.took);
                        first.own_cpu += a.own_cpu / new as f64;
                        first.others_cpu += a.others_cpu / new as f64;
                    }
                    rep.attach.push((format!("{BIG} hosts: the first on each of hosts {SMALL}-{}", BIG - 1), first));
                    let r = settled_objects(&lab, small_total + new).await?;
                    rep.objects.push((BIG, small_total + new, r));
                    for (k, h) in (SMALL..BIG).enumerate() {
                        let more = rest / new + usize::from(k < rest % new);
                        let a = attach_many(&lab, h, 1..1 + more).await?;
                        if h == SMALL || h == BIG - 1 {
                            let have = small_total + new + (0..=k).map(|j| rest / new + usize::from(j < rest % new)).sum::<usize>();
                            rep.attach.push((format!("{BIG} hosts: {more} more on host-{h} (up to {have} on the cluster)"), a));
                        }
                    }
                    let r = settled_objects(&lab, o.containers).await?;
                    rep.objects.push((BIG, o.containers, r));
                    rep.objects_text = Some(objects_text(&rep.objects, &rep.attach));
                }
            }
        }
        Ok(())
    }
    .await;
    if rep.objects_text.is_none() && !rep.objects.is_empty() {
        rep.objects_text = Some(objects_text(&rep.objects, &rep.attach));
    }
    rep.print();
    lab.progress("done; stopping daemons and etcd");
    drop(lab);
    res
}

// ------------------------------------------------------------ convergence

/// Section 1 (and 2 and 4): 50 starts on host-0 probed from host-1, then
/// throughput between the two, then the etcd traffic of those starts.
/// `present`: containers of the object count on the cluster meanwhile.
async fn convergence(lab: &mut Lab, o: &Opts, present: usize, rep: &mut Report) -> Result<()> {
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    post(&a.client, "/networks/create", &json!({"Name": CONV_NET, "Driver": "overlay", "IPAM": {"Config": [{"Subnet": "10.200.0.0/16"}]}})).await?;
    lab.wait_network(CONV_NET, true).await?;
    let (pid, _, gw) = run_container(b, "cvprobe", CONV_NET, &["sleep", "1000000"]).await?;
    // The resolver the client container uses: its resolv.conf's nameserver
    // (seen through its own mount namespace), the network's gateway.
    let conf = std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf")).unwrap_or_default();
    let ns_ip = conf.lines().find_map(|l| l.strip_prefix("nameserver ")).map(|s| s.trim().to_string()).unwrap_or(gw);
    let dns = SocketAddr::new(ns_ip.parse().with_context(|| format!("cvprobe's nameserver {ns_ip:?}"))?, 53);
    let prober = Prober::start(format!("/proc/{pid}/ns/net"), dns, 80)?;
    let server: &[&str] = &["socat", "TCP-LISTEN:80,fork,reuseaddr", "SYSTEM:echo ok"];
    settle("the convergence runs");
    // The first container of host-0 on the network leases its block and
    // makes host-1 route it: reported apart, not one of the 50.
    let t = Instant::now();
    post(&a.client, "/containers/run", &json!({"Name": "cvfirst", "Network": CONV_NET, "Cmd": server})).await?;
    let first_api = t.elapsed().as_secs_f64() * 1000.0;
    let first = prober.probe("cvfirst", Instant::now())?;
    lab.progress("convergence: first container reached");
    let before = lab.store_counters().await?;
    let fs0 = fsyncs();
    let t_starts = Instant::now();
    let (mut api, mut resolved, mut connected, mut missed) = (vec![], vec![], vec![], 0);
    let mut samples: Vec<(usize, f64, Option<Seen>)> = vec![];
    for i in 0..STARTS {
        let name = format!("cv{i}");
        let t = Instant::now();
        post(&a.client, "/containers/run", &json!({"Name": name, "Network": CONV_NET, "Cmd": server})).await?;
        let returned = Instant::now();
        api.push((returned - t).as_secs_f64() * 1000.0);
        let seen = prober.probe(&name, returned)?;
        samples.push((i, (returned - t).as_secs_f64() * 1000.0, seen));
        match seen {
            Some(s) => {
                resolved.push(s.resolved);
                connected.push(s.connected);
            }
            None => {
                missed += 1;
                connected.push(f64::INFINITY);
            }
        }
    }
    let starts_secs = t_starts.elapsed().as_secs_f64();
    let fs1 = fsyncs();
    let after = lab.store_counters().await?;
    lab.progress("convergence: 50 starts probed");

    let mut out = String::new();
    let _ = writeln!(out, "1. convergence: `run -d` of a TCP server on host-0 -> first TCP connection to it by name from a container on host-1");
    let _ = writeln!(out, "   ({} hosts; name asked of host-1's resolver {dns} every ~1 ms, then connect every ~1 ms; ms after the API call returned{})",
        lab.hosts.len(), if present > 0 { format!("; {present} other containers on the cluster") } else { String::new() });
    let _ = writeln!(out, "  {:<52} {:>4} {:>8} {:>8} {:>8} {:>8}", "", "n", "p50", "p95", "p99", "max");
    pct_row(&mut out, "API run -d on host-0 (the call itself)", &api);
    pct_row(&mut out, "name resolves on host-1", &resolved);
    pct_row(&mut out, "TCP connection by name from host-1 succeeds", &connected);
    if missed > 0 {
        let _ = writeln!(out, "  {missed} of {STARTS} not reached within {} s (counted as infinite)", PROBE_LIMIT.as_secs());
    }
    match first {
        Some(s) => {
            let _ = writeln!(out, "  (host-0's first container on the network, not counted: API {first_api:.1} ms, resolved {:.1} ms, connected {:.1} ms)", s.resolved, s.connected);
        }
        None => {
            let _ = writeln!(out, "  (host-0's first container on the network, not counted: not reached within {} s)", PROBE_LIMIT.as_secs());
        }
    }
    samples.sort_by(|x, y| y.2.map_or(f64::INFINITY, |s| s.connected).total_cmp(&x.2.map_or(f64::INFINITY, |s| s.connected)));
    let slow: Vec<String> = samples
        .iter()
        .take(3)
        .map(|(i, api, s)| match s {
            Some(s) => format!("cv{i} (API {api:.0}, resolved {:.0}, connected {:.0})", s.resolved, s.connected),
            None => format!("cv{i} (API {api:.0}, not reached)"),
        })
        .collect();
    let _ = writeln!(out, "  slowest: {}", slow.join(", "));
    let _ = writeln!(out, "  {} (each start is one etcd write that waits for one)", fsync_text(&fs0, &fs1));
    let c = sorted(&connected);
    let (p50, p99) = (pct(&c, 0.5), pct(&c, 0.99));
    let _ = writeln!(out, "  target p50 <= 50 ms: {p50:.1} ms {}; p99 <= 250 ms: {p99:.1} ms {}", verdict(p50 <= 50.0), verdict(p99 <= 250.0));
    let _ = writeln!(out, "  reference (not measured here): flannel gives each host a subnet lease and other hosts route it once their");
    let _ = writeln!(out, "  watch of etcd/the Kubernetes API sees it, and names come from a separate cluster DNS: seconds. Docker's");
    let _ = writeln!(out, "  overlay spreads endpoints and names by gossip (NetworkDB over memberlist, with 30 s full syncs): seconds.");
    rep.convergence = Some(out);

    // Section 2, between the same two hosts; its iperf3 minutes are also
    // the idle window that measures the store traffic no start causes.
    let mut idle: Option<(Vec<(u64, u64)>, Vec<(u64, u64)>, f64)> = None;
    if o.throughput {
        match throughput(lab, o.rounds).await {
            Ok((text, w)) => {
                rep.throughput = Some(text);
                idle = Some(w);
            }
            Err(e) => rep.throughput = Some(format!("2. throughput: skipped ({e:#})\n")),
        }
    }
    if idle.is_none() {
        let b0 = lab.store_counters().await?;
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(10)).await;
        idle = Some((b0, lab.store_counters().await?, t.elapsed().as_secs_f64()));
    }
    rep.etcd = Some(etcd_text(lab, &before, &after, starts_secs, idle));
    Ok(())
}

/// Section 4 from the counters around the 50 starts. StoreBytes counts
/// payload both ways — puts sent, listings and watch events received — so
/// host-0's figure less another host's (which only receives) is what
/// host-0 sent. Lease keep-alives (two requests per TTL/3) fall into the
/// window too, a tick at a time: they are measured over an idle window
/// and said, not subtracted (over a 2 s window that would subtract a
/// fraction of a tick that may never have happened).
fn etcd_text(lab: &Lab, before: &[(u64, u64)], after: &[(u64, u64)], secs: f64, idle: Option<Window>) -> String {
    let n = before.len().min(after.len()).min(lab.hosts.len());
    let k = STARTS as f64;
    let d: Vec<(f64, f64)> = (0..n).map(|i| (after[i].0.saturating_sub(before[i].0) as f64 / k, after[i].1.saturating_sub(before[i].1) as f64 / k)).collect();
    let sum = d.iter().fold((0.0, 0.0), |s, x| (s.0 + x.0, s.1 + x.1));
    let others = ((sum.0 - d[0].0) / (n - 1).max(1) as f64, (sum.1 - d[0].1) / (n - 1).max(1) as f64);
    let mut out = String::new();
    let _ = writeln!(out, "4. etcd traffic per container start (/info StoreRequests and StoreBytes around the {STARTS} starts above, {secs:.1} s)");
    let _ = writeln!(out, "  {:<44} {:>14} {:>11}", "", "requests/start", "bytes/start");
    for (label, (r, b)) in [("host-0 (where the containers start)".to_string(), d[0]), (format!("each other host (mean of {})", n - 1), others), (format!("sum over all {n} hosts"), sum)] {
        let _ = writeln!(out, "  {label:<44} {r:>14.2} {b:>11.0}");
    }
    if let Some((i0, i1, isecs)) = idle.as_ref().filter(|(i0, i1, isecs)| !i0.is_empty() && !i1.is_empty() && *isecs > 0.0) {
        let ka = i1[0].0.saturating_sub(i0[0].0) as f64 / isecs;
        let _ = writeln!(
            out,
            "  lease keep-alives (measured idle over {isecs:.0} s: {ka:.2} requests/s a host) may add up to {:.2} requests/start a host in this window",
            (ka * secs).ceil() / k
        );
    }
    let _ = writeln!(
        out,
        "  StoreBytes counts both ways: every host, host-0 too, receives each start's endpoint record through its watch ({:.0} B);\n  \
         so host-0 sent {:.2} request of {:.0} B per start, the other hosts none",
        others.1,
        d[0].0 - others.0,
        (d[0].1 - others.1).max(0.0)
    );
    out
}

/// Removes what the convergence step made, so that the object count that
/// follows sees only its own network: containers, then the network (its
/// removal waits for the other hosts to see the endpoints gone).
async fn remove_conv(lab: &Lab) -> Result<()> {
    for h in &lab.hosts {
        let list = get(&h.client, "/containers/json?all=1").await?;
        for c in list.as_array().into_iter().flatten() {
            let nets = &c["NetworkSettings"]["Networks"];
            let on_conv = nets.get(CONV_NET).is_some() || c["Names"].as_array().into_iter().flatten().any(|n| n.as_str().is_some_and(|n| n.trim_start_matches('/').starts_with("cv") || n.trim_start_matches('/').starts_with("ip")));
            if on_conv {
                let id = c["Id"].as_str().unwrap_or_default();
                call(&h.client, Method::DELETE, &format!("/containers/{id}?force=1"), None).await?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call(&lab.hosts[0].client, Method::DELETE, &format!("/networks/{CONV_NET}"), None).await {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => return Err(e.context("removing the convergence network")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    lab.wait_network(CONV_NET, false).await
}

// ------------------------------------------------------------- throughput

/// One iperf3 run of 1 s from CPU 0 (the servers run on CPU 1, as in
/// bench.rs), started with `prefix` (the namespace to run in); Gbit/s received.
fn iperf_in(prefix: &str, target: &str) -> Result<f64> {
    let out = sh(&format!("{prefix} taskset -c 0 iperf3 -c {target} -t 1 -J"))?;
    let v: Value = serde_json::from_str(&out).context("iperf3 -J output")?;
    v["end"]["sum_received"]["bits_per_second"].as_f64().map(|b| b / 1e9).context("iperf3 reported no throughput")
}

type Window = (Vec<(u64, u64)>, Vec<(u64, u64)>, f64);

/// Section 2: iperf3 from a container on host-0 to one on host-1 over the
/// overlay, against iperf3 between host-0's and host-1's namespaces over a
/// VXLAN device made by hand (same LAN, same MTU, its own port so berth's
/// VXLAN rules do not apply to it). Also returns the store counters around
/// the runs: an idle window for section 4.
async fn throughput(lab: &mut Lab, rounds: usize) -> Result<(String, Window)> {
    anyhow::ensure!(sh("command -v iperf3").is_ok(), "iperf3 not installed (apt-get install iperf3)");
    let (srv_pid, srv_ip, _) = run_container(&lab.hosts[1], "ipserver", CONV_NET, &["taskset", "-c", "1", "iperf3", "-s", "-p", "5201"]).await?;
    let (cli_pid, _, _) = run_container(&lab.hosts[0], "ipclient", CONV_NET, &["sleep", "1000000"]).await?;
    wait_listening(srv_pid, 5201, "iperf3 in ipserver")?;
    for (ns, local, remote, addr) in [("h0", "10.90.0.1", "10.90.0.2", "10.99.99.1/24"), ("h1", "10.90.0.2", "10.90.0.1", "10.99.99.2/24")] {
        sh(&format!(
            "ip -n {ns} link add vxbench type vxlan id 999 local {local} remote {remote} dstport 4790 dev eth0 && \
             ip -n {ns} addr add {addr} dev vxbench && ip -n {ns} link set vxbench mtu 1450 up"
        ))?;
    }
    let base_srv = Command::new("ip")
        .args(["netns", "exec", "h1", "taskset", "-c", "1", "iperf3", "-s", "-B", "10.99.99.2", "-p", "5202"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 in h1")?;
    let base_pid = base_srv.id();
    lab.servers.push(base_srv);
    wait_listening(base_pid, 5202, "iperf3 in h1")?;
    let mtu = sh(&format!("nsenter --net=/proc/{cli_pid}/ns/net ip -o link show eth0"))?;
    let mtu = mtu.split_whitespace().skip_while(|w| *w != "mtu").nth(1).unwrap_or("?").to_string();
    lab.progress(&format!("throughput: {rounds} rounds"));
    let before = lab.store_counters().await?;
    let t = Instant::now();
    let mut by_hand = || iperf_in("ip netns exec h0", "10.99.99.2 -p 5202");
    let mut overlay = || iperf_in(&format!("nsenter --net=/proc/{cli_pid}/ns/net"), &format!("{srv_ip} -p 5201"));
    let r = interleaved(rounds, &mut by_hand, &mut [&mut overlay]);
    let window = (before, lab.store_counters().await?, t.elapsed().as_secs_f64());
    let _ = sh("ip -n h0 link del vxbench; ip -n h1 link del vxbench");
    if let Some(mut s) = lab.servers.pop() {
        // SAFETY: the process group of the iperf3 we started.
        unsafe { libc::kill(-(s.id() as i32), libc::SIGKILL) };
        let _ = s.wait();
    }
    let r = r?;
    let r = r.first().context("no throughput result")?;
    let mut out = String::new();
    let _ = writeln!(out, "2. throughput, TCP container on host-0 -> container on host-1 by address (iperf3, {rounds} rounds of 1 s runs ordered by hand, overlay, by hand, overlay, by hand)");
    let _ = writeln!(out, "  VXLAN link made by hand between h0 and h1 (MTU 1450) {:>6.2} Gbit/s", r.base);
    let _ = writeln!(out, "  berth overlay, container to container (MTU {mtu})    {:>6.2} Gbit/s   {}", r.this, r.ratio_text());
    let _ = writeln!(out, "  target: ratio {:.3} >= 0.95: {}", r.ratio, verdict(r.ratio >= 0.95));
    Ok((out, window))
}

// ---------------------------------------------------------- kernel objects

/// `ip netns add` namespaces attached to the object network on host `h`
/// (`POST /containers/attach`, as bench.rs: cheaper than processes).
/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is 3rd, utime 14th, stime 15th.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    f.iter().sum::<f64>() / tck
}

/// What a run of attaches cost: API times (ms), and CPU ms per attach of
/// the attaching daemon and of all the other daemons together (which
/// update their picture of the cluster for every container announced).
struct Attaches {
    took: Vec<f64>,
    own_cpu: f64,
    others_cpu: f64,
}

/// Attaches the namespaces, then waits (at most 60 s) until host-0 sees
/// them all, so the other daemons' work for them is in the CPU figures.
async fn attach_many(lab: &Lab, h: usize, range: std::ops::Range<usize>) -> Result<Attaches> {
    let names: Vec<String> = range.map(|j| format!("o{h}x{j}")).collect();
    let batch: String = names.iter().map(|n| format!("netns add {n}\n")).collect();
    let mut p = Command::new("ip").args(["-batch", "-"]).stdin(Stdio::piped()).spawn()?;
    p.stdin.take().context("ip -batch stdin")?.write_all(batch.as_bytes())?;
    anyhow::ensure!(p.wait()?.success(), "ip -batch (netns add) failed");
    let host = &lab.hosts[h];
    let cpu = |i: usize| cpu_secs(lab.hosts[i].daemon.id());
    let cpu0: Vec<f64> = (0..lab.hosts.len()).map(cpu).collect();
    let seen0 = remote_seen(lab).await?;
    let mut took = vec![];
    for n in &names {
        let t = Instant::now();
        post(&host.client, "/containers/attach", &json!({"Netns": format!("/run/netns/{n}"), "Name": n, "Network": OBJ_NET})).await.with_context(|| format!("attach {n} on {}", host.name))?;
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // host-0 is the watcher whose view is checked: when host-0 attaches, host-1's is.
    let want = seen0 + names.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while h != 0 && remote_seen(lab).await? < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let k = names.len().max(1) as f64;
    let own_cpu = (cpu(h) - cpu0[h]) * 1000.0 / k;
    let others_cpu = (0..lab.hosts.len()).filter(|i| *i != h).map(|i| cpu(i) - cpu0[i]).sum::<f64>() * 1000.0 / k;
    lab.progress(&format!("attached {} on {}", names.len(), host.name));
    Ok(Attaches { took, own_cpu, others_cpu })
}

/// What one host's kernel holds for berth (see [`count_objects`]).
#[derive(Clone, PartialEq, Default)]
struct Objects {
    links: usize,
    neigh: usize,
    fdb: usize,
    routes: usize,
    nft: usize,
    /// Elements per set or map of `inet berth`.
    sets: BTreeMap<String, usize>,
}

/// Links of the host's namespace; neighbour and FDB entries on berth's
/// tunnel devices (`btx-*`); routes berth made (protocol 183); elements of
/// every set and map of `inet berth`.
fn count_objects(ns: &str) -> Result<Objects> {
    let lines = |cmd: &str| -> Result<usize> { Ok(sh(cmd)?.lines().filter(|l| !l.trim().is_empty()).count()) };
    let mut o = Objects { links: lines(&format!("ip -n {ns} -o link show"))?, routes: lines(&format!("ip -n {ns} route show proto 183"))?, ..Default::default() };
    let tunnels: Vec<String> = sh(&format!("ip -n {ns} -o link show type vxlan"))?
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with("btx-"))
        .collect();
    for t in &tunnels {
        o.neigh += lines(&format!("ip -n {ns} neigh show dev {t}"))?;
        o.fdb += lines(&format!("bridge -n {ns} fdb show dev {t}"))?;
    }
    let v: Value = serde_json::from_str(&sh(&format!("ip netns exec {ns} nft -j list table inet berth"))?).context("nft -j output")?;
    for item in v["nftables"].as_array().into_iter().flatten() {
        for kind in ["set", "map"] {
            if let Some(s) = item.get(kind) {
                let n = s["elem"].as_array().map_or(0, Vec::len);
                o.nft += n;
                o.sets.insert(s["name"].as_str().unwrap_or("?").to_string(), n);
            }
        }
    }
    Ok(o)
}

/// Containers of other hosts host-0's view holds (`GET /nodes`).
async fn remote_seen(lab: &Lab) -> Result<u64> {
    let nodes = get(&lab.hosts[0].client, "/nodes").await?;
    Ok(nodes["Nodes"].as_array().into_iter().flatten().filter(|n| n["Self"].as_bool() == Some(false)).filter_map(|n| n["Containers"].as_u64()).sum())
}

/// host-0's objects once the cluster has settled: host-0's view holds all
/// `total` containers of the object network (the other hosts' through
/// etcd) and its counts stayed the same over three looks 300 ms apart (at
/// most 60 s; past that the last count is taken and says so).
async fn settled_objects(lab: &Lab, total: usize) -> Result<Objects> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut same) = (None::<Objects>, 0);
    let remote_want = total - PER_HOST;
    // The last container of the last host resolves from a namespace of
    // host-0: its resolver has the others' names.
    let last_host = lab.hosts.len() - 1;
    loop {
        let remote = remote_seen(lab).await?;
        let o = count_objects(&lab.hosts[0].ns)?;
        if remote as usize >= remote_want && last.as_ref() == Some(&o) {
            same += 1;
        } else {
            same = 0;
        }
        last = Some(o);
        if same >= 2 {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("(kernel objects on host-0 not settled within 60 s: host-0 sees {remote} of {remote_want} remote containers; counted as they are)");
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, _, gw) = container_info(&lab.hosts[0], "o0x0", OBJ_NET).await?;
    if let Ok(ip) = gw.parse::<Ipv4Addr>() {
        let name = format!("o{last_host}x0");
        if !resolves_from("/run/netns/o0x0", SocketAddr::from((ip, 53)), &name, Duration::from_secs(5)) {
            eprintln!("({name} does not resolve on host-0)");
        }
    }
    lab.progress(&format!("objects counted at {} hosts, {total} containers", lab.hosts.len()));
    last.context("no count")
}

/// Section 3: the table, and what grew per remote host and per remote
/// container. With rows (3, 150), (20, 167: one on each new host) and
/// (20, 1000), rows 2→3 add only remote containers, rows 1→2 17 hosts and
/// 17 containers: per container = Δ(2→3)/833, per host = (Δ(1→2) − 17 ×
/// per container)/17.
fn objects_text(rows: &[(usize, usize, Objects)], attach: &[(String, Attaches)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "3. kernel objects on host-0 (its own {PER_HOST} containers on overlay {OBJ_NET} each time; `POST /containers/attach` of `ip netns add` namespaces, {PER_HOST} per host)");
    let _ = writeln!(out, "  {:>5} {:>10} {:>7} {:>13} {:>11} {:>17} {:>13}", "hosts", "containers", "links", "tunnel neigh", "tunnel FDB", "routes proto 183", "nft elements");
    for (h, c, o) in rows {
        let _ = writeln!(out, "  {h:>5} {c:>10} {:>7} {:>13} {:>11} {:>17} {:>13}", o.links, o.neigh, o.fdb, o.routes, o.nft);
    }
    if rows.len() >= 3 {
        let (h1, c1, a) = &rows[0];
        let (h2, c2, b) = &rows[1];
        let (_, c3, c) = &rows[2];
        let dh = h2.saturating_sub(*h1).max(1) as f64;
        let dc12 = c2.saturating_sub(*c1) as f64;
        let dc = c3.saturating_sub(*c2).max(1) as f64;
        let f = |x: usize, y: usize| y as f64 - x as f64;
        let per_c = [f(b.links, c.links) / dc, f(b.neigh, c.neigh) / dc, f(b.fdb, c.fdb) / dc, f(b.routes, c.routes) / dc, f(b.nft, c.nft) / dc];
        let d12 = [f(a.links, b.links), f(a.neigh, b.neigh), f(a.fdb, b.fdb), f(a.routes, b.routes), f(a.nft, b.nft)];
        let per_h: Vec<f64> = (0..5).map(|i| (d12[i] - dc12 * per_c[i]) / dh).collect();
        let show = |v: &[f64]| format!("{:.2} links, {:.2} neighbours, {:.2} FDB entries, {:.2} routes, {:.2} nft elements", v[0], v[1], v[2], v[3], v[4]);
        let _ = writeln!(out, "  growth per remote host:      {}", show(&per_h));
        let _ = writeln!(out, "  growth per remote container: {}", show(&per_c));
        // Which sets grew, to say what an element is for.
        let mut grew = vec![];
        for (name, n) in &c.sets {
            let n0 = a.sets.get(name).copied().unwrap_or(0);
            if *n != n0 {
                grew.push(format!("{name} {n0}->{}->{n}", b.sets.get(name).copied().unwrap_or(0)));
            }
        }
        let _ = writeln!(out, "  nft sets that grew (row 1 -> 2 -> 3): {}", if grew.is_empty() { "none".to_string() } else { grew.join(", ") });
        let near = |x: f64, want: f64| (x - want).abs() < 0.05;
        let ok = near(per_h[0], 0.0) && near(per_h[1], 1.0) && near(per_h[2], 1.0) && near(per_h[3], 1.0) && near(per_h[4], 1.0) && per_c.iter().all(|x| near(*x, 0.0));
        let _ = writeln!(out, "  target: per remote host 1 route, 1 neighbour, 1 FDB entry, 1 nft element (no link); per remote container 0: {}", verdict(ok));
    }
    if !attach.is_empty() {
        let _ = writeln!(
            out,
            "  the attaches meanwhile (ms; all daemons share this machine's {} CPUs; CPU = ms of CPU per attach, until host-0 has seen them):",
            std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1)
        );
        let _ = writeln!(out, "  {:<46} {:>4} {:>7} {:>7} {:>7}   {:>10} {:>13}", "", "n", "p50", "p95", "max", "CPU, own", "CPU, others");
        for (label, a) in attach {
            let s = sorted(&a.took);
            let _ = writeln!(out, "  {label:<46} {:>4} {:>7.1} {:>7.1} {:>7.1}   {:>10.1} {:>13.1}", s.len(), pct(&s, 0.5), pct(&s, 0.95), pct(&s, 1.0), a.own_cpu, a.others_cpu);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_answer_reads_compressed_answers_and_refuses_others() {
        let mut m = crate::bench_dns::query(7, "cv1");
        m[2] |= 0x80;
        m[7] = 1;
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 200, 1, 5]);
        assert_eq!(a_answer(&m), Some((7, Some(Ipv4Addr::new(10, 200, 1, 5)))));
        assert_eq!(a_answer(&crate::bench_dns::query(7, "cv1")), None, "a query is no answer");
        let mut nx = crate::bench_dns::query(7, "cv1");
        nx[2] |= 0x80;
        nx[3] |= 3;
        assert_eq!(a_answer(&nx), Some((7, None)));
        // Truncated: an answer announced but missing.
        let mut short = crate::bench_dns::query(7, "cv1");
        short[2] |= 0x80;
        short[7] = 1;
        assert_eq!(a_answer(&short), None);
        assert_eq!(a_answer(&[0u8; 5]), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=50).map(f64::from).collect();
        assert_eq!((pct(&v, 0.5), pct(&v, 0.95), pct(&v, 0.99), pct(&v, 1.0)), (25.0, 48.0, 50.0, 50.0));
        assert!(pct(&[], 0.5).is_nan());
    }
}
