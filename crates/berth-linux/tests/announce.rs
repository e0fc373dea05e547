//! Root tests of address announcements (`berth_linux::announce`): an
//! address that comes back on a new endpoint with another MAC is reached
//! at once, because the endpoint announces it when it comes up (gratuitous
//! ARP, unsolicited Neighbor Advertisement) and every neighbour holding
//! the old MAC takes the new one. Without that they keep the old MAC for
//! 30 s and more.
//!
//! Each test enters its own network and mount namespace
//! (`sandbox::enter`) and names its namespaces and links `bka…`; traffic
//! only goes between them. Skipped with a notice when not root.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_core::plan::{BridgePlan, EndpointPlan, NetworkPlan, PortPlan};
use berth_linux::kernel::{LinkOps, LinuxKernel, NsRef};
use berth_linux::netlink::{self, RtSocket};
use berth_linux::netns::Netns;
use berth_linux::sandbox;

fn root() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return false;
    }
    sandbox::enter().expect("sandbox");
    true
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn succeeds(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap().status.success()
}

/// One echo from namespace `ns` (None: the sandbox itself), up to `tries`
/// times, a second each.
fn pings(ns: Option<&str>, ip: &str, tries: u32) -> bool {
    let pre = ns.map(|n| format!("ip netns exec {n} ")).unwrap_or_default();
    (0..tries).any(|_| succeeds(&format!("{pre}ping -n -q -c1 -W1 {ip}")))
}

fn ns_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/run/netns/{name}"))
}

const M1: &str = "02:42:0a:4d:00:05";
const M2: &str = "02:42:0a:4d:00:99";

