//! The isolation matrix: a seeded random topology (three user networks with
//! icc randomly on or off plus the default network, 8-10 containers, some
//! on two networks, some exposing or publishing port 80, links, deny
//! policies, an "outside" machine), a model of who may open a TCP
//! connection to whom computed from that topology alone (berth's documented
//! semantics, not berth's answers), and a probe of every pair compared with
//! the model — first as built, then after a daemon restart, then after
//! `nft flush ruleset` + `berth reconcile`.
//!
//! BERTH_ISO_SEED replays a run.

mod common;

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;

/// A SYN that gets no answer within this is a dropped one ("blocked").
const CONNECT_BUDGET: Duration = Duration::from_millis(500);
/// Time for connected servers to fork and send their line.
const READ_BUDGET: Duration = Duration::from_secs(5);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const PORTS: [u16; 2] = [80, 81];

fn chance(r: &mut Rng, one_in: u64) -> bool {
    r.below(one_in) == 0
}

// ---------------------------------------------------------------- the model

struct Net {
    name: String,
    icc: bool,
    subnet: String,
    gateway: Ipv4Addr,
}

struct Ctr {
    name: String,
    /// Indices into `Topo::nets`; the first is `--network` (default route,
    /// and the address published ports are translated to).
    nets: Vec<usize>,
    /// Address on each of `nets` (same order), from `berth inspect`.
    addrs: Vec<Ipv4Addr>,
    expose: bool,
    publish: Option<u16>,
    /// Indices into `Topo::ctrs` of the containers this one `--link`s to.
    links: Vec<usize>,
    pid: u32,
}

impl Ctr {
    fn addr_on(&self, net: usize) -> Option<Ipv4Addr> {
        self.nets.iter().position(|&n| n == net).map(|i| self.addrs[i])
    }
    /// Exposed ports: `--expose` and the container side of `-p` (only ever 80).
    fn exposes(&self, port: u16) -> bool {
        port == 80 && (self.expose || self.publish.is_some())
    }
}

/// `berth policy deny --from NET/PREFIX --to CTR:80`.
struct Pol {
    net: Ipv4Addr,
    prefix: u8,
    to: usize,
    why: String,
}

impl Pol {
    fn covers(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
        u32::from(ip) & mask == u32::from(self.net) & mask
    }
}

struct Topo {
    seed: u64,
    nets: Vec<Net>,
    ctrs: Vec<Ctr>,
    pols: Vec<Pol>,
}

#[derive(Clone, Copy, PartialEq)]
enum Src {
    Outside,
    Ctr(usize),
}

#[derive(Clone, Copy)]
enum Dst {
    /// Straight to the container's address on one of its networks.
    Addr { ctr: usize, net: usize, port: u16 },
    /// A published port through the host address 10.99.0.1.
    Published { ctr: usize, host_port: u16 },
}

struct Probe {
    src: Src,
    dst: Dst,
    target: SocketAddrV4,
    /// The server's line when the model says the connection opens.
    expect: Option<String>,
    why: String,
}

fn reply(t: &Topo, ctr: usize, port: u16) -> String {
    format!("{} {port}", t.ctrs[ctr].name)
}

impl Topo {
    fn src_name(&self, s: Src) -> String {
        match s {
            Src::Outside => format!("outside({OUTSIDE})"),
            Src::Ctr(i) => self.ctrs[i].name.clone(),
        }
    }

    fn dst_name(&self, d: Dst) -> String {
        match d {
            Dst::Addr { ctr, net, port } => {
                format!("{}@{} {}:{port}", self.ctrs[ctr].name, self.nets[net].name, self.ctrs[ctr].addr_on(net).unwrap())
            }
            Dst::Published { ctr, host_port } => format!("{HOST}:{host_port} (-> {}:80)", self.ctrs[ctr].name),
        }
    }

