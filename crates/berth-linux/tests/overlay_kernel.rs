//! Root tests of overlay (VXLAN, routed per host block) and macvlan
//! networks on the real kernel, through `LinuxKernel`. Each test enters
//! its own network and mount namespace (`sandbox::enter`) and builds its
//! "hosts", "containers" and "LAN" as namespaces inside it, named `bko…`
//! and `bkm…`; traffic only ever goes between them. Skipped with a
//! notice when not root.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use berth_core::plan::{
    bridge_mac, bridge_name, mac_for, tunnel_name, vtep_mac, BridgePlan, EndpointPlan, NetworkPlan, OverlayPlan, PortPlan, TunnelPeer, TunnelPeers,
    TunnelPlan,
};
use berth_linux::kernel::{HostOps, LinkOps, LinuxKernel, NsRef, OwnedKind};
use berth_linux::netns::Netns;
use berth_linux::{sandbox, LinuxError};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

fn root() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return false;
    }
    sandbox::enter().expect("sandbox");
    true
}

/// Runs a shell command in the sandbox; panics with its stderr if it fails.
fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn succeeds(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap().status.success()
}

/// One ICMP echo from namespace `ns`, up to `tries` times (a second
/// each): the first may wait for ARP.
fn pings(ns: &str, ip: &str, tries: u32) -> bool {
    (0..tries).any(|_| succeeds(&format!("ip netns exec {ns} ping -n -q -c1 -W1 {ip}")))
}

fn ns_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/run/netns/{name}"))
}

/// Runs `f` on a thread in the named namespace.
fn in_ns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    Netns::open(&ns_path(name)).unwrap().run(f).unwrap()
}

type Job = Box<dyn FnOnce(&LinuxKernel) + Send>;

/// A "host": a thread that has entered the host's namespace and holds a
/// `LinuxKernel` made there (it works in its caller's namespace), to
/// which calls are sent.
struct Host {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Host {
    fn new(ns: &str) -> Host {
        let netns = Netns::open(&ns_path(ns)).unwrap();
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || {
            assert_eq!(unsafe { libc::setns(netns.fd(), libc::CLONE_NEWNET) }, 0, "setns");
            let k = LinuxKernel::new(false);
            for job in rx {
                job(&k);
            }
        });
        Host { jobs: Some(tx), thread: Some(thread) }
    }

    fn run<T: Send + 'static>(&self, f: impl FnOnce(&LinuxKernel) -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |k| {
            let _ = tx.send(f(k));
        });
        self.jobs.as_ref().unwrap().send(job).expect("host thread");
        rx.recv().expect("the host thread panicked")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Route netlink notifications of one namespace (`ip monitor link
/// address route neigh`), read without waiting: the kernel sends them
/// before it acknowledges the request that caused them, so after a call
/// returns, what it changed is all there.
struct Events {
    sock: netlink_sys::Socket,
}

impl Events {
    fn open_in(ns: &str) -> Events {
        const GROUPS: u32 = 0x1 | 0x4 | 0x10 | 0x40 | 0x100 | 0x400; // link, neigh, IPv4/IPv6 addr and route
        let sock = in_ns(ns, || {
            let mut s = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE).unwrap();
            s.bind(&netlink_sys::SocketAddr::new(0, GROUPS)).unwrap();
            s.set_non_blocking(true).unwrap();
            s
        });
        Events { sock }
    }

    /// What changed since the last call, one line per notification;
    /// neighbour state changes on other devices than `tunnel` (ARP on the
    /// LAN and the bridge, which traffic causes) are left out.
    fn drain(&mut self, tunnel: u32) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match self.sock.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
                Err(e) => panic!("netlink monitor: {e}"),
            };
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..n]).unwrap();
                off += (m.header.length as usize + 3) & !3;
                if let NetlinkPayload::InnerMessage(m) = m.payload {
                    out.extend(describe(&m, tunnel));
                }
            }
        }
    }
}

fn route_dst(attrs: &[RouteAttribute]) -> String {
    attrs
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(x)) => Some(x.to_string()),
            RouteAttribute::Destination(RouteAddress::Inet6(x)) => Some(x.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "default".into())
}