fn mac_str(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The MAC that `sock`'s namespace has for `ip` on link `dev`, if any.
fn neighbour_mac(sock: &mut RtSocket, dev: &str, ip: IpAddr) -> Option<String> {
    let link = netlink::link_index(sock, dev).unwrap().expect("link");
    netlink::list_neighbours(sock, link.index).unwrap().into_iter().find(|n| n.ip == ip).and_then(|n| n.mac).map(|m| mac_str(&m))
}

/// Polls (up to `limit`) until `sock`'s namespace has `mac` for every one
/// of `ips` on `dev`; how long that took, or what it had at the end.
fn wait_for_mac(sock: &mut RtSocket, dev: &str, ips: &[IpAddr], mac: &str, limit: Duration) -> Result<Duration, Vec<Option<String>>> {
    let t0 = Instant::now();
    loop {
        let have: Vec<Option<String>> = ips.iter().map(|ip| neighbour_mac(sock, dev, *ip)).collect();
        if have.iter().all(|h| h.as_deref() == Some(mac)) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return Err(have);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn ips(v4: &str, v6: &str) -> Vec<IpAddr> {
    vec![v4.parse().unwrap(), v6.parse().unwrap()]
}

fn veth_plan(host_ifname: &str, mac: &str, v4: &str, v6: &str) -> EndpointPlan {
    EndpointPlan {
        host_ifname: host_ifname.into(),
        ifname: "eth0".into(),
        mac: mac.into(),
        addresses: vec![format!("{v4}/24").parse().unwrap(), format!("{v6}/64").parse().unwrap()],
        default_gateways: vec!["10.77.0.1".parse().unwrap(), "fd00:77::1".parse().unwrap()],
        mtu: 1500,
        port: PortPlan::BridgePort { bridge: "bkabr0".into(), host_mac: "02:42:00:77:00:01".into() },
    }
}

/// A dual-stack address pair held by container A (MAC M1), known to the
/// host and to container C; A goes, B comes with the same addresses and
/// MAC M2: the host and C have M2 as soon as B's attach returns, and the
/// host reaches B at once.
#[test]
fn reused_address_with_a_new_mac_is_reached_at_once() {
    if !root() {
        return;
    }
    let k = LinuxKernel::new(false);
    let bridge = BridgePlan {
        name: "bkabr0".into(),
        mac: "02:42:00:77:00:01".into(),
        addresses: vec!["10.77.0.1/24".parse().unwrap(), "fd00:77::1/64".parse().unwrap()],
        mtu: 1500,
        owned: true,
    };
    k.ensure_network(&NetworkPlan::Bridge(bridge)).unwrap();
    let (v4, v6) = ("10.77.0.5", "fd00:77::5");
    let both = ips(v4, v6);

    sh("ip netns add bkaa && ip netns add bkab && ip netns add bkac");
    let ns = |n: &str| NsRef::Path(ns_path(n));
    k.add_endpoint(&ns("bkaa"), &veth_plan("bthvbkaa", M1, v4, v6)).unwrap();
    k.add_endpoint(&ns("bkac"), &veth_plan("bthvbkac", "02:42:0a:4d:00:06", "10.77.0.6", "fd00:77::6")).unwrap();
    for ip in [v4, v6] {
        assert!(pings(None, ip, 5), "host -> A {ip}");
        assert!(pings(Some("bkac"), ip, 5), "C -> A {ip}");
    }
    let mut host = RtSocket::open().unwrap();
    let mut c = Netns::open(&ns_path("bkac")).unwrap().route_socket().unwrap();
    wait_for_mac(&mut host, "bkabr0", &both, M1, Duration::from_secs(1)).expect("the host has A's MAC");
    wait_for_mac(&mut c, "eth0", &both, M1, Duration::from_secs(1)).expect("C has A's MAC");
    let reachable = sh(&format!("ip neigh show {v4} dev bkabr0; ip -6 neigh show {v6} dev bkabr0"));
    assert_eq!(reachable.matches("REACHABLE").count(), 2, "{reachable}");

    // A goes; B comes with its addresses and another MAC.
    k.remove_endpoint("bthvbkaa").unwrap();
    k.settle();
    sh("ip netns del bkaa");
    k.add_endpoint(&ns("bkab"), &veth_plan("bthvbkab", M2, v4, v6)).unwrap();
    let host_took = wait_for_mac(&mut host, "bkabr0", &both, M2, Duration::from_secs(1));
    let c_took = wait_for_mac(&mut c, "eth0", &both, M2, Duration::from_secs(1));
    eprintln!("M2 seen by the host after {host_took:?}, by C after {c_took:?}");
    let host_took = host_took.unwrap_or_else(|had| panic!("the host still has {had:?} for {both:?}, not {M2}"));
    c_took.unwrap_or_else(|had| panic!("C still has {had:?} for {both:?}, not {M2}"));
    assert!(host_took < Duration::from_secs(1));
    let t0 = Instant::now();
    assert!(succeeds(&format!("ping -n -q -c1 -W2 {v6}")), "host -> B over IPv6 at once");
    assert!(succeeds(&format!("ping -n -q -c1 -W2 {v4}")), "host -> B over IPv4 at once");
    assert!(succeeds(&format!("ip netns exec bkac ping -n -q -c1 -W2 {v6}")), "C -> B over IPv6 at once");
    eprintln!("pings answered within {:?}", t0.elapsed());

    k.remove_endpoint("bthvbkab").unwrap();
    k.remove_endpoint("bthvbkac").unwrap();
    k.settle();
    sh("ip netns del bkab; ip netns del bkac; ip link del bkabr0");
}

fn macvlan_plan(mac: &str, v4: &str, v6: &str) -> EndpointPlan {
    EndpointPlan {
        host_ifname: "bthvbkam".into(),
        ifname: "eth0".into(),
        mac: mac.into(),
        addresses: vec![format!("{v4}/24").parse().unwrap(), format!("{v6}/64").parse().unwrap()],
        default_gateways: vec![],
        mtu: 1500,
        port: PortPlan::Macvlan { parent: "eth0".into() },
    }
}

/// The same for a macvlan endpoint: the "host" is namespace `bkah`, whose
/// eth0 is on a LAN (a bridge of the sandbox, with an address of its
/// own: another machine); the machine on the LAN takes the new MAC.
#[test]
fn macvlan_endpoint_announces_its_addresses() {
    if !root() {
        return;
    }
    sh("ip link add bkalan type bridge && ip addr add 10.78.0.254/24 dev bkalan && ip addr add fd00:78::fe/64 dev bkalan nodad && ip link set bkalan up");
    sh("ip netns add bkah && ip link add bkal type veth peer name eth0 netns bkah && ip link set bkal master bkalan up && ip -n bkah link set eth0 up");
    sh("ip netns add bkama && ip netns add bkamb");
    let (v4, v6) = ("10.78.0.5", "fd00:78::5");
    let both = ips(v4, v6);
    let in_host = |f: Box<dyn FnOnce(&LinuxKernel) + Send>| Netns::open(Path::new("/run/netns/bkah")).unwrap().run(|| f(&LinuxKernel::new(false))).unwrap();
    in_host(Box::new(|k| k.add_endpoint(&NsRef::Path(ns_path("bkama")), &macvlan_plan(M1, "10.78.0.5", "fd00:78::5")).unwrap()));
    for ip in [v4, v6] {
        assert!(pings(None, ip, 5), "LAN -> A {ip}");
    }
    let mut lan = RtSocket::open().unwrap();
    wait_for_mac(&mut lan, "bkalan", &both, M1, Duration::from_secs(1)).expect("the LAN has A's MAC");

    in_host(Box::new(|k| k.remove_in_netns(&NsRef::Path(ns_path("bkama")), "eth0").unwrap()));
    in_host(Box::new(|k| k.add_endpoint(&NsRef::Path(ns_path("bkamb")), &macvlan_plan(M2, "10.78.0.5", "fd00:78::5")).unwrap()));
    let took = wait_for_mac(&mut lan, "bkalan", &both, M2, Duration::from_secs(1));
    eprintln!("M2 seen on the LAN after {took:?}");
    took.unwrap_or_else(|had| panic!("the LAN still has {had:?} for {both:?}, not {M2}"));
    assert!(succeeds(&format!("ping -n -q -c1 -W2 {v6}")), "LAN -> B over IPv6 at once");
    assert!(succeeds(&format!("ping -n -q -c1 -W2 {v4}")), "LAN -> B over IPv4 at once");

    sh("ip netns del bkama; ip netns del bkamb; ip netns del bkah; ip link del bkalan");
}