    /// The first deny policy on `ctr:port` whose source CIDR covers `src`.
    fn denied(&self, src: Ipv4Addr, ctr: usize, port: u16) -> Option<usize> {
        if port != 80 {
            return None;
        }
        self.pols.iter().position(|p| p.to == ctr && p.covers(src))
    }

    /// What the model expects for one pair, with the reason.
    fn expect(&self, src: Src, dst: Dst) -> (Option<String>, String) {
        match (src, dst) {
            (Src::Ctr(a), Dst::Addr { ctr: b, port, .. }) if a == b => {
                // Its own address: delivered inside its own namespace, never
                // through the host's forward path.
                (Some(reply(self, b, port)), "own address (local)".into())
            }
            (Src::Outside, Dst::Addr { .. }) => (None, "outside straight to a container address".into()),
            (Src::Ctr(a), Dst::Addr { ctr: b, net, port }) => {
                let Some(from) = self.ctrs[a].addr_on(net) else {
                    return (None, format!("{} not on {}", self.ctrs[a].name, self.nets[net].name));
                };
                // Direct traffic keeps its source: A's address on N.
                if let Some(p) = self.denied(from, b, port) {
                    return (None, format!("policy #{p} denies {from}"));
                }
                if self.nets[net].icc {
                    return (Some(reply(self, b, port)), "icc on".into());
                }
                let linked = self.ctrs[a].links.contains(&b);
                match (linked, self.ctrs[b].exposes(port)) {
                    (true, true) => (Some(reply(self, b, port)), "icc off, linked, exposed port".into()),
                    (true, false) => (None, "icc off, linked, port not exposed".into()),
                    (false, _) if self.ctrs[b].links.contains(&a) => (None, "icc off, link is the other way round".into()),
                    (false, _) => (None, "icc off, no link".into()),
                }
            }
            (src, Dst::Published { ctr: b, .. }) => {
                // The source address the `policies` chain sees. From the
                // outside it is 10.99.0.2 (nothing rewrites it). From a
                // container it is the container's own address on its first
                // network (its default route, so the source address of a
                // connection to 10.99.0.1), also when the published port
                // belongs to a container of the SAME network: the hairpin
                // masquerade to the gateway is in chain `nat_postrouting`
                // (hook postrouting, priority srcnat = 100), which a packet
                // reaches only after chain `forward` (hook forward, priority
                // filter = 0) -> `to_container` -> `policies` has accepted
                // it. So policies never see the gateway as source for
                // hairpin traffic; only the server does. (With
                // bridge-nf-call-iptables the same order holds for the
                // "bridged DNAT" path br_netfilter takes when the
                // translated destination sits on the bridge the packet came
                // in on: FORWARD before POST_ROUTING.)
                let from = match src {
                    Src::Outside => OUTSIDE,
                    Src::Ctr(a) => self.ctrs[a].addrs[0],
                };
                match self.denied(from, b, 80) {
                    Some(p) => (None, format!("published, policy #{p} denies {from}")),
                    None => (Some(reply(self, b, 80)), "published".into()),
                }
            }
        }
    }

    /// Every pair of the matrix, grouped by source.
    fn plan(&self) -> Vec<(Src, Vec<Probe>)> {
        let mut srcs = vec![Src::Outside];
        srcs.extend((0..self.ctrs.len()).map(Src::Ctr));
        let mut dsts = Vec::new();
        for (b, c) in self.ctrs.iter().enumerate() {
            for &net in &c.nets {
                for port in PORTS {
                    dsts.push(Dst::Addr { ctr: b, net, port });
                }
            }
        }
        for (b, c) in self.ctrs.iter().enumerate() {
            if let Some(hp) = c.publish {
                dsts.push(Dst::Published { ctr: b, host_port: hp });
            }
        }
        srcs.into_iter()
            .map(|src| {
                let probes = dsts
                    .iter()
                    .map(|&dst| {
                        let target = match dst {
                            Dst::Addr { ctr, net, port } => SocketAddrV4::new(self.ctrs[ctr].addr_on(net).unwrap(), port),
                            Dst::Published { host_port, .. } => SocketAddrV4::new(HOST, host_port),
                        };
                        let (expect, why) = self.expect(src, dst);
                        Probe { src, dst, target, expect, why }
                    })
                    .collect();
                (src, probes)
            })
            .collect()
    }

