//! Root tests of the netlink and nftables shell, each in its own network
//! namespace (skipped with a notice when not root).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use berth_core::nft::{render_reset_script, Element, PortRange};
use berth_core::model::Proto;
use berth_linux::netlink::{self, RtSocket};
use berth_linux::netns::Netns;
use berth_linux::nft::{apply_elements, cli};
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

#[test]
fn bridge_and_veth_into_namespace() {
    if !root() {
        return;
    }
    let mut s = RtSocket::open().unwrap();
    netlink::add_bridge(&mut s, "bthtest0", "02:42:00:00:00:01", 1400, "berth").unwrap();
    let br = netlink::link_index(&mut s, "bthtest0").unwrap().unwrap();
    assert_eq!((br.alias.as_deref(), br.mtu, br.up), (Some("berth"), 1400, false), "made down, for settings that must precede up");
    berth_linux::sysctl::no_dad("bthtest0").unwrap();
    assert_eq!(berth_linux::sysctl::read("net/ipv6/conf/bthtest0/accept_dad").unwrap(), "0");
    netlink::set_link_up(&mut s, br.index, None).unwrap();
    let br = netlink::link_index(&mut s, "bthtest0").unwrap().unwrap();
    assert!(br.up);
    netlink::add_address(&mut s, br.index, "10.77.0.1/24".parse().unwrap()).unwrap();
    // idempotent
    netlink::add_address(&mut s, br.index, "10.77.0.1/24".parse().unwrap()).unwrap();

    sh("ip netns add c1");
    let ns = Netns::open(Path::new("/run/netns/c1")).unwrap();
    netlink::add_veth_into_netns(&mut s, "bthvtest1", "02:42:00:00:00:01", "eth0", "02:42:0a:4d:00:02", Some(ns.fd()), 1400, br.index).unwrap();
    assert!(!netlink::link_index(&mut s, "bthvtest1").unwrap().unwrap().up, "created down");
    netlink::set_up_without_ipv6_ll(&mut s, "bthvtest1").unwrap();
    let mut inner = ns.route_socket().unwrap();
    let eth0 = netlink::link_index(&mut inner, "eth0").unwrap().unwrap();
    assert_eq!(eth0.mac.as_deref(), Some("02:42:0a:4d:00:02"));
    netlink::add_address(&mut inner, eth0.index, "10.77.0.2/24".parse().unwrap()).unwrap();
    netlink::set_up_without_ipv6_ll(&mut inner, "eth0").unwrap();
    let lo = netlink::link_index(&mut inner, "lo").unwrap().unwrap();
    netlink::set_link_up(&mut inner, lo.index, None).unwrap();
    netlink::add_default_route(&mut inner, "10.77.0.1".parse().unwrap()).unwrap();
    let veth = netlink::link_index(&mut s, "bthvtest1").unwrap().unwrap();
    assert_eq!(veth.master, Some(br.index));
    sh("ip netns exec c1 ping -c1 -W2 10.77.0.1");
    assert!(!sh("ip netns exec c1 ip -6 addr show dev eth0").contains("fe80"), "no IPv6 link-local on container interfaces");
    assert!(sh("ip netns exec c1 ip route").contains("default via 10.77.0.1"));
    netlink::delete_link(&mut s, "bthvtest1").unwrap();
    assert!(netlink::link_index(&mut s, "bthvtest1").unwrap().is_none());
    assert!(netlink::link_index(&mut inner, "eth0").unwrap().is_none(), "peer goes with its pair");
    sh("ip netns del c1");
}