fn neigh_text(n: &NeighbourMessage) -> String {
    let dst = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(x)) => Some(x.to_string()),
        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => Some(format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])),
        _ => None,
    });
    let mac = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")),
        _ => None,
    });
    if n.header.family == AddressFamily::Bridge {
        format!("fdb {} dst {}", mac.unwrap_or_default(), dst.unwrap_or_default())
    } else {
        format!("neigh {}", dst.unwrap_or_default())
    }
}

fn describe(m: &RouteNetlinkMessage, tunnel: u32) -> Option<String> {
    use RouteNetlinkMessage::*;
    Some(match m {
        NewLink(l) => format!("new link #{}", l.header.index),
        DelLink(l) => format!("del link #{}", l.header.index),
        NewAddress(a) => format!("new address on #{}", a.header.index),
        DelAddress(a) => format!("del address on #{}", a.header.index),
        NewRoute(r) => format!("new route {}/{}", route_dst(&r.attributes), r.header.destination_prefix_length),
        DelRoute(r) => format!("del route {}/{}", route_dst(&r.attributes), r.header.destination_prefix_length),
        // Deleting a neighbour entry first marks it failed (a notice of
        // its own) and then removes it: one change, shown as the removal.
        NewNeighbour(n) if n.header.state == NeighbourState::Failed => return None,
        NewNeighbour(n) if n.header.ifindex == tunnel => format!("new {}", neigh_text(n)),
        DelNeighbour(n) if n.header.ifindex == tunnel => format!("del {}", neigh_text(n)),
        NewNeighbour(_) | DelNeighbour(_) => return None,
        other => format!("{other:?}"),
    })
}

/// `got` is the groups one after the other, each in any order.
fn assert_groups(got: Vec<String>, groups: &[&[String]]) {
    let mut rest = got.as_slice();
    for g in groups {
        assert!(rest.len() >= g.len(), "{got:?} lacks {g:?}");
        let (head, tail) = rest.split_at(g.len());
        let (mut a, mut b) = (head.to_vec(), g.to_vec());
        a.sort();
        b.sort();
        assert_eq!(a, b, "in {got:?}");
        rest = tail;
    }
    assert!(rest.is_empty(), "{got:?}: more than {groups:?}");
}

/// The test overlay network's id (hex, as the daemon's are).
const NET: &str = "b0e0000000000001";
const PORT: u16 = 4789;

fn lan_ip(i: u8) -> IpAddr {
    format!("10.91.0.{i}").parse().unwrap()
}

/// Host `i`'s block is 10.200.i.0/24; its own address the first of it.
fn block(i: u8) -> ipnet::IpNet {
    format!("10.200.{i}.0/24").parse().unwrap()
}

fn host_addr(i: u8) -> IpAddr {
    block(i).network()
}

/// What the overlay driver plans for host `i` (see
/// `berth_core::driver::overlay`): the same bridge and gateway on every
/// host, and the host's VXLAN device.
fn overlay_plan(i: u8, vni: u32) -> OverlayPlan {
    OverlayPlan {
        bridge: BridgePlan {
            name: bridge_name(NET),
            mac: bridge_mac(NET),
            addresses: vec!["10.200.0.1/16".parse().unwrap()],
            mtu: 1450,
            owned: true,
        },
        tunnel: Some(TunnelPlan {
            name: tunnel_name(NET),
            vni,
            port: PORT,
            local: lan_ip(i),
            dev: "eth0".into(),
            mac: vtep_mac(NET, &format!("host{i}")),
            mtu: 1450,
            host_addr: Some(host_addr(i)),
        }),
    }
}

fn peer(j: u8) -> TunnelPeer {
    TunnelPeer { vtep: lan_ip(j), mac: vtep_mac(NET, &format!("host{j}")), blocks: vec![block(j)] }
}

fn peers_of(i: u8, others: &[u8]) -> TunnelPeers {
    TunnelPeers { tunnel: tunnel_name(NET), src: Some(host_addr(i)), peers: others.iter().map(|j| peer(*j)).collect() }
}