    fn netns_path(&self, s: Src) -> String {
        match s {
            Src::Outside => "/run/netns/outside".into(),
            Src::Ctr(i) => format!("/proc/{}/ns/net", self.ctrs[i].pid),
        }
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "topology of seed {} (replay with BERTH_ISO_SEED={}):", self.seed, self.seed);
        for n in &self.nets {
            let _ = writeln!(out, "  network {:<7} icc={:<5} subnet {} gateway {}", n.name, n.icc, n.subnet, n.gateway);
        }
        for c in &self.ctrs {
            let nets: Vec<String> = c.nets.iter().zip(&c.addrs).map(|(&n, a)| format!("{}={a}", self.nets[n].name)).collect();
            let links: Vec<&str> = c.links.iter().map(|&l| self.ctrs[l].name.as_str()).collect();
            let _ = writeln!(
                out,
                "  {:<4} nets [{}]{}{}{}",
                c.name,
                nets.join(", "),
                if c.expose { " --expose 80" } else { "" },
                c.publish.map(|p| format!(" -p {p}:80")).unwrap_or_default(),
                if links.is_empty() { String::new() } else { format!(" --link {}", links.join(",")) },
            );
        }
        for (i, p) in self.pols.iter().enumerate() {
            let _ = writeln!(out, "  policy #{i}: deny --from {}/{} --to {}:80   ({})", p.net, p.prefix, self.ctrs[p.to].name, p.why);
        }
        out
    }
}

// ---------------------------------------------------------------- probing

#[derive(Debug, Clone, PartialEq)]
enum Obs {
    Reply(String),
    /// No SYN-ACK within the budget: dropped.
    Timeout,
    Refused,
    /// Connected, but no line came.
    NoReply,
    Error(i32),
}