/// The bridge's MTU is the network's, whatever its ports have (the kernel
/// would otherwise recompute it from every port on each port added), and
/// bridge ports carry no IPv6 (no per-port `ff00::/8` route on the host).
#[test]
fn bridge_mtu_is_fixed_and_ports_have_no_ipv6() {
    if !root() {
        return;
    }
    let mut s = RtSocket::open().unwrap();
    netlink::add_bridge(&mut s, "bthtest1", "02:42:00:00:00:02", 1500, "berth").unwrap();
    let br = netlink::link_index(&mut s, "bthtest1").unwrap().unwrap();
    assert_eq!(br.mtu, 1500);
    sh("ip link add bthsmall mtu 1400 type veth peer name bthsmallp && ip link set bthsmall master bthtest1 up && ip link set bthsmallp up");
    assert_eq!(netlink::link_index(&mut s, "bthtest1").unwrap().unwrap().mtu, 1500, "a smaller port leaves the bridge's MTU alone");

    sh("ip netns add c2");
    let ns = Netns::open(Path::new("/run/netns/c2")).unwrap();
    netlink::add_veth_into_netns(&mut s, "bthvtest2", "02:42:00:00:00:02", "eth0", "02:42:0a:4e:00:02", Some(ns.fd()), 1500, br.index).unwrap();
    berth_linux::sysctl::disable_ipv6("bthvtest2").unwrap();
    netlink::set_port_up(&mut s, "bthvtest2").unwrap();
    assert_eq!(berth_linux::sysctl::read("net/ipv6/conf/bthvtest2/disable_ipv6").unwrap(), "1");
    // The container side up too: the port has carrier, as in use.
    ns.run(|| sh("ip link set eth0 up")).unwrap();
    // IPv6 routes of a port come up asynchronously: wait (bounded) for
    // the control's, which came up first, then look for the berth port's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sh("ip -6 route show table local").contains("dev bthsmall") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let routes = sh("ip -6 route show table local");
    assert!(!routes.contains("bthvtest2"), "no IPv6 route for a port: {routes}");
    assert!(routes.contains("dev bthsmall"), "a port left with IPv6 on has one (the check can fail): {routes}");
    // A port with the bridge's MAC adds no local forwarding entry of its own.
    let fdb = sh("bridge fdb show br bthtest1");
    let local = |dev: &str| fdb.lines().any(|l| l.contains(&format!("dev {dev} master ")) && l.contains("permanent"));
    assert!(!local("bthvtest2"), "{fdb}");
    assert!(local("bthsmall"), "a port with its own MAC has one (the check can fail): {fdb}");
    berth_linux::sysctl::disable_ipv6("no-such-link").unwrap_err();
    sh("ip link del bthsmall; ip link del bthvtest2; ip link del bthtest1; ip netns del c2");
}

#[test]
fn not_a_namespace_is_refused() {
    if !root() {
        return;
    }
    assert!(Netns::open(Path::new("/etc/hostname")).is_err());
    assert!(Netns::open(Path::new("/nonexistent")).is_err());
    assert!(Netns::open(Path::new("/proc/self/ns/mnt")).is_err());
    Netns::open(Path::new("/proc/self/ns/net")).unwrap();
}