/// Container `i` of host `i`: a port of the overlay's bridge, address
/// 10.200.i.2 with the whole subnet's prefix, default route via the
/// gateway every host has.
fn container_plan(i: u8) -> EndpointPlan {
    let ip: IpAddr = format!("10.200.{i}.2").parse().unwrap();
    EndpointPlan {
        host_ifname: format!("bthvbko{i}"),
        ifname: "eth0".into(),
        mac: mac_for(ip, ""),
        addresses: vec![ipnet::IpNet::new(ip, 16).unwrap()],
        default_gateways: vec!["10.200.0.1".parse().unwrap()],
        mtu: 1450,
        port: PortPlan::BridgePort { bridge: bridge_name(NET), host_mac: bridge_mac(NET) },
    }
}

fn ifindex(ns: &str, dev: &str) -> u32 {
    let out = sh(&format!("ip -n {ns} -o link show {dev}"));
    out.split(':').next().unwrap().trim().parse().unwrap()
}

/// Builds the sandbox's "LAN": bridge `bkolan` and, per host, a
/// namespace `bkohI` whose `eth0` (10.91.0.I/24) is a veth into it.
fn lan(hosts: &[u8]) {
    sh("ip link add bkolan type bridge && ip link set bkolan up");
    for i in hosts {
        sh(&format!(
            "ip netns add bkoh{i} && ip link add bkol{i} type veth peer name eth0 netns bkoh{i} && ip link set bkol{i} master bkolan up \
             && ip -n bkoh{i} link set lo up && ip -n bkoh{i} addr add 169.254.3.{i}/16 dev eth0 && ip -n bkoh{i} addr add 10.91.0.{i}/24 dev eth0 \
             && ip -n bkoh{i} link set eth0 up"
        ));
    }
}