impl Obs {
    fn show(&self) -> String {
        match self {
            Obs::Reply(r) => format!("opens, {r:?}"),
            Obs::Timeout => "blocked (timeout)".into(),
            Obs::Refused => "refused (RST)".into(),
            Obs::NoReply => "connected, no reply".into(),
            Obs::Error(e) => format!("error {}", std::io::Error::from_raw_os_error(*e)),
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Opens all connections at once (non-blocking connect + poll) in the
/// calling thread's network namespace and reads each server's line.
fn connect_all(targets: &[SocketAddrV4]) -> Vec<Obs> {
    enum St {
        Connecting,
        Reading(Vec<u8>),
        Done(Obs),
    }
    let start = Instant::now();
    let mut fds = Vec::with_capacity(targets.len());
    let mut st = Vec::with_capacity(targets.len());
    for t in targets {
        // SAFETY: plain socket calls on a descriptor we own; the address
        // struct outlives the call.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: t.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*t.ip()).to_be() },
                sin_zero: [0; 8],
            };
            let r = libc::connect(fd, &sa as *const libc::sockaddr_in as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>() as u32);
            st.push(if r == 0 {
                St::Reading(Vec::new())
            } else {
                match errno() {
                    libc::EINPROGRESS => St::Connecting,
                    libc::ECONNREFUSED => St::Done(Obs::Refused),
                    e => St::Done(Obs::Error(e)),
                }
            });
            fds.push(fd);
        }
    }
    loop {
        let now = Instant::now();
        for s in st.iter_mut() {
            match s {
                St::Connecting if now >= start + CONNECT_BUDGET => *s = St::Done(Obs::Timeout),
                St::Reading(_) if now >= start + READ_BUDGET => *s = St::Done(Obs::NoReply),
                _ => {}
            }
        }
        let mut pfds = Vec::new();
        let mut idx = Vec::new();
        let mut connecting = false;
        for (i, s) in st.iter().enumerate() {
            let events = match s {
                St::Connecting => {
                    connecting = true;
                    libc::POLLOUT
                }
                St::Reading(_) => libc::POLLIN,
                St::Done(_) => continue,
            };
            pfds.push(libc::pollfd { fd: fds[i], events, revents: 0 });
            idx.push(i);
        }
        if pfds.is_empty() {
            break;
        }
        let deadline = start + if connecting { CONNECT_BUDGET } else { READ_BUDGET };
        let wait = deadline.saturating_duration_since(now).as_millis() as i32 + 1;
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait) };
        if n < 0 && errno() != libc::EINTR {
            panic!("poll: {}", std::io::Error::last_os_error());
        }
        for (p, &i) in pfds.iter().zip(&idx) {
            if p.revents == 0 {
                continue;
            }
            let fd = fds[i];
            match &mut st[i] {
                St::Connecting => {
                    let mut err: libc::c_int = 0;
                    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                    // SAFETY: err/len are valid for SO_ERROR's int result.
                    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut err as *mut _ as *mut libc::c_void, &mut len) };
                    st[i] = match err {
                        0 => St::Reading(Vec::new()),
                        libc::ECONNREFUSED => St::Done(Obs::Refused),
                        e => St::Done(Obs::Error(e)),
                    };
                }
                St::Reading(buf) => {
                    let mut chunk = [0u8; 256];
                    // SAFETY: reading into a local buffer of the given size.
                    let r = unsafe { libc::read(fd, chunk.as_mut_ptr() as *mut libc::c_void, chunk.len()) };
                    if r > 0 {
                        buf.extend_from_slice(&chunk[..r as usize]);
                        if buf.contains(&b'\n') {
                            let line = String::from_utf8_lossy(buf).lines().next().unwrap_or("").trim().to_string();
                            st[i] = St::Done(Obs::Reply(line));
                        }
                    } else if r == 0 {
                        let text = String::from_utf8_lossy(buf).trim().to_string();
                        st[i] = St::Done(if text.is_empty() { Obs::NoReply } else { Obs::Reply(text) });
                    } else {
                        match errno() {
                            libc::EAGAIN | libc::EINTR => {}
                            libc::ECONNREFUSED => st[i] = St::Done(Obs::Refused),
                            e => st[i] = St::Done(Obs::Error(e)),
                        }
                    }
                }
                St::Done(_) => {}
            }
        }
    }
    for fd in fds {
        // SAFETY: closing descriptors we opened.
        unsafe { libc::close(fd) };
    }
    st.into_iter()
        .map(|s| match s {
            St::Done(o) => o,
            _ => unreachable!(),
        })
        .collect()
}

