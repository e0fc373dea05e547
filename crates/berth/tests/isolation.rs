//! The isolation matrix: a seeded random topology (three user networks with
//! icc randomly on or off plus the default network, each of them IPv4-only,
//! dual-stack or — at most one user network — IPv6-only; 8-10 containers,
//! some on two networks, some exposing or publishing port 80, links, deny
//! policies with IPv4 and IPv6 sources, an "outside" machine), a model of
//! who may open a TCP connection to whom over which family, computed from
//! that topology alone (berth's documented semantics, not berth's answers),
//! and a probe of every pair in every family compared with the model —
//! first as built, then after a daemon restart, then after
//! `nft flush ruleset` + `berth reconcile`.
//!
//! BERTH_ISO_SEED replays a run.

mod common;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;

/// A SYN that gets no answer within this is a dropped one ("blocked").
const CONNECT_BUDGET: Duration = Duration::from_millis(500);
/// Time for connected servers to fork and send their line.
const READ_BUDGET: Duration = Duration::from_secs(5);
const PORTS: [u16; 2] = [80, 81];

fn chance(r: &mut Rng, one_in: u64) -> bool {
    r.below(one_in) == 0
}

// ---------------------------------------------------------------- the model

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fam {
    V4,
    V6,
}

const FAMS: [Fam; 2] = [Fam::V4, Fam::V6];

impl Fam {
    fn of(ip: IpAddr) -> Fam {
        if ip.is_ipv6() {
            Fam::V6
        } else {
            Fam::V4
        }
    }
    fn name(self) -> &'static str {
        match self {
            Fam::V4 => "IPv4",
            Fam::V6 => "IPv6",
        }
    }
    /// The host's address on the uplink (10.99.0.1, fd99::1): where the
    /// outside machine and the containers reach published ports.
    fn host(self) -> IpAddr {
        match self {
            Fam::V4 => Ipv4Addr::new(10, 99, 0, 1).into(),
            Fam::V6 => Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1).into(),
        }
    }
    /// The outside machine's address (10.99.0.2, fd99::2).
    fn outside(self) -> IpAddr {
        match self {
            Fam::V4 => Ipv4Addr::new(10, 99, 0, 2).into(),
            Fam::V6 => Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 2).into(),
        }
    }
    fn loopback(self) -> IpAddr {
        match self {
            Fam::V4 => Ipv4Addr::LOCALHOST.into(),
            Fam::V6 => Ipv6Addr::LOCALHOST.into(),
        }
    }
}

/// `ip` with all but the first `prefix` bits cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) };
            Ipv4Addr::from(u32::from(a) & m).into()
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix as u32) };
            Ipv6Addr::from(u128::from(a) & m).into()
        }
    }
}

/// One family's address block of a network.
struct Block {
    subnet: String,
    gateway: IpAddr,
}

/// What `berth network create` asks for (the default network: the daemon's
/// `--ipv6`).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    V4Only,
    Dual,
    V6Only,
}

impl Kind {
    fn has(self, f: Fam) -> bool {
        !matches!((self, f), (Kind::V4Only, Fam::V6) | (Kind::V6Only, Fam::V4))
    }
}

struct Net {
    name: String,
    icc: bool,
    v4: Option<Block>,
    v6: Option<Block>,
}

impl Net {
    fn block(&self, f: Fam) -> Option<&Block> {
        match f {
            Fam::V4 => self.v4.as_ref(),
            Fam::V6 => self.v6.as_ref(),
        }
    }
    fn has(&self, f: Fam) -> bool {
        self.block(f).is_some()
    }
    fn kind(&self) -> &'static str {
        match (self.has(Fam::V4), self.has(Fam::V6)) {
            (true, true) => "dual-stack",
            (true, false) => "IPv4",
            (false, true) => "IPv6-only",
            (false, false) => "no-address",
        }
    }
}