/// Three hosts, each with the overlay's bridge and tunnel and a container;
/// each host's tunnel routes the others' blocks to them.
#[test]
fn overlay_across_three_hosts() {
    if !root() {
        return;
    }
    lan(&[1, 2, 3]);
    let hosts: Vec<Host> = [1, 2, 3].iter().map(|i| Host::new(&format!("bkoh{i}"))).collect();
    let tunnel = tunnel_name(NET);
    let bridge = bridge_name(NET);

    // --cluster-advertise by address or by name: the first IPv4 address
    // that is not link-local.
    let u = hosts[0].run(|k| (k.underlay("10.91.0.1").unwrap(), k.underlay("eth0").unwrap(), k.underlay("10.9.9.9").unwrap(), k.underlay("nosuch0").unwrap()));
    let eth0 = berth_linux::kernel::Underlay { dev: "eth0".into(), addr: lan_ip(1), mtu: 1500 };
    assert_eq!(u, (Some(eth0.clone()), Some(eth0), None, None));

    // A tunnel's entries on a host without it: a typed error.
    let missing = hosts[0].run(|k| k.sync_tunnel_peers(&TunnelPeers { tunnel: "btx-nosuch".into(), ..Default::default() }));
    assert!(matches!(&missing, Err(LinuxError::NoTunnel(t)) if t == "btx-nosuch"), "{missing:?}");
    assert!(missing.unwrap_err().to_string().contains("btx-nosuch does not exist on this host"));

    for (h, i) in hosts.iter().zip(1u8..) {
        h.run(move |k| {
            k.sysctl("net.ipv4.ip_forward", "1").unwrap();
            k.ensure_network(&NetworkPlan::Overlay(overlay_plan(i, 42))).unwrap();
        });
    }
    // The device as planned: not a bridge port, no learning, no proxy,
    // the port given explicitly, marked as berth's, IPv6 off, exactly the
    // host address.
    let d = sh(&format!("ip -n bkoh1 -d link show {tunnel}"));
    for want in ["vxlan id 42 local 10.91.0.1 dev eth0", "dstport 4789", "nolearning", "ttl 64", "udpcsum", "mtu 1450", "alias berth", &vtep_mac(NET, "host1")] {
        assert!(d.contains(want), "{want} not in {d}");
    }
    assert!(!d.contains("master") && !d.contains(" proxy") && !d.contains("l2miss") && !d.contains("l3miss"), "{d}");
    let addrs = sh(&format!("ip -n bkoh1 addr show dev {tunnel}"));
    assert!(addrs.contains("inet 10.200.1.0/32") && !addrs.contains("inet6"), "{addrs}");
    let sysctl = |key: &str| in_ns("bkoh1", || berth_linux::sysctl::read(key).unwrap());
    assert_eq!(sysctl(&format!("net/ipv6/conf/{tunnel}/disable_ipv6")), "1");
    assert_eq!((sysctl(&format!("net/ipv4/conf/{bridge}/proxy_arp")), sysctl(&format!("net/ipv4/neigh/{bridge}/proxy_delay"))), ("1".into(), "0".into()));
    let owned = hosts[0].run(|k| k.owned_links().unwrap());
    assert!(owned.iter().any(|l| l.name == tunnel_name(NET) && l.kind == OwnedKind::Tunnel), "{owned:?}");
    assert!(owned.iter().any(|l| l.name == bridge_name(NET) && l.kind == OwnedKind::Bridge), "{owned:?}");

    // Peers: adds in the order forwarding entries, neighbours, routes.
    let vx1 = ifindex("bkoh1", &tunnel);
    let mut events = Events::open_in("bkoh1");
    for (h, i) in hosts.iter().zip(1u8..) {
        let others: Vec<u8> = [1, 2, 3].into_iter().filter(|j| *j != i).collect();
        let want = peers_of(i, &others);
        let got = h.run(move |k| {
            k.sync_tunnel_peers(&want).unwrap();
            k.tunnel_peers(&tunnel_name(NET)).unwrap()
        });
        assert_eq!(got, peers_of(i, &others), "read back as synced");
    }
    let (m2, m3) = (vtep_mac(NET, "host2"), vtep_mac(NET, "host3"));
    assert_groups(
        events.drain(vx1),
        &[
            &[format!("new fdb {m2} dst 10.91.0.2"), format!("new fdb {m3} dst 10.91.0.3")],
            &["new neigh 10.91.0.2".into(), "new neigh 10.91.0.3".into()],
            &["new route 10.200.2.0/24".into(), "new route 10.200.3.0/24".into()],
        ],
    );
    let routes = sh(&format!("ip -n bkoh1 route show dev {tunnel}"));
    assert!(routes.contains("10.200.2.0/24 via 10.91.0.2 proto 183 src 10.200.1.0 onlink"), "{routes}");
    assert!(sh(&format!("ip -n bkoh1 neigh show dev {tunnel}")).contains(&format!("10.91.0.3 lladdr {m3} PERMANENT")));
    assert!(sh(&format!("bridge -n bkoh1 fdb show dev {tunnel}")).contains(&format!("{m2} dst 10.91.0.2 self permanent")));

    // A container per host.
    for (h, i) in hosts.iter().zip(1u8..) {
        sh(&format!("ip netns add bkoc{i}"));
        let ns = NsRef::Path(ns_path(&format!("bkoc{i}")));
        let ok = h.run(move |k| {
            k.add_endpoint(&ns, &container_plan(i)).unwrap();
            k.endpoint_ok(&ns, &container_plan(i)).unwrap()
        });
        assert!(ok);
    }
    assert!(pings("bkoc1", "10.200.2.2", 5), "container 1 reaches container 2 on host 2");
    assert!(pings("bkoc1", "10.200.3.2", 5), "container 1 reaches container 3 on host 3");
    assert!(pings("bkoc3", "10.200.2.2", 5), "container 3 reaches container 2");

    // Host 1 itself reaches container 2, from its overlay address.
    let listener = in_ns("bkoc2", || TcpListener::bind("10.200.2.2:7002").unwrap());
    let connected = in_ns("bkoh1", || TcpStream::connect_timeout(&"10.200.2.2:7002".parse::<SocketAddr>().unwrap(), Duration::from_secs(5)).map(|c| c.local_addr().unwrap()));
    assert_eq!(connected.unwrap().ip(), host_addr(1));
    assert_eq!(listener.accept().unwrap().1.ip(), host_addr(1), "container 2 sees host 1's overlay address");
    drop(listener);

    // The same input again changes nothing at all.
    events.drain(vx1);
    hosts[0].run(|k| {
        k.ensure_network(&NetworkPlan::Overlay(overlay_plan(1, 42))).unwrap();
        k.sync_tunnel_peers(&peers_of(1, &[2, 3])).unwrap();
    });
    assert_eq!(events.drain(vx1), Vec::<String>::new(), "a second ensure_network and sync_tunnel_peers are no-ops");
    assert_eq!(ifindex("bkoh1", &tunnel), vx1);

    // Host 3 leaves host 1's view: exactly its route, neighbour and
    // forwarding entry go, in that order.
    let got = hosts[0].run(|k| {
        k.sync_tunnel_peers(&peers_of(1, &[2])).unwrap();
        k.tunnel_peers(&tunnel_name(NET)).unwrap()
    });
    assert_eq!(got, peers_of(1, &[2]));
    assert_eq!(events.drain(vx1), ["del route 10.200.3.0/24".to_string(), "del neigh 10.91.0.3".into(), format!("del fdb {m3} dst 10.91.0.3")]);
    assert!(!pings("bkoc1", "10.200.3.2", 2), "container 1 no longer reaches container 3");
    assert!(pings("bkoc1", "10.200.2.2", 3), "but still container 2");
    hosts[0].run(|k| k.sync_tunnel_peers(&peers_of(1, &[2, 3])).unwrap());
    assert!(pings("bkoc1", "10.200.3.2", 5), "back when host 3 is back");

    // A MAC or host moving: replaced in place. Host 2 gets another MAC.
    let mut moved = peers_of(1, &[2, 3]);
    moved.peers[0].mac = "02:b7:00:00:00:02".into();
    events.drain(vx1);
    let got = hosts[0].run(move |k| {
        k.sync_tunnel_peers(&moved).unwrap();
        k.tunnel_peers(&tunnel_name(NET)).unwrap()
    });
    assert_eq!(got.peers[0].mac, "02:b7:00:00:00:02");
    assert_eq!(events.drain(vx1), ["del fdb ".to_string() + &m2 + " dst 10.91.0.2", "new fdb 02:b7:00:00:00:02 dst 10.91.0.2".into(), "new neigh 10.91.0.2".into()]);
    hosts[0].run(|k| k.sync_tunnel_peers(&peers_of(1, &[2, 3])).unwrap());
    assert!(pings("bkoc1", "10.200.2.2", 5));

    // What can change on a live device is fixed in place: MTU, MAC, a
    // stray address.
    sh(&format!("ip -n bkoh1 addr add 10.200.1.77/32 dev {tunnel}"));
    let mut p = overlay_plan(1, 42);
    p.tunnel.as_mut().unwrap().mtu = 1400;
    p.tunnel.as_mut().unwrap().mac = "02:b7:00:00:00:01".into();
    hosts[0].run(move |k| k.ensure_network(&NetworkPlan::Overlay(p)).unwrap());
    let d = sh(&format!("ip -n bkoh1 addr show dev {tunnel}"));
    assert!(d.contains("mtu 1400") && d.contains("02:b7:00:00:00:01") && d.contains("10.200.1.0/32") && !d.contains("10.200.1.77"), "{d}");
    assert_eq!(ifindex("bkoh1", &tunnel), vx1, "not recreated");
    hosts[0].run(|k| k.ensure_network(&NetworkPlan::Overlay(overlay_plan(1, 42))).unwrap());
    assert_eq!(hosts[0].run(|k| k.tunnel_peers(&tunnel_name(NET)).unwrap()), peers_of(1, &[2, 3]), "entries kept");

    // Another VNI cannot be set on a live device: it is made again (with
    // none of the old entries), on every host; then synced, it carries
    // traffic again.
    for (h, i) in hosts.iter().zip(1u8..) {
        let others: Vec<u8> = [1, 2, 3].into_iter().filter(|j| *j != i).collect();
        let empty = h.run(move |k| {
            k.ensure_network(&NetworkPlan::Overlay(overlay_plan(i, 43))).unwrap();
            let empty = k.tunnel_peers(&tunnel_name(NET)).unwrap();
            k.sync_tunnel_peers(&peers_of(i, &others)).unwrap();
            empty
        });
        assert_eq!(empty, TunnelPeers { tunnel: tunnel_name(NET), src: None, peers: vec![] });
    }
    assert_ne!(ifindex("bkoh1", &tunnel), vx1, "recreated");
    assert!(sh(&format!("ip -n bkoh1 -d link show {tunnel}")).contains("vxlan id 43 local 10.91.0.1 dev eth0"));
    assert!(pings("bkoc1", "10.200.2.2", 5) && pings("bkoc1", "10.200.3.2", 5), "traffic over the new VNI");

    drop(hosts);
    for i in 1..=3 {
        sh(&format!("ip netns del bkoc{i}; ip netns del bkoh{i}"));
    }
    sh("ip link del bkolan");
}