/// Runs `connect_all` for every source at once, each in a fresh thread that
/// enters the source's network namespace (and then only probes and ends).
fn probe_sources(jobs: Vec<(String, Vec<SocketAddrV4>)>) -> Vec<Vec<Obs>> {
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(ns, targets)| {
            std::thread::spawn(move || {
                let f = std::fs::File::open(&ns).unwrap_or_else(|e| panic!("open {ns}: {e}"));
                // SAFETY: switches only this thread's network namespace; the
                // thread ends after probing.
                if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    panic!("setns {ns}: {}", std::io::Error::last_os_error());
                }
                drop(f);
                connect_all(&targets)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("probe thread")).collect()
}

// ---------------------------------------------------------------- building

fn server_script(name: &str) -> String {
    let l = |p: u16| format!("socat TCP-LISTEN:{p},fork,reuseaddr,backlog=128 EXEC:'echo {name} {p}'");
    format!("{} & exec {}", l(80), l(81))
}

/// Pids and addresses from `berth inspect`; checks the addresses did not move.
fn refresh(s: &Sandbox, t: &mut Topo, when: &str) {
    let mut args = vec!["inspect"];
    args.extend(t.ctrs.iter().map(|c| c.name.as_str()));
    let list: Vec<serde_json::Value> = serde_json::from_str(&s.ok(&args)).unwrap();
    for (c, v) in t.ctrs.iter_mut().zip(&list) {
        assert_eq!(v["State"]["Running"], true, "seed {}: {} is not running {when}", t.seed, c.name);
        c.pid = v["State"]["Pid"].as_u64().unwrap() as u32;
        let nets = v["NetworkSettings"]["Networks"].as_object().unwrap();
        assert_eq!(nets.len(), c.nets.len(), "seed {}: {} networks {when}: {v}", t.seed, c.name);
        let addrs: Vec<Ipv4Addr> = c.nets.iter().map(|&n| nets[&t.nets[n].name]["IPAddress"].as_str().unwrap().parse().unwrap()).collect();
        if !c.addrs.is_empty() {
            assert_eq!(addrs, c.addrs, "seed {}: {}'s addresses changed {when}", t.seed, c.name);
        }
        c.addrs = addrs;
    }
}

/// Waits until every container's servers listen (from its own namespace).
fn wait_ready(t: &Topo) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let jobs = (0..t.ctrs.len()).map(|i| (t.netns_path(Src::Ctr(i)), PORTS.iter().map(|&p| SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)).collect())).collect();
        let res = probe_sources(jobs);
        let missing: Vec<String> = res
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.iter().zip(PORTS).filter(move |(o, p)| **o != Obs::Reply(reply(t, i, *p))).map(move |(o, p)| format!("{}:{p} {}", t.ctrs[i].name, o.show())))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "seed {}: servers not ready: {missing:?}", t.seed);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn build(s: &Sandbox, r: &mut Rng, seed: u64, default_icc: bool, user_icc: &[bool]) -> Topo {
    let mut nets = Vec::new();
    for (i, &icc) in std::iter::once(&default_icc).chain(user_icc).enumerate() {
        let name = if i == 0 { "berth0".to_string() } else { format!("iso{i}") };
        if i > 0 {
            let mut args = vec!["network", "create"];
            if !icc {
                args.extend(["-o", "icc=false"]);
            }
            args.push(&name);
            s.ok(&args);
        }
        let v: serde_json::Value = serde_json::from_str(&s.ok(&["network", "inspect", &name])).unwrap();
        let cfg = &v[0]["IPAM"]["Config"][0];
        nets.push(Net {
            name,
            icc,
            subnet: cfg["Subnet"].as_str().unwrap().to_string(),
            gateway: cfg["Gateway"].as_str().unwrap().parse().unwrap(),
        });
    }
    let mut t = Topo { seed, nets, ctrs: Vec::new(), pols: Vec::new() };
    let n = 8 + r.below(3) as usize;
    for i in 0..n {
        let name = format!("c{i}");
        let primary = r.below(t.nets.len() as u64) as usize;
        let expose = chance(r, 2);
        let publish = chance(r, 3).then_some(30000 + i as u16);
        // Links only to running containers on the network this one starts on.
        let mut links = Vec::new();
        for (j, c) in t.ctrs.iter().enumerate() {
            if c.nets.contains(&primary) && links.len() < 2 && chance(r, 2) {
                links.push(j);
            }
        }
        let mut opts: Vec<String> = vec!["--network".into(), t.nets[primary].name.clone()];
        if expose {
            opts.extend(["--expose".into(), "80".into()]);
        }
        if let Some(hp) = publish {
            opts.extend(["-p".into(), format!("{hp}:80")]);
        }
        for &j in &links {
            opts.extend(["--link".into(), format!("{}:al{}", t.ctrs[j].name, t.ctrs[j].name)]);
        }
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        s.run(&name, &opts, &server_script(&name));
        t.ctrs.push(Ctr { name, nets: vec![primary], addrs: Vec::new(), expose, publish, links, pid: 0 });
        // Now and then connect some single-homed container to a second network.
        if chance(r, 3) {
            let single: Vec<usize> = (0..t.ctrs.len()).filter(|&k| t.ctrs[k].nets.len() == 1).collect();
            if !single.is_empty() {
                let k = single[r.below(single.len() as u64) as usize];
                let others: Vec<usize> = (0..t.nets.len()).filter(|&m| m != t.ctrs[k].nets[0]).collect();
                let m = others[r.below(others.len() as u64) as usize];
                s.ok(&["network", "connect", &t.nets[m].name, &t.ctrs[k].name]);
                t.ctrs[k].nets.push(m);
            }
        }
    }
    refresh(s, &mut t, "after start");
    // A few deny policies on port 80: from the outside machine, or from a
    // block around one container's address (which may take in neighbours
    // and the gateway too).
    let published: Vec<usize> = (0..t.ctrs.len()).filter(|&k| t.ctrs[k].publish.is_some()).collect();
    for _ in 0..2 + r.below(3) {
        let to = if !published.is_empty() && chance(r, 2) {
            published[r.below(published.len() as u64) as usize]
        } else {
            r.below(t.ctrs.len() as u64) as usize
        };
        // Containers that reach `to`'s published port from its own network
        // (hairpin: masqueraded to the gateway after the policies ran).
        let same_net: Vec<usize> = match t.ctrs[to].publish {
            Some(_) => (0..t.ctrs.len()).filter(|&x| t.ctrs[x].nets[0] == t.ctrs[to].nets[0]).collect(),
            None => vec![],
        };
        let (addr, prefix, why) = if chance(r, 3) {
            let prefix = [32u8, 31, 24][r.below(3) as usize];
            (OUTSIDE, prefix, "covers the outside machine".to_string())
        } else if !same_net.is_empty() && chance(r, 2) {
            let x = same_net[r.below(same_net.len() as u64) as usize];
            let prefix = [32u8, 32, 30][r.below(3) as usize];
            (t.ctrs[x].addrs[0], prefix, format!("covers {}@{}, hairpin source", t.ctrs[x].name, t.nets[t.ctrs[x].nets[0]].name))
        } else {
            let x = r.below(t.ctrs.len() as u64) as usize;
            let k = r.below(t.ctrs[x].nets.len() as u64) as usize;
            let prefix = [32u8, 32, 31, 30, 29][r.below(5) as usize];
            (t.ctrs[x].addrs[k], prefix, format!("covers {}@{}", t.ctrs[x].name, t.nets[t.ctrs[x].nets[k]].name))
        };
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let net = Ipv4Addr::from(u32::from(addr) & mask);
        let (from, target) = (format!("{net}/{prefix}"), format!("{}:80", t.ctrs[to].name));
        let o = s.berth(&["policy", "deny", "--from", &from, "--to", &target]);
        t.pols.push(Pol { net, prefix, to, why });
        assert!(
            o.status.success(),
            "seed {seed}: `berth policy deny --from {from} --to {target}` (policy #{}) was refused: {}\n{}",
            t.pols.len() - 1,
            String::from_utf8_lossy(&o.stderr).trim(),
            t.describe()
        );
    }
    t
}