struct Ctr {
    name: String,
    /// Indices into `Topo::nets` in attachment order; the first is
    /// `--network`, later ones come from `network connect`.
    nets: Vec<usize>,
    /// Addresses on each of `nets` (same order; IPv4 first, then IPv6, as
    /// the network has them), from `berth inspect`.
    addrs: Vec<Vec<IpAddr>>,
    expose: bool,
    publish: Option<u16>,
    /// Indices into `Topo::ctrs` of the containers this one `--link`s to.
    links: Vec<usize>,
    pid: u32,
}

impl Ctr {
    fn addr_on(&self, net: usize, f: Fam) -> Option<IpAddr> {
        let i = self.nets.iter().position(|&n| n == net)?;
        self.addrs[i].iter().copied().find(|a| Fam::of(*a) == f)
    }
    /// The first network (in attachment order) on which the container has
    /// an address of family `f`, with that address. Every network of the
    /// matrix has a gateway, so this network carries the container's
    /// default route of that family: the address is the source of its
    /// connections through the host (to 10.99.0.1 / fd99::1 and to other
    /// networks), and the one its published ports lead to in that family.
    /// None: the container has no route at all in that family.
    fn first_addr(&self, f: Fam) -> Option<(usize, IpAddr)> {
        self.nets.iter().zip(&self.addrs).find_map(|(&n, a)| a.iter().copied().find(|a| Fam::of(*a) == f).map(|a| (n, a)))
    }
    /// Exposed ports: `--expose` and the container side of `-p` (only ever 80).
    fn exposes(&self, port: u16) -> bool {
        port == 80 && (self.expose || self.publish.is_some())
    }
}

/// `berth policy deny --from NET/PREFIX --to CTR:80`, NET of either family.
struct Pol {
    net: IpAddr,
    prefix: u8,
    to: usize,
    why: String,
}

impl Pol {
    /// A policy holds only for sources of its own family.
    fn covers(&self, ip: IpAddr) -> bool {
        Fam::of(ip) == Fam::of(self.net) && masked(ip, self.prefix) == self.net
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
    /// Straight to the container's address of family `fam` on one of its
    /// networks.
    Addr { ctr: usize, net: usize, port: u16, fam: Fam },
    /// A published port through the host address of family `fam`
    /// (10.99.0.1 or fd99::1).
    Published { ctr: usize, host_port: u16, fam: Fam },
}

impl Dst {
    fn fam(self) -> Fam {
        match self {
            Dst::Addr { fam, .. } | Dst::Published { fam, .. } => fam,
        }
    }
}

struct Probe {
    src: Src,
    dst: Dst,
    target: SocketAddr,
    /// What the model says the probe sees.
    expect: Obs,
    why: String,
}

fn reply(t: &Topo, ctr: usize, port: u16) -> String {
    format!("{} {port}", t.ctrs[ctr].name)
}

impl Topo {
    fn src_name(&self, s: Src, f: Fam) -> String {
        match s {
            Src::Outside => format!("outside({})", f.outside()),
            Src::Ctr(i) => self.ctrs[i].name.clone(),
        }
    }

    fn target(&self, d: Dst) -> SocketAddr {
        match d {
            Dst::Addr { ctr, net, port, fam } => SocketAddr::new(self.ctrs[ctr].addr_on(net, fam).unwrap(), port),
            Dst::Published { host_port, fam, .. } => SocketAddr::new(fam.host(), host_port),
        }
    }

    fn dst_name(&self, d: Dst) -> String {
        match d {
            Dst::Addr { ctr, net, .. } => format!("{}@{} {}", self.ctrs[ctr].name, self.nets[net].name, self.target(d)),
            Dst::Published { ctr, .. } => format!("{} (-> {}:80)", self.target(d), self.ctrs[ctr].name),
        }
    }

    /// The first deny policy on `ctr:port` whose source CIDR covers `src`.
    fn denied(&self, src: IpAddr, ctr: usize, port: u16) -> Option<usize> {
        if port != 80 {
            return None;
        }
        self.pols.iter().position(|p| p.to == ctr && p.covers(src))
    }