#[test]
fn elements_over_netlink_match_nft() {
    if !root() {
        return;
    }
    cli::apply_script(&render_reset_script(&BTreeSet::new())).unwrap();
    let add: BTreeSet<Element> = [
        Element::Bridge("berth0".into()),
        Element::BridgePair("berth0".into()),
        Element::PortAny { proto: Proto::Tcp, host_port: 32768, addr: "172.17.0.2".parse().unwrap(), port: 80 },
        Element::PortAddr { host_ip: "127.0.0.1".parse().unwrap(), proto: Proto::Udp, host_port: 53, addr: "172.17.0.3".parse().unwrap(), port: 5353 },
        Element::Link { src: "172.17.0.4".parse().unwrap(), dst: "172.17.0.2".parse().unwrap(), proto: Proto::Tcp, port: 80 },
        Element::Deny { src: ("10.0.0.0".parse().unwrap(), "10.0.255.255".parse().unwrap()), dst: "172.17.0.2".parse().unwrap(), protos: (6, 6), ports: PortRange(80, 80) },
        Element::Guarded { dst: "172.17.0.2".parse().unwrap(), protos: (0, 255), ports: PortRange::ANY },
        // The same in IPv6.
        Element::PortAny { proto: Proto::Tcp, host_port: 32768, addr: "fd00:17::2".parse().unwrap(), port: 80 },
        Element::PortAddr { host_ip: "::1".parse().unwrap(), proto: Proto::Udp, host_port: 53, addr: "fd00:17::3".parse().unwrap(), port: 5353 },
        Element::Link { src: "fd00:17::4".parse().unwrap(), dst: "fd00:17::2".parse().unwrap(), proto: Proto::Tcp, port: 80 },
        Element::Deny { src: ("2001:db8::".parse().unwrap(), "2001:db8::ffff".parse().unwrap()), dst: "fd00:17::2".parse().unwrap(), protos: (6, 6), ports: PortRange(80, 80) },
        Element::Guarded { dst: "fd00:17::2".parse().unwrap(), protos: (0, 255), ports: PortRange::ANY },
        Element::Subnet { start: "fd00:17::".parse().unwrap(), end: "fd00:17::ffff:ffff:ffff:ffff".parse().unwrap(), bridge: "berth0".into() },
        Element::Resolver { addr: "fd00:17::1".parse().unwrap(), bridge: "berth0".into() },
    ]
    .into();
    apply_elements(&BTreeSet::new(), &add).unwrap();
    let listed = cli::list_table().unwrap().unwrap();
    for needle in [
        "\"berth0\"",
        "\"berth0\" . \"berth0\"",
        "tcp . 32768 : 172.17.0.2 . 80",
        "127.0.0.1 . udp . 53 : 172.17.0.3 . 5353",
        "172.17.0.4 . 172.17.0.2 . tcp . 80",
        "10.0.0.0/16 . 172.17.0.2 . tcp . 80",
        "172.17.0.2 . 0-255 . 0-65535",
        "tcp . 32768 : fd00:17::2 . 80",
        "::1 . udp . 53 : fd00:17::3 . 5353",
        "fd00:17::4 . fd00:17::2 . tcp . 80",
        "2001:db8::/112 . fd00:17::2 . tcp . 80",
        "fd00:17::2 . 0-255 . 0-65535",
        "fd00:17::/64 . \"berth0\"",
        "fd00:17::1 . \"berth0\"",
    ] {
        assert!(listed.contains(needle), "{needle} not in\n{listed}");
    }
    // A failing batch changes nothing: deleting a missing element aborts the add too.
    let bad_del: BTreeSet<Element> = [Element::Bridge("nosuch".into())].into();
    let more: BTreeSet<Element> = [Element::Bridge("other".into())].into();
    assert!(apply_elements(&bad_del, &more).is_err());
    assert!(!cli::list_table().unwrap().unwrap().contains("\"other\""));
    // Deletion.
    apply_elements(&add, &BTreeSet::new()).unwrap();
    assert!(!cli::list_table().unwrap().unwrap().contains("32768"));
    // 10,000 elements in one batch.
    let many: BTreeSet<Element> = (0..10_000u16)
        .map(|i| Element::PortAny { proto: Proto::Tcp, host_port: 20000 + i, addr: "172.17.0.2".parse().unwrap(), port: 20000 + i })
        .collect();
    let t = std::time::Instant::now();
    apply_elements(&BTreeSet::new(), &many).unwrap();
    eprintln!("10,000 elements in {:?}", t.elapsed());
    assert_eq!(sh("nft list map inet berth ports_any4").matches(" : 172.17.0.2 . ").count(), 10_000);
}