// ---------------------------------------------------------------- the suite

/// Runs a step of the harness; if it panics, panics again with the seed and
/// the topology (the harness's own message says neither). The containers'
/// commands (each its own process group) are killed first: when the daemon
/// cannot come back, the harness cannot remove them.
fn step<R>(t: &Topo, what: &str, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(e) => {
            for c in t.ctrs.iter().filter(|c| c.pid > 1) {
                // SAFETY: signals the process group of a command this test started.
                unsafe { libc::kill(-(c.pid as i32), libc::SIGKILL) };
            }
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            panic!("seed {}: {what} failed: {msg}\n{}", t.seed, t.describe())
        }
    }
}

/// Probes the whole matrix; returns (pairs probed, mismatch table lines).
fn round(t: &Topo, label: &str) -> (usize, Vec<String>) {
    let plan = t.plan();
    let jobs = plan.iter().map(|(src, probes)| (t.netns_path(*src), probes.iter().map(|p| p.target).collect())).collect();
    let started = Instant::now();
    let results = probe_sources(jobs);
    let took = started.elapsed();
    let mut pairs = 0;
    let mut bad = Vec::new();
    let (mut open, mut blocked) = (0, 0);
    for ((_, probes), obs) in plan.iter().zip(results) {
        for (p, o) in probes.iter().zip(obs) {
            pairs += 1;
            let want = match &p.expect {
                Some(r) => Obs::Reply(r.clone()),
                None => Obs::Timeout,
            };
            if matches!(o, Obs::Reply(_)) {
                open += 1;
            } else {
                blocked += 1;
            }
            if o != want {
                bad.push(format!(
                    "  {label:<10} {:<16} -> {:<40} {:<26} {:<26} [{}]",
                    t.src_name(p.src),
                    t.dst_name(p.dst),
                    want.show(),
                    o.show(),
                    p.why
                ));
            }
        }
    }
    eprintln!("isolation: {label}: {pairs} pairs in {} ms ({open} open, {blocked} blocked), {} mismatches", took.as_millis(), bad.len());
    (pairs, bad)
}