    /// What the model expects for one pair, with the reason.
    fn expect(&self, src: Src, dst: Dst) -> (Obs, String) {
        let f = dst.fam();
        let open = |b: usize, port: u16| Obs::Reply(reply(self, b, port));
        if let Src::Ctr(a) = src {
            if self.ctrs[a].first_addr(f).is_none() {
                // No address of the family on any network: no route of it
                // either (only loopback), so connect() fails at once.
                return (Obs::Error(libc::ENETUNREACH), format!("{} has no {} address: no route", self.ctrs[a].name, f.name()));
            }
        }
        match (src, dst) {
            (Src::Ctr(a), Dst::Addr { ctr: b, port, .. }) if a == b => {
                // Its own address: delivered inside its own namespace, never
                // through the host's forward path.
                (open(b, port), "own address (local)".into())
            }
            (Src::Outside, Dst::Addr { .. }) => (Obs::Timeout, "outside straight to a container address".into()),
            (Src::Ctr(a), Dst::Addr { ctr: b, net, port, fam }) => {
                let Some(from) = self.ctrs[a].addr_on(net, fam) else {
                    return (Obs::Timeout, format!("{} not on {}", self.ctrs[a].name, self.nets[net].name));
                };
                // Direct traffic keeps its source: A's address on N (of the
                // family dialled).
                if let Some(p) = self.denied(from, b, port) {
                    return (Obs::Timeout, format!("policy #{p} denies {from}"));
                }
                if self.nets[net].icc {
                    return (open(b, port), "icc on".into());
                }
                let linked = self.ctrs[a].links.contains(&b);
                match (linked, self.ctrs[b].exposes(port)) {
                    (true, true) => (open(b, port), "icc off, linked, exposed port".into()),
                    (true, false) => (Obs::Timeout, "icc off, linked, port not exposed".into()),
                    (false, _) if self.ctrs[b].links.contains(&a) => (Obs::Timeout, "icc off, link is the other way round".into()),
                    (false, _) => (Obs::Timeout, "icc off, no link".into()),
                }
            }
            (src, Dst::Published { ctr: b, fam, .. }) => {
                // A port published on every address is published in each
                // family the container has an address of; in the other
                // there is no translation and nothing on the host listens.
                if self.ctrs[b].first_addr(fam).is_none() {
                    return (Obs::Refused, format!("published, but {} has no {} address: the host refuses", self.ctrs[b].name, fam.name()));
                }
                // The source address the `policies` chain sees. From the
                // outside it is 10.99.0.2 / fd99::2 (nothing rewrites it).
                // From a container it is the container's own address of
                // that family on the network of its default route (the
                // source address of a connection to 10.99.0.1 / fd99::1),
                // also when the published port belongs to a container of
                // the SAME network: the hairpin masquerade to the gateway
                // is in chain `nat_postrouting` (hook postrouting, priority
                // srcnat = 100), which a packet reaches only after chain
                // `forward` (hook forward, priority filter = 0) ->
                // `to_container` -> `policies` has accepted it. So policies
                // never see the gateway as source for hairpin traffic;
                // only the server does. (With bridge-nf-call-iptables /
                // -ip6tables the same order holds for the "bridged DNAT"
                // path br_netfilter takes when the translated destination
                // sits on the bridge the packet came in on: FORWARD before
                // POST_ROUTING.)
                let from = match src {
                    Src::Outside => fam.outside(),
                    Src::Ctr(a) => self.ctrs[a].first_addr(fam).unwrap().1,
                };
                match self.denied(from, b, 80) {
                    Some(p) => (Obs::Timeout, format!("published, policy #{p} denies {from}")),
                    None => (open(b, 80), "published".into()),
                }
            }
        }
    }