fn macvlan_plan(n: u8, parent: &str) -> EndpointPlan {
    let ip: IpAddr = format!("10.92.0.{n}").parse().unwrap();
    EndpointPlan {
        host_ifname: format!("bthvbkm{n}"),
        ifname: "eth0".into(),
        mac: mac_for(ip, ""),
        addresses: vec![ipnet::IpNet::new(ip, 24).unwrap()],
        default_gateways: vec!["10.92.0.254".parse().unwrap()],
        mtu: 1500,
        port: PortPlan::Macvlan { parent: parent.into() },
    }
}

/// Two containers of one host on a macvlan network: children of the
/// host's LAN interface, on the LAN.
#[test]
fn macvlan_endpoints() {
    if !root() {
        return;
    }
    // The LAN: a bridge with an address of its own (another machine on it).
    sh("ip link add bkmlan type bridge && ip addr add 10.92.0.254/24 dev bkmlan && ip link set bkmlan up");
    sh("ip netns add bkmh && ip link add bkml type veth peer name eth0 netns bkmh && ip link set bkml master bkmlan up && ip -n bkmh link set eth0 up");
    let host = Host::new("bkmh");
    assert_eq!(host.run(|k| k.ensure_network(&NetworkPlan::Macvlan { parent: "eth0".into() }).map_err(|e| e.to_string())), Ok(()));
    let before = sh("ip -n bkmh -o link show");
    for n in [11, 12] {
        sh(&format!("ip netns add bkmc{n}"));
        let ns = NsRef::Path(ns_path(&format!("bkmc{n}")));
        let ok = host.run(move |k| {
            k.add_endpoint(&ns, &macvlan_plan(n, "eth0")).unwrap();
            k.endpoint_ok(&ns, &macvlan_plan(n, "eth0")).unwrap()
        });
        assert!(ok);
    }
    assert_eq!(sh("ip -n bkmh -o link show"), before, "nothing made in the host's namespace");
    let d = sh("ip -n bkmc11 -d addr show dev eth0");
    for want in ["macvlan mode bridge", "02:42:0a:5c:00:0b", "inet 10.92.0.11/24", "mtu 1500"] {
        assert!(d.contains(want), "{want} not in {d}");
    }
    assert!(!d.contains("inet6"), "no IPv6 link-local on an IPv4-only endpoint: {d}");
    assert!(sh("ip -n bkmc11 route").contains("default via 10.92.0.254"));
    assert!(pings("bkmc11", "10.92.0.12", 5), "a macvlan sibling");
    assert!(pings("bkmc12", "10.92.0.254", 5), "the LAN");

    // A parent that is not there: a typed error, and nothing left behind.
    sh("ip netns add bkmc13");
    let ns13 = NsRef::Path(ns_path("bkmc13"));
    let e = host.run(move |k| k.add_endpoint(&ns13, &macvlan_plan(13, "nosuch0")));
    assert!(matches!(&e, Err(LinuxError::NoParent(p)) if p == "nosuch0"), "{e:?}");
    assert_eq!(e.unwrap_err().to_string(), "parent interface nosuch0 does not exist on this host");
    assert!(!succeeds("ip -n bkmc13 link show eth0"));

    // Removal, inside the container; again, and for a gone namespace, is fine.
    let ns11 = NsRef::Path(ns_path("bkmc11"));
    let (ok, again, gone) = host.run(move |k| {
        k.remove_in_netns(&ns11, "eth0").unwrap();
        let ok = k.endpoint_ok(&ns11, &macvlan_plan(11, "eth0")).unwrap();
        (ok, k.remove_in_netns(&ns11, "eth0").is_ok(), k.remove_in_netns(&NsRef::Path("/run/netns/bkm-gone".into()), "eth0").is_ok())
    });
    assert_eq!((ok, again, gone), (false, true, true));
    assert!(!succeeds("ip -n bkmc11 link show eth0"), "the interface is gone");
    assert!(!pings("bkmc12", "10.92.0.11", 1));

    drop(host);
    sh("ip netns del bkmc11; ip netns del bkmc12; ip netns del bkmc13; ip netns del bkmh; ip link del bkmlan");
}