#[test]
fn isolation_matrix() {
    let seed = std::env::var("BERTH_ISO_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("isolation: seed {seed} (replay with BERTH_ISO_SEED={seed})");
    let mut r = Rng(seed);
    let default_icc = !chance(&mut r, 3);
    let mut user_icc: Vec<bool> = (0..3).map(|_| chance(&mut r, 2)).collect();
    // At least one icc=false and one icc=true user network.
    if user_icc.iter().all(|&i| i) {
        user_icc[r.below(3) as usize] = false;
    }
    if user_icc.iter().all(|&i| !i) {
        user_icc[r.below(3) as usize] = true;
    }
    let daemon_args: &[&str] = if default_icc { &[] } else { &["--icc=false"] };
    let Some(mut s) = Sandbox::with_args(daemon_args) else { return };
    let started = Instant::now();
    let mut t = build(&s, &mut r, seed, default_icc, &user_icc);
    let subnets: Vec<&str> = t.nets.iter().map(|n| n.subnet.as_str()).collect();
    s.outside(&subnets);
    eprint!("{}", t.describe());
    wait_ready(&t);
    let built = started.elapsed();

    let mut rounds = Vec::new();
    let mut mismatches = Vec::new();
    let (n, bad) = round(&t, "as built");
    rounds.push(n);
    mismatches.extend(bad);

    s.stop_daemon(false);
    step(&t, "restarting the daemon", || s.start_daemon());
    refresh(&s, &mut t, "after the daemon restart");
    wait_ready(&t);
    let (n, bad) = round(&t, "restart");
    rounds.push(n);
    mismatches.extend(bad);

    sh("nft flush ruleset");
    step(&t, "`berth reconcile` after `nft flush ruleset`", || s.ok(&["reconcile"]));
    refresh(&s, &mut t, "after nft flush ruleset + reconcile");
    wait_ready(&t);
    let (n, bad) = round(&t, "reconcile");
    rounds.push(n);
    mismatches.extend(bad);

    let links: usize = t.ctrs.iter().map(|c| c.links.len()).sum();
    eprintln!(
        "isolation: seed {seed}: {} containers, {} networks, {links} links, {} policies; pairs probed {} / {} / {} \
         (as built / after restart / after flush+reconcile); set-up {} ms, total {} ms",
        t.ctrs.len(),
        t.nets.len(),
        t.pols.len(),
        rounds[0],
        rounds[1],
        rounds[2],
        built.as_millis(),
        started.elapsed().as_millis()
    );
    if !mismatches.is_empty() {
        panic!(
            "seed {seed}: {} mismatches between the model and the probes\n{}\n  round      source           -> destination                              expected                   observed                   [model's reason]\n{}\n--- rules ---\n{}",
            mismatches.len(),
            t.describe(),
            mismatches.join("\n"),
            sh("nft list table inet berth 2>&1 || true")
        );
    }
}