    /// Every pair of the matrix in both families, grouped by source.
    fn plan(&self) -> Vec<(Src, Vec<Probe>)> {
        let mut srcs = vec![Src::Outside];
        srcs.extend((0..self.ctrs.len()).map(Src::Ctr));
        let mut dsts = Vec::new();
        for (b, c) in self.ctrs.iter().enumerate() {
            for &net in &c.nets {
                for fam in FAMS.into_iter().filter(|&f| self.nets[net].has(f)) {
                    for port in PORTS {
                        dsts.push(Dst::Addr { ctr: b, net, port, fam });
                    }
                }
            }
        }
        for (b, c) in self.ctrs.iter().enumerate() {
            if let Some(hp) = c.publish {
                for fam in FAMS {
                    dsts.push(Dst::Published { ctr: b, host_port: hp, fam });
                }
            }
        }
        srcs.into_iter()
            .map(|src| {
                let probes = dsts
                    .iter()
                    .map(|&dst| {
                        let (expect, why) = self.expect(src, dst);
                        Probe { src, dst, target: self.target(dst), expect, why }
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

    /// Every subnet of every network (the outside machine's routes).
    fn subnets(&self) -> Vec<&str> {
        self.nets.iter().flat_map(|n| FAMS.into_iter().filter_map(|f| n.block(f).map(|b| b.subnet.as_str()))).collect()
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "topology of seed {} (replay with BERTH_ISO_SEED={}):", self.seed, self.seed);
        for n in &self.nets {
            let blocks: Vec<String> = FAMS.into_iter().filter_map(|f| n.block(f)).map(|b| format!("subnet {} gateway {}", b.subnet, b.gateway)).collect();
            let _ = writeln!(out, "  network {:<7} icc={:<5} {:<10} {}", n.name, n.icc, n.kind(), blocks.join(", "));
        }
        for c in &self.ctrs {
            let nets: Vec<String> = c
                .nets
                .iter()
                .zip(&c.addrs)
                .map(|(&n, a)| format!("{}={}", self.nets[n].name, a.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("+")))
                .collect();
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
            let _ = writeln!(
                out,
                "  policy #{i}: deny --from {}/{} --to {}:80   ({}, {})",
                p.net,
                p.prefix,
                self.ctrs[p.to].name,
                Fam::of(p.net).name(),
                p.why
            );
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
            Obs::Error(libc::ENETUNREACH) => "no route (ENETUNREACH)".into(),
            Obs::Error(e) => format!("error {}", std::io::Error::from_raw_os_error(*e)),
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Opens all connections at once (non-blocking connect + poll) in the
/// calling thread's network namespace and reads each server's line.
fn connect_all(targets: &[SocketAddr]) -> Vec<Obs> {
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
            let domain = if t.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
            let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let r = match t {
                SocketAddr::V4(t) => {
                    let sa = libc::sockaddr_in {
                        sin_family: libc::AF_INET as libc::sa_family_t,
                        sin_port: t.port().to_be(),
                        sin_addr: libc::in_addr { s_addr: u32::from(*t.ip()).to_be() },
                        sin_zero: [0; 8],
                    };
                    libc::connect(fd, &sa as *const libc::sockaddr_in as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>() as u32)
                }
                SocketAddr::V6(t) => {
                    let sa = libc::sockaddr_in6 {
                        sin6_family: libc::AF_INET6 as libc::sa_family_t,
                        sin6_port: t.port().to_be(),
                        sin6_flowinfo: 0,
                        sin6_addr: libc::in6_addr { s6_addr: t.ip().octets() },
                        sin6_scope_id: 0,
                    };
                    libc::connect(fd, &sa as *const libc::sockaddr_in6 as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in6>() as u32)
                }
            };
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
fn probe_sources(jobs: Vec<(String, Vec<SocketAddr>)>) -> Vec<Vec<Obs>> {
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

/// Servers on ports 80 and 81 that answer `NAME PORT`, each one IPv6
/// socket that takes IPv4 too (as v4-mapped): socat's TCP-LISTEN is IPv4
/// only.
fn server_script(name: &str) -> String {
    let l = |p: u16| format!("socat TCP6-LISTEN:{p},ipv6only=0,fork,reuseaddr,backlog=128 EXEC:'echo {name} {p}'");
    format!("{} & exec {}", l(80), l(81))
}

/// Pids and addresses from `berth inspect`; checks that every container
/// has one address of each family its networks have (and none of the
/// others) and that the addresses did not move.
fn refresh(s: &Sandbox, t: &mut Topo, when: &str) {
    let mut args = vec!["inspect"];
    args.extend(t.ctrs.iter().map(|c| c.name.as_str()));
    let list: Vec<serde_json::Value> = serde_json::from_str(&s.ok(&args)).unwrap();
    for (c, v) in t.ctrs.iter_mut().zip(&list) {
        assert_eq!(v["State"]["Running"], true, "seed {}: {} is not running {when}", t.seed, c.name);
        c.pid = v["State"]["Pid"].as_u64().unwrap() as u32;
        let nets = v["NetworkSettings"]["Networks"].as_object().unwrap();
        assert_eq!(nets.len(), c.nets.len(), "seed {}: {} networks {when}: {v}", t.seed, c.name);
        let mut addrs = Vec::new();
        for &n in &c.nets {
            let net = &t.nets[n];
            let ep = &nets[&net.name];
            let mut a: Vec<IpAddr> = Vec::new();
            for (f, key) in [(Fam::V4, "IPAddress"), (Fam::V6, "GlobalIPv6Address")] {
                let text = ep[key].as_str().unwrap_or("");
                let ip: Option<IpAddr> = (!text.is_empty()).then(|| text.parse().unwrap_or_else(|e| panic!("seed {}: {}'s {key} {text:?}: {e}", t.seed, c.name)));
                assert_eq!(
                    ip.is_some(),
                    net.has(f),
                    "seed {}: {} on {} ({} network) has {key} {text:?} {when}: {ep}",
                    t.seed,
                    c.name,
                    net.name,
                    net.kind()
                );
                if let Some(ip) = ip {
                    assert_eq!(Fam::of(ip), f, "seed {}: {}'s {key} is {ip} {when}", t.seed, c.name);
                    a.push(ip);
                }
            }
            addrs.push(a);
        }
        if !c.addrs.is_empty() {
            assert_eq!(addrs, c.addrs, "seed {}: {}'s addresses changed {when}", t.seed, c.name);
        }
        c.addrs = addrs;
    }
}

/// Waits until every container's servers listen on both families (from
/// its own namespace: 127.0.0.1 and [::1]).
fn wait_ready(t: &Topo) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let local: Vec<SocketAddr> = FAMS.into_iter().flat_map(|f| PORTS.map(|p| SocketAddr::new(f.loopback(), p))).collect();
    loop {
        let jobs = (0..t.ctrs.len()).map(|i| (t.netns_path(Src::Ctr(i)), local.clone())).collect();
        let res = probe_sources(jobs);
        let missing: Vec<String> = res
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.iter().zip(&local).filter(move |(o, a)| **o != Obs::Reply(reply(t, i, a.port()))).map(move |(o, a)| format!("{} {a} {}", t.ctrs[i].name, o.show()))
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "seed {}: servers not ready: {missing:?}", t.seed);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The address blocks of a network, from `berth network inspect`.
fn blocks(s: &Sandbox, name: &str) -> (Option<Block>, Option<Block>) {
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["network", "inspect", name])).unwrap();
    let (mut v4, mut v6) = (None, None);
    for cfg in v[0]["IPAM"]["Config"].as_array().unwrap() {
        let gateway: IpAddr = cfg["Gateway"].as_str().unwrap().parse().unwrap();
        let b = Block { subnet: cfg["Subnet"].as_str().unwrap().to_string(), gateway };
        let slot = if gateway.is_ipv6() { &mut v6 } else { &mut v4 };
        assert!(slot.is_none(), "{name} has two {} blocks: {v}", Fam::of(gateway).name());
        *slot = Some(b);
    }
    (v4, v6)
}

fn build(s: &Sandbox, r: &mut Rng, seed: u64, default: (bool, Kind), user: &[(bool, Kind)]) -> Topo {
    let mut nets = Vec::new();
    for (i, &(icc, kind)) in std::iter::once(&default).chain(user).enumerate() {
        let name = if i == 0 { "berth0".to_string() } else { format!("iso{i}") };
        if i > 0 {
            let mut args = vec!["network", "create"];
            if kind != Kind::V4Only {
                // The IPv6 subnet: a /64 from the pool.
                args.push("--ipv6");
            }
            if kind == Kind::V6Only {
                args.push("--ipv4=false");
            }
            if !icc {
                args.extend(["-o", "icc=false"]);
            }
            args.push(&name);
            s.ok(&args);
        }
        let (v4, v6) = blocks(s, &name);
        let net = Net { name, icc, v4, v6 };
        for f in FAMS {
            assert_eq!(net.has(f), kind.has(f), "seed {seed}: {} is {} but was made {}", net.name, net.kind(), if kind.has(f) { "with" } else { "without" });
        }
        nets.push(net);
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
        // Now and then connect some single-homed container to a second
        // network (which may give it a family its first network lacks, and
        // with it a default route and published ports of that family).
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
    // A few deny policies on port 80, each of one family: from the outside
    // machine, or from a block around one container's address (which may
    // take in neighbours and the gateway too).
    let published: Vec<usize> = (0..t.ctrs.len()).filter(|&k| t.ctrs[k].publish.is_some()).collect();
    let any6 = t.ctrs.iter().any(|c| c.first_addr(Fam::V6).is_some());
    for _ in 0..2 + r.below(4) {
        let to = if !published.is_empty() && chance(r, 2) {
            published[r.below(published.len() as u64) as usize]
        } else {
            r.below(t.ctrs.len() as u64) as usize
        };
        let fam = if any6 && chance(r, 2) { Fam::V6 } else { Fam::V4 };
        // Containers that reach `to`'s published port in this family from
        // the network it leads to (hairpin: masqueraded to the gateway
        // after the policies ran).
        let same_net: Vec<usize> = match (t.ctrs[to].publish, t.ctrs[to].first_addr(fam)) {
            (Some(_), Some((n, _))) => (0..t.ctrs.len()).filter(|&x| t.ctrs[x].first_addr(fam).map(|(m, _)| m) == Some(n)).collect(),
            _ => vec![],
        };
        // Every container address of the family: (container, network, address).
        let addrs: Vec<(usize, usize, IpAddr)> = t
            .ctrs
            .iter()
            .enumerate()
            .flat_map(|(x, c)| c.nets.iter().filter_map(move |&n| c.addr_on(n, fam).map(|a| (x, n, a))))
            .collect();
        let (v4, v6) = (fam == Fam::V4, fam == Fam::V6);
        let (addr, prefix, why) = if addrs.is_empty() || chance(r, 3) {
            let prefix = if v6 { r.pick(&[128u8, 127, 64]) } else { r.pick(&[32u8, 31, 24]) };
            (fam.outside(), prefix, "covers the outside machine".to_string())
        } else if !same_net.is_empty() && chance(r, 2) {
            let x = same_net[r.below(same_net.len() as u64) as usize];
            let prefix = if v6 { r.pick(&[128u8, 128, 126]) } else { r.pick(&[32u8, 32, 30]) };
            let (n, a) = t.ctrs[x].first_addr(fam).unwrap();
            (a, prefix, format!("covers {}@{}, hairpin source", t.ctrs[x].name, t.nets[n].name))
        } else {
            let (x, n, a) = addrs[r.below(addrs.len() as u64) as usize];
            let prefix = if v4 { r.pick(&[32u8, 32, 31, 30, 29]) } else { r.pick(&[128u8, 128, 127, 126, 125]) };
            (a, prefix, format!("covers {}@{}", t.ctrs[x].name, t.nets[n].name))
        };
        let net = masked(addr, prefix);
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

/// Pairs probed in one round, per family (IPv4, IPv6).
type Count = [usize; 2];

/// Probes the whole matrix; returns (pairs probed per family, mismatch
/// table lines).
fn round(t: &Topo, label: &str) -> (Count, Vec<String>) {
    let plan = t.plan();
    let jobs = plan.iter().map(|(src, probes)| (t.netns_path(*src), probes.iter().map(|p| p.target).collect())).collect();
    let started = Instant::now();
    let results = probe_sources(jobs);
    let took = started.elapsed();
    let mut pairs: Count = [0, 0];
    let mut bad = Vec::new();
    let (mut open, mut blocked, mut refused, mut unroutable) = (0, 0, 0, 0);
    for ((_, probes), obs) in plan.iter().zip(results) {
        for (p, o) in probes.iter().zip(obs) {
            let fam = p.dst.fam();
            pairs[fam as usize] += 1;
            match p.expect {
                Obs::Reply(_) => open += 1,
                Obs::Refused => refused += 1,
                Obs::Error(_) => unroutable += 1,
                _ => blocked += 1,
            }
            if o != p.expect {
                bad.push(format!(
                    "  {label:<10} {:<4} {:<22} -> {:<52} {:<26} {:<26} [{}]",
                    fam.name(),
                    t.src_name(p.src, fam),
                    t.dst_name(p.dst),
                    p.expect.show(),
                    o.show(),
                    p.why
                ));
            }
        }
    }
    eprintln!(
        "isolation: {label}: {} pairs ({} IPv4, {} IPv6) in {} ms (expected: {open} open, {blocked} blocked, {refused} refused, {unroutable} without a route), {} mismatches",
        pairs[0] + pairs[1],
        pairs[0],
        pairs[1],
        took.as_millis(),
        bad.len()
    );
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
    // The default network is dual-stack half the time (`berth daemon
    // --ipv6`); user networks are IPv4, dual-stack or IPv6-only, with at
    // least one dual-stack and at most one IPv6-only.
    let default_kind = if chance(&mut r, 2) { Kind::Dual } else { Kind::V4Only };
    let mut kinds: Vec<Kind> = (0..3)
        .map(|_| match r.below(4) {
            0 => Kind::V4Only,
            3 => Kind::V6Only,
            _ => Kind::Dual,
        })
        .collect();
    if let Some(first) = kinds.iter().position(|&k| k == Kind::V6Only) {
        for k in kinds.iter_mut().skip(first + 1).filter(|k| **k == Kind::V6Only) {
            *k = Kind::Dual;
        }
    }
    if !kinds.contains(&Kind::Dual) {
        kinds[r.below(3) as usize] = Kind::Dual;
    }
    let mut daemon_args: Vec<&str> = vec![];
    if !default_icc {
        daemon_args.push("--icc=false");
    }
    if default_kind == Kind::Dual {
        daemon_args.push("--ipv6");
    }
    let Some(mut s) = Sandbox::with_args(&daemon_args) else { return };
    let started = Instant::now();
    let user: Vec<(bool, Kind)> = user_icc.into_iter().zip(kinds).collect();
    let mut t = build(&s, &mut r, seed, (default_icc, default_kind), &user);
    s.outside(&t.subnets());
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
    let kinds: Vec<String> = t.nets.iter().map(|n| format!("{} {}", n.name, n.kind())).collect();
    let show = |c: &Count| format!("{} ({}+{})", c[0] + c[1], c[0], c[1]);
    eprintln!(
        "isolation: seed {seed}: {} containers, {} networks ({}), {links} links, {} policies ({} IPv6); pairs probed (IPv4+IPv6) {} / {} / {} \
         (as built / after restart / after flush+reconcile); set-up {} ms, total {} ms",
        t.ctrs.len(),
        t.nets.len(),
        kinds.join(", "),
        t.pols.len(),
        t.pols.iter().filter(|p| p.net.is_ipv6()).count(),
        show(&rounds[0]),
        show(&rounds[1]),
        show(&rounds[2]),
        built.as_millis(),
        started.elapsed().as_millis()
    );
    if !mismatches.is_empty() {
        panic!(
            "seed {seed}: {} mismatches between the model and the probes\n{}\n  round      fam  source                 -> destination                                          expected                   observed                   [model's reason]\n{}\n--- rules ---\n{}",
            mismatches.len(),
            t.describe(),
            mismatches.join("\n"),
            sh("nft list table inet berth 2>&1 || true")
        );
    }
}