/// What an overlay refuses to do, each with its own error: run over an
/// interface that is not there, touch a link of its tunnel's name that is
/// not berth's, take a VNI another device has, route a block via an
/// endpoint of the other family, use a malformed MAC.
#[test]
fn tunnel_refusals() {
    if !root() {
        return;
    }
    sh("ip link add eth0 type veth peer name bkoeth0p && ip addr add 10.93.0.1/24 dev eth0 && ip link set eth0 up");
    let k = LinuxKernel::new(false);
    let plan = |dev: &str| {
        let mut p = overlay_plan(1, 42);
        let t = p.tunnel.as_mut().unwrap();
        (t.local, t.dev) = ("10.93.0.1".parse().unwrap(), dev.into());
        NetworkPlan::Overlay(p)
    };
    let e = k.ensure_network(&plan("nosuch0")).unwrap_err();
    assert!(matches!(&e, LinuxError::NoUnderlay(d) if d == "nosuch0"), "{e:?}");
    assert_eq!(e.to_string(), "underlay interface nosuch0 does not exist on this host");

    // A link of the tunnel's name without berth's mark stays as it is.
    let tunnel = tunnel_name(NET);
    sh(&format!("ip link add {tunnel} type bridge"));
    let e = k.ensure_network(&plan("eth0")).unwrap_err();
    assert!(matches!(&e, LinuxError::NotOurs { name, .. } if *name == tunnel), "{e:?}");
    assert!(e.to_string().contains("is not berth's"), "{e}");
    assert!(sh(&format!("ip -d link show {tunnel}")).contains("bridge"));
    sh(&format!("ip link del {tunnel}"));

    // Another device with the same VNI, port and local address.
    sh("ip link add bkovx type vxlan id 42 local 10.93.0.1 dev eth0 dstport 4789");
    let e = k.ensure_network(&plan("eth0")).unwrap_err();
    assert!(matches!(&e, LinuxError::VniInUse { vni: 42, port: 4789, .. }), "{e:?}");
    assert!(e.to_string().contains("already uses VNI 42 on UDP port 4789"), "{e}");
    assert!(!succeeds(&format!("ip link show {tunnel}")), "nothing left half-made");
    sh("ip link del bkovx");

    k.ensure_network(&plan("eth0")).unwrap();
    let mut mixed = peers_of(1, &[2]);
    mixed.peers[0].vtep = "fd91::2".parse().unwrap();
    let e = k.sync_tunnel_peers(&mixed).unwrap_err();
    assert!(matches!(e, LinuxError::MixedFamilies { .. }), "{e:?}");
    let mut bad = peers_of(1, &[2]);
    bad.peers[0].mac = "02:b7:00:00:02".into();
    let e = k.sync_tunnel_peers(&bad).unwrap_err();
    assert_eq!(e.to_string(), "\"02:b7:00:00:02\" is not a MAC address (six hex pairs separated by colons)");
    assert_eq!(k.tunnel_peers(&tunnel).unwrap().peers, vec![], "a refused sync changes nothing");
    drop(k);
    sh(&format!("ip link del {tunnel}; ip link del eth0"));
}