/// `connect()` to a published TCP port is translated in this namespace
/// only, for the addresses the mapping covers, and not any more once the
/// mapping is removed or the programs are dropped; `getpeername` shows the
/// address that was asked for.
#[test]
fn socket_translation_is_confined_to_its_namespace() {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};

    use berth_linux::bpf::{PortEntry, SocketNat};
    if !root() {
        return;
    }
    sh("ip link add bthdummy0 type bridge && ip addr add 10.55.0.1/24 dev bthdummy0 && ip addr add 10.55.0.2/24 dev bthdummy0 && ip link set bthdummy0 up");
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let tp = target.local_addr().unwrap().port();
    let reaches = |addr: &str| -> bool {
        match TcpStream::connect(addr) {
            Ok(c) => {
                let (srv, _) = target.accept().unwrap();
                assert_eq!(srv.local_addr().unwrap().port(), tp, "{addr} reached the container port");
                assert_eq!(c.peer_addr().unwrap(), addr.parse::<SocketAddr>().unwrap(), "getpeername shows what was asked");
                true
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{addr}: {e}");
                false
            }
        }
    };
    let any = (Ipv4Addr::UNSPECIFIED, 40123);
    let one = (Ipv4Addr::new(10, 55, 0, 2), 40124);
    let to = (Ipv4Addr::LOCALHOST, tp);
    let mut nat = SocketNat::attach().unwrap();
    nat.apply(&[], &[PortEntry::V4(any, to), PortEntry::V4(one, to)]).unwrap();
    assert!(reaches("127.0.0.1:40123") && reaches("127.0.0.9:40123"), "every address: loopback");
    assert!(!reaches("10.55.0.1:40123"), "an address not (yet) in the local map stays with nft");
    nat.set_local(&[IpAddr::V4(Ipv4Addr::new(10, 55, 0, 1))]).unwrap();
    assert!(reaches("10.55.0.1:40123"), "every address: the namespace's own");
    assert!(reaches("10.55.0.2:40124") && !reaches("127.0.0.1:40124") && !reaches("10.55.0.1:40124"), "one address: only it");
    assert!(!reaches("127.0.0.1:40125"), "an unpublished port");

    // A socket bound to an address first keeps the nft path.
    let bound = std::thread::spawn(|| {
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        let sa = |ip: [u8; 4], port: u16| libc::sockaddr_in { sin_family: libc::AF_INET as u16, sin_port: port.to_be(), sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(ip) }, sin_zero: [0; 8] };
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        let (me, to) = (sa([127, 0, 0, 1], 0), sa([127, 0, 0, 1], 40123));
        assert_eq!(unsafe { libc::bind(s, &me as *const _ as *const libc::sockaddr, len) }, 0);
        let r = unsafe { libc::connect(s, &to as *const _ as *const libc::sockaddr, len) };
        let e = std::io::Error::last_os_error();
        unsafe { libc::close(s) };
        (r, e.raw_os_error())
    });
    assert_eq!(bound.join().unwrap(), (-1, Some(libc::ECONNREFUSED)));

    // Another namespace, with a listener on the same target port: untouched.
    let other = std::thread::spawn(move || {
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        sh("ip link set lo up");
        let _l = TcpListener::bind(("127.0.0.1", tp)).unwrap();
        TcpStream::connect("127.0.0.1:40123").map(drop).map_err(|e| e.kind())
    });
    assert_eq!(other.join().unwrap(), Err(std::io::ErrorKind::ConnectionRefused));

    nat.apply(&[PortEntry::V4(any, to)], &[]).unwrap();
    assert!(!reaches("127.0.0.1:40123") && reaches("10.55.0.2:40124"), "removal is per mapping");
    nat.replace(&[PortEntry::V4(any, to)]).unwrap();
    assert!(reaches("127.0.0.1:40123") && !reaches("10.55.0.2:40124"), "replace leaves exactly what is wanted");
    drop(nat);
    // A child another test thread forks at this moment holds a copy of the
    // link's fd until it execs (close-on-exec): the programs are detached
    // when that copy goes too, a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while reaches("127.0.0.1:40123") {
        assert!(std::time::Instant::now() < deadline, "dropping detaches the programs");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// connect() of an IPv6 TCP socket made by hand, bound to `bind` first if
/// given and IPV6_V6ONLY if asked: the errno if it fails.
fn connect6_raw(bind: Option<std::net::Ipv6Addr>, v6only: bool, to: std::net::SocketAddrV6) -> Result<(), i32> {
    let sa = |ip: std::net::Ipv6Addr, port: u16| {
        let mut a: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        a.sin6_family = libc::AF_INET6 as u16;
        a.sin6_port = port.to_be();
        a.sin6_addr.s6_addr = ip.octets();
        a
    };
    let len = std::mem::size_of::<libc::sockaddr_in6>() as u32;
    let s = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(s >= 0);
    let on: libc::c_int = v6only.into();
    assert_eq!(unsafe { libc::setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &on as *const _ as *const libc::c_void, 4) }, 0);
    if let Some(ip) = bind {
        let me = sa(ip, 0);
        assert_eq!(unsafe { libc::bind(s, &me as *const _ as *const libc::sockaddr, len) }, 0);
    }
    let to = sa(*to.ip(), to.port());
    let r = unsafe { libc::connect(s, &to as *const _ as *const libc::sockaddr, len) };
    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    unsafe { libc::close(s) };
    if r == 0 {
        Ok(())
    } else {
        Err(e)
    }
}

/// The same for IPv6 sockets: `[::1]` and the namespace's IPv6 addresses
/// for a mapping on every address, one address for a mapping on it; a
/// v4-mapped destination by the IPv4 rules; and, where a port has only an
/// IPv4 mapping on every address (an IPv4-only network), `[::1]:PORT` and
/// the host's IPv6 addresses reach it over IPv4 (`tcp_v6_connect` follows
/// the v4-mapped destination the program writes), with `getpeername`
/// still showing `[::1]:PORT`.
#[test]
fn ipv6_socket_translation_and_the_ipv4_fallback() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use berth_linux::bpf::{PortEntry, SocketNat};
    if !root() {
        return;
    }
    sh("ip link add bthdummy6 type bridge && ip link set bthdummy6 up \
        && ip addr add fd55::1/64 dev bthdummy6 nodad && ip addr add fd55::2/64 dev bthdummy6 nodad && ip addr add 10.56.0.1/24 dev bthdummy6");
    // Two "containers": one reached over IPv6, one over IPv4 only.
    let c6 = TcpListener::bind("[::1]:0").unwrap();
    let c4 = TcpListener::bind("127.0.0.1:0").unwrap();
    c6.set_nonblocking(true).unwrap();
    c4.set_nonblocking(true).unwrap();
    let (to6, to4) = (c6.local_addr().unwrap(), c4.local_addr().unwrap());
    // Where the last connection arrived (its server side's local address).
    let arrival = || -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            for l in [&c6, &c4] {
                match l.accept() {
                    Ok((srv, _)) => return srv.local_addr().unwrap(),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("accept: {e}"),
                }
            }
            assert!(Instant::now() < deadline, "connected, but to neither container");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let reaches = |addr: &str| -> Option<SocketAddr> {
        match TcpStream::connect(addr) {
            Ok(c) => {
                assert_eq!(c.peer_addr().unwrap(), addr.parse::<SocketAddr>().unwrap(), "getpeername shows what was asked");
                Some(arrival())
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{addr}: {e}");
                None
            }
        }
    };
    let (v6, v4) = (|ip: &str, port| (ip.parse::<Ipv6Addr>().unwrap(), port), |ip: &str, port| (ip.parse::<Ipv4Addr>().unwrap(), port));
    let (to6e, to4e) = ((Ipv6Addr::LOCALHOST, to6.port()), (Ipv4Addr::LOCALHOST, to4.port()));
    let any6 = PortEntry::V6(v6("::", 40223), to6e);
    let one6 = PortEntry::V6(v6("fd55::2", 40224), to6e);
    // An IPv4-only network's ports: on every address, and on one.
    let only4 = PortEntry::V4(v4("0.0.0.0", 40226), to4e);
    let one4 = PortEntry::V4(v4("127.0.0.1", 40227), to4e);
    // A dual-stack network's port on every address: both families.
    let (dual4, dual6) = (PortEntry::V4(v4("0.0.0.0", 40228), to4e), PortEntry::V6(v6("::", 40228), to6e));

    let mut nat = SocketNat::attach().unwrap();
    nat.apply(&[], &[any6, one6, only4, one4, dual4, dual6]).unwrap();
    assert_eq!(reaches("[::1]:40223"), Some(to6), "every address: ::1");
    assert_eq!(reaches("[fd55::1]:40223"), None, "an address not (yet) in the local map stays with nft");
    nat.set_local(&[IpAddr::V6("fd55::1".parse().unwrap()), IpAddr::V4(Ipv4Addr::new(10, 56, 0, 1))]).unwrap();
    assert_eq!(reaches("[fd55::1]:40223"), Some(to6), "every address: the namespace's own");
    assert_eq!((reaches("[fd55::2]:40224"), reaches("[::1]:40224"), reaches("[fd55::1]:40224")), (Some(to6), None, None), "one address: only it");
    assert_eq!(reaches("[::1]:40225"), None, "an unpublished port");
    assert_eq!(reaches("[::ffff:127.0.0.1]:40223"), None, "an IPv6 mapping is not an IPv4 connection's");

    // The IPv4 mapping on every address, from IPv6: over IPv4.
    assert_eq!((reaches("[::1]:40226"), reaches("[fd55::1]:40226")), (Some(to4), Some(to4)), "[::1] and local IPv6 addresses reach an IPv4-only port");
    assert_eq!(reaches("[fd55::2]:40226"), None, "not for an address outside the local map");
    let c = TcpStream::connect("[::1]:40226").unwrap();
    assert_eq!(c.local_addr().unwrap().ip(), IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), "an IPv4 connection of an IPv6 socket");
    assert_eq!(arrival(), to4);
    drop(c);
    assert_eq!(reaches("127.0.0.1:40226"), Some(to4), "connect4 as ever");
    assert_eq!((reaches("[::1]:40227"), reaches("127.0.0.1:40227")), (None, Some(to4)), "a mapping on one IPv4 address has no fallback");
    assert_eq!((reaches("[::1]:40228"), reaches("127.0.0.1:40228")), (Some(to6), Some(to4)), "dual stack: each family its own");
    // A v4-mapped destination is an IPv4 connection, by connect4's rules.
    for addr in ["[::ffff:127.0.0.1]:40226", "[::ffff:127.0.0.9]:40226", "[::ffff:10.56.0.1]:40226", "[::ffff:127.0.0.1]:40227"] {
        assert_eq!(reaches(addr), Some(to4), "{addr}");
    }
    assert_eq!(reaches("[::ffff:127.0.0.9]:40227"), None, "one IPv4 address: only it");

    // Raw sockets: V6ONLY cannot take the fallback (documented); bound
    // sockets keep the nft path.
    let at = |s: &str| s.parse::<SocketAddrV6>().unwrap();
    assert_eq!(connect6_raw(None, true, at("[::1]:40226")), Err(libc::ENETUNREACH), "V6ONLY: no IPv4 fallback");
    assert_eq!(connect6_raw(None, true, at("[::1]:40223")), Ok(()), "V6ONLY: IPv6 mappings as ever");
    assert_eq!(arrival(), to6);
    assert_eq!(connect6_raw(None, false, at("[::1]:40226")), Ok(()));
    assert_eq!(arrival(), to4);
    for addr in ["[::1]:40223", "[::1]:40226"] {
        assert_eq!(connect6_raw(Some(Ipv6Addr::LOCALHOST), false, at(addr)), Err(libc::ECONNREFUSED), "bound first: {addr}");
    }

    // Another namespace, with listeners on the same target ports: untouched.
    let (p6, p4) = (to6.port(), to4.port());
    let other = std::thread::spawn(move || {
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        sh("ip link set lo up");
        let _l6 = TcpListener::bind(("::1", p6)).unwrap();
        let _l4 = TcpListener::bind(("127.0.0.1", p4)).unwrap();
        ["[::1]:40223", "[::1]:40226", "[::ffff:127.0.0.1]:40226"].map(|a| TcpStream::connect(a).map(drop).map_err(|e| e.kind()))
    });
    assert_eq!(other.join().unwrap(), [Err(std::io::ErrorKind::ConnectionRefused); 3]);

    nat.apply(&[any6, dual6], &[]).unwrap();
    assert_eq!((reaches("[::1]:40223"), reaches("[fd55::2]:40224")), (None, Some(to6)), "removal is per mapping");
    assert_eq!(reaches("[::1]:40228"), Some(to4), "without its IPv6 mapping, the IPv4 one serves [::1]");
    nat.apply(&[only4], &[]).unwrap();
    assert_eq!(reaches("[::1]:40226"), None, "the fallback goes with the IPv4 mapping");
    nat.replace(&[any6, only4]).unwrap();
    assert_eq!((reaches("[::1]:40223"), reaches("[::1]:40226")), (Some(to6), Some(to4)), "replace adds what is wanted");
    assert_eq!((reaches("[fd55::2]:40224"), reaches("127.0.0.1:40227"), reaches("[::1]:40228")), (None, None, None), "and only that");
    nat.set_local(&[]).unwrap();
    assert_eq!(reaches("[fd55::1]:40223"), None, "an address gone from the local map");
    drop(nat);
    // As above: a forked child may hold the links a moment longer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while reaches("[::1]:40223").is_some() || reaches("[::1]:40226").is_some() {
        assert!(Instant::now() < deadline, "dropping detaches the programs");
        std::thread::sleep(Duration::from_millis(10));
    }
}
