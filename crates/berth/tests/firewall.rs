//! Root tests of the seed's same-host story on nftables: icc, links,
//! published ports (TCP, UDP, ranges, random ports, 127.0.0.1), hairpin,
//! source policies, conflicts, and survival of restarts and `nft flush`.
//! An "outside" namespace plays another machine (10.99.0.2, the host is
//! 10.99.0.1 on its side).

mod common;

use common::*;

fn outside_tcp(ip: &str, port: u16) -> Option<String> {
    let o = sh_out(&format!("ip netns exec outside socat -t5 -T5 - TCP:{ip}:{port},connect-timeout=1 </dev/null"));
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !out.is_empty()).then_some(out)
}

fn host_tcp(ip: &str, port: u16) -> Option<String> {
    let o = sh_out(&format!("socat -t5 -T5 - TCP:{ip}:{port},connect-timeout=1 </dev/null"));
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !out.is_empty()).then_some(out)
}

fn hosts_of(s: &Sandbox, name: &str) -> String {
    String::from_utf8_lossy(&s.exec(name, "cat /etc/hosts").stdout).into_owned()
}

#[test]
fn icc_off_cuts_every_port_and_links_open_exposed_ones() {
    let Some(s) = Sandbox::new() else { return };
    s.ok(&["network", "create", "-o", "icc=false", "quiet"]);
    // first serves 80 (exposed) and 81 (not exposed); second serves 80.
    s.run("first", &["--network", "quiet", "--expose", "80"], "socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:'echo ok-from-first' & exec socat TCP-LISTEN:81,fork,reuseaddr SYSTEM:'echo eighty-one'");
    s.wait_port("first", Proto::Tcp, 80);
    s.wait_port("first", Proto::Tcp, 81);
    s.server("second", &["--network", "quiet"], 80);
    let (first, second) = (s.ip("first", "quiet"), s.ip("second", "quiet"));
    // icc off: nothing between first and second, any port, any protocol, either way.
    assert_eq!(s.tcp_from("second", &first, 80), None);
    assert_eq!(s.tcp_from("second", &first, 81), None);
    assert_eq!(s.tcp_from("first", &second, 80), None);
    assert!(!s.ping_from("first", &second));
    assert!(!s.ping_from("second", &first));
    // third links to first: the exposed port by alias, nothing else.
    s.run("third", &["--network", "quiet", "--link", "first:firsttest"], "sleep 1000");
    let hosts = hosts_of(&s, "third");
    assert!(hosts.contains(&format!("{first}\tfirsttest first")), "{hosts}");
    assert_eq!(s.tcp_from("third", "firsttest", 80).as_deref(), Some("ok-from-first"));
    assert_eq!(s.tcp_from("third", "first", 80).as_deref(), Some("ok-from-first"));
    assert_eq!(s.tcp_from("third", &first, 81), None, "unexposed port stays closed");
    assert!(!s.ping_from("third", &first), "ICMP is not an exposed port");
    assert_eq!(s.tcp_from("third", &second, 80), None, "second stays unreachable");
    let third = s.ip("third", "quiet");
    s.run("probe", &["--network", "quiet"], "sleep 1000");
    assert_eq!(s.tcp_from("first", &third, 80), None, "the linked container cannot open connections back");
    let v = s.inspect("third");
    assert_eq!(v["HostConfig"]["Links"][0], "/first:/third/firsttest");
    // The linked container is re-created with a new address: hosts and rules follow.
    s.ok(&["rm", "-f", "first"]);
    assert!(!hosts_of(&s, "third").contains("firsttest"), "entry goes with the container");
    s.run("blocker", &["--network", "quiet"], "sleep 1000");
    s.server("first", &["--network", "quiet", "--expose", "80"], 80);
    let first2 = s.ip("first", "quiet");
    assert_ne!(first2, first);
    s.eventually("hosts entry updated", || hosts_of(&s, "third").contains(&format!("{first2}\tfirsttest first")));
    assert_eq!(s.tcp_from("third", "firsttest", 80).as_deref(), Some("ok-from-first"));
    assert_eq!(s.tcp_from("blocker", &first2, 80), None, "the old address's allowance did not move to someone else");
}

#[test]
fn daemon_icc_false_applies_to_default_network_and_link_env() {
    let Some(s) = Sandbox::with_args(&["--icc=false"]) else { return };
    s.server("db", &["--expose", "5432"], 5432);
    s.server("other", &[], 80);
    let db = s.ip("db", "berth0");
    s.run("app", &["--link", "db:database", "--link-env"], "sleep 1000");
    assert_eq!(s.tcp_from("app", "database", 5432).as_deref(), Some("ok-from-db"));
    assert_eq!(s.tcp_from("app", &s.ip("other", "berth0"), 80), None);
    let env = String::from_utf8_lossy(&s.exec("app", "env").stdout).into_owned();
    assert!(env.contains(&format!("DATABASE_PORT_5432_TCP=tcp://{db}:5432")), "{env}");
    assert!(env.contains(&format!("DATABASE_PORT_5432_TCP_ADDR={db}")));
    assert!(env.contains("DATABASE_PORT_5432_TCP_PORT=5432"));
    assert!(env.contains("DATABASE_PORT_5432_TCP_PROTO=tcp"));
    assert!(env.contains("DATABASE_NAME=/app/database"));
    s.run("noenv", &["--link", "db"], "sleep 1000");
    let env = String::from_utf8_lossy(&s.exec("noenv", "env").stdout).into_owned();
    assert!(!env.contains("DB_PORT"), "link variables are off without --link-env");
}

#[test]
fn published_port_from_outside_host_and_containers() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&["127.0.0.0/8"]);
    s.server("firstcentos", &["-p", "32768:80"], 80);
    s.server("loop", &["-p", "127.0.0.1:8081:80"], 80);
    s.run("client", &[], "sleep 1000");
    s.ok(&["network", "create", "elsewhere"]);
    s.run("remote", &["--network", "elsewhere"], "sleep 1000");
    assert_eq!(s.ok(&["port", "firstcentos"]).trim(), "80/tcp -> 0.0.0.0:32768");
    assert_eq!(s.ok(&["port", "firstcentos", "80"]).trim(), "0.0.0.0:32768");
    let v = s.inspect("firstcentos");
    assert_eq!(v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], "32768");
    // From another machine, through the host's address.
    assert_eq!(outside_tcp("10.99.0.1", 32768).as_deref(), Some("ok-from-firstcentos"));
    // From the host itself: loopback and its own addresses.
    assert_eq!(host_tcp("127.0.0.1", 32768).as_deref(), Some("ok-from-firstcentos"));
    assert_eq!(host_tcp("10.99.0.1", 32768).as_deref(), Some("ok-from-firstcentos"));
    // From containers, through a host address (hairpin), same and other network.
    assert_eq!(s.tcp_from("client", "10.99.0.1", 32768).as_deref(), Some("ok-from-firstcentos"));
    assert_eq!(s.tcp_from("firstcentos", "10.99.0.1", 32768).as_deref(), Some("ok-from-firstcentos"), "to itself");
    assert_eq!(s.tcp_from("remote", "10.99.0.1", 32768).as_deref(), Some("ok-from-firstcentos"));
    // 127.0.0.1-only: the host yes, the neighbour no, even routing 127/8 at us.
    assert_eq!(host_tcp("127.0.0.1", 8081).as_deref(), Some("ok-from-loop"));
    assert_eq!(outside_tcp("127.0.0.1", 8081), None);
    assert_eq!(outside_tcp("10.99.0.1", 8081), None);
    // Unpublished ports are not reachable from outside, directly or via the host.
    let ip = s.ip("firstcentos", "berth0");
    sh("ip -n outside route add 172.17.0.0/16 via 10.99.0.1");
    assert_eq!(outside_tcp(&ip, 80), None);
}

#[test]
fn udp_ranges_random_ports_and_conflicts() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&[]);
    s.udp_server("dns", &["-p", "5353:53/udp"], 53, "ok-udp");
    assert_eq!(udp_ask(Some("/run/netns/outside"), "10.99.0.1:5353", None).as_deref(), Some("ok-udp"));
    // A range, equal lengths.
    s.run("ranged", &["-p", "9000-9002:7000-7002"], "socat TCP-LISTEN:7000,fork SYSTEM:'echo r0' & socat TCP-LISTEN:7001,fork SYSTEM:'echo r1' & exec socat TCP-LISTEN:7002,fork SYSTEM:'echo r2'");
    for p in 7000..=7002 {
        s.wait_port("ranged", Proto::Tcp, p);
    }
    for (hp, want) in [(9000, "r0"), (9001, "r1"), (9002, "r2")] {
        assert_eq!(outside_tcp("10.99.0.1", hp).as_deref(), Some(want));
    }
    assert_eq!(s.ok(&["port", "ranged"]).lines().count(), 3);
    // Random host ports come from the kernel's ephemeral range.
    sh("sysctl -qw net.ipv4.ip_local_port_range='40000 40100'");
    s.server("rnd", &["-p", "80", "--expose", "81", "-P"], 80);
    let ports = s.ok(&["port", "rnd"]);
    assert_eq!(ports.lines().count(), 2, "{ports}");
    for l in ports.lines() {
        let hp: u16 = l.rsplit(':').next().unwrap().parse().unwrap();
        assert!((40000..=40100).contains(&hp), "{l}");
    }
    let hp: u16 = s.ok(&["port", "rnd", "80"]).trim().rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(outside_tcp("10.99.0.1", hp).as_deref(), Some("ok-from-rnd"));
    // Conflicts: another berth mapping, then a host process; nothing half-applied.
    s.server("web", &["-p", "8080:80"], 80);
    let before = (s.store_dump(), s.kernel_view());
    let err = s.fails(&["run", "-d", "--name", "web2", "-p", "8079-8081:8079-8081", "--", "sleep", "1"]);
    assert!(err.contains("Bind for 0.0.0.0:8080 failed: port is already allocated"), "{err}");
    let err = s.fails(&["run", "-d", "--name", "web3", "-p", "127.0.0.1:8080:80", "--", "sleep", "1"]);
    assert!(err.contains("Bind for 127.0.0.1:8080 failed: port is already allocated"), "{err}");
    let host_process = Bg::spawn("socat TCP-LISTEN:8090,fork,reuseaddr SYSTEM:true");
    host_process.wait_listening(Proto::Tcp, 8090);
    let err = s.fails(&["run", "-d", "--name", "web4", "-p", "8090:80", "--", "sleep", "1"]);
    assert!(err.contains("0.0.0.0:8090") && err.contains("address already in use"), "{err}");
    assert_eq!((s.store_dump(), s.kernel_view()), before, "a refused publish changes nothing");
    drop(host_process);
}

#[test]
fn removed_mapping_takes_its_conntrack_state() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&[]);
    s.udp_server("old", &["-p", "5400:53/udp"], 53, "from-old");
    let ask = || udp_ask(Some("/run/netns/outside"), "10.99.0.1:5400", Some(40404)).unwrap_or_default();
    assert_eq!(ask(), "from-old");
    s.ok(&["rm", "-f", "old"]);
    s.run("spacer", &[], "sleep 1000");
    s.udp_server("new", &["-p", "5400:53/udp"], 53, "from-new");
    assert_eq!(ask(), "from-new", "the same flow reaches the new mapping, not a stale translation");
}

/// A UDP client that was talking to a host process on a port keeps its
/// flow (conntrack entry) when that process goes; once the port is
/// published, the same client, from the same source port, reaches the
/// container at once instead of the host: publishing forgets host-bound
/// flows on the port (as Docker does).
#[test]
fn udp_flow_that_reached_the_host_moves_to_a_new_mapping() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&[]);
    let ask = || udp_ask(Some("/run/netns/outside"), "10.99.0.1:5401", Some(40405));
    let host_service = UdpEcho::start("/proc/thread-self/ns/net", 5401, "from-host");
    assert_eq!(ask().as_deref(), Some("from-host"));
    drop(host_service);
    s.udp_server("late", &["-p", "5401:53/udp"], 53, "from-late");
    assert_eq!(ask().as_deref(), Some("from-late"), "the same flow reaches the new mapping, not the host");
}

#[test]
fn source_policies_hold_for_published_and_direct_traffic() {
    let Some(mut s) = Sandbox::new() else { return };
    s.outside(&["172.17.0.0/16"]);
    sh("ip netns add outside2 && ip link add uplink2 type veth peer name eth0 netns outside2 && ip addr add 10.98.0.1/24 dev uplink2 && ip link set uplink2 up && ip -n outside2 addr add 10.98.0.2/24 dev eth0 && ip -n outside2 link set eth0 up && ip -n outside2 route add default via 10.98.0.1");
    s.server("fourcentos", &["-p", "8000:80"], 80);
    s.run("neighbour", &[], "sleep 1000");
    assert_eq!(outside_tcp("10.99.0.1", 8000).as_deref(), Some("ok-from-fourcentos"));
    let id = s.ok(&["policy", "deny", "--from", "10.99.0.2", "--to", "fourcentos:80"]).trim().to_string();
    assert_eq!(outside_tcp("10.99.0.1", 8000), None, "the denied outsider is dropped");
    let other = sh("ip netns exec outside2 socat -t5 -T5 - TCP:10.98.0.1:8000,connect-timeout=1 </dev/null");
    assert_eq!(other.trim(), "ok-from-fourcentos", "nobody else is");
    assert_eq!(host_tcp("127.0.0.1", 8000).as_deref(), Some("ok-from-fourcentos"));
    assert_eq!(s.tcp_from("neighbour", &s.ip("fourcentos", "berth0"), 80).as_deref(), Some("ok-from-fourcentos"));
    assert!(s.ok(&["policy", "ls"]).contains(&id));
    // Survives a daemon restart, and nft flush ruleset + reconcile.
    s.stop_daemon(false);
    assert_eq!(outside_tcp("10.99.0.1", 8000), None, "held while the daemon is down");
    s.start_daemon();
    assert_eq!(outside_tcp("10.99.0.1", 8000), None);
    sh("nft flush ruleset");
    let changes = s.ok(&["reconcile"]);
    assert!(changes.contains("nft table inet berth"), "{changes}");
    assert_eq!(outside_tcp("10.99.0.1", 8000), None);
    assert_eq!(host_tcp("10.99.0.1", 8000).as_deref(), Some("ok-from-fourcentos"), "mapping back");
    // Applies again to a re-created container of that name.
    s.ok(&["rm", "-f", "fourcentos"]);
    s.server("fourcentos", &["-p", "8000:80"], 80);
    assert_eq!(outside_tcp("10.99.0.1", 8000), None);
    // allow: once a port has an allow, only allowed sources reach it.
    s.ok(&["policy", "rm", &id]);
    assert_eq!(outside_tcp("10.99.0.1", 8000).as_deref(), Some("ok-from-fourcentos"));
    s.ok(&["policy", "allow", "--from", "10.98.0.0/24", "--to", "fourcentos:80"]);
    assert_eq!(outside_tcp("10.99.0.1", 8000), None);
    let other = sh("ip netns exec outside2 socat -t5 -T5 - TCP:10.98.0.1:8000,connect-timeout=1 </dev/null");
    assert_eq!(other.trim(), "ok-from-fourcentos");
    // Direct traffic to the container address is covered too.
    assert_eq!(s.tcp_from("neighbour", &s.ip("fourcentos", "berth0"), 80), None);
}

#[test]
fn users_own_table_wins() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&[]);
    s.server("web", &["-p", "8000:80"], 80);
    assert_eq!(outside_tcp("10.99.0.1", 8000).as_deref(), Some("ok-from-web"));
    // The README's example: a drop in the user's own table is final.
    sh("nft -f - <<'EOF'\ntable inet mine {\n  chain forward {\n    type filter hook forward priority filter - 10; policy accept;\n    ip saddr 10.99.0.2 tcp dport 80 drop\n  }\n}\nEOF");
    assert_eq!(outside_tcp("10.99.0.1", 8000), None);
    s.ok(&["reconcile"]);
    assert!(sh("nft list tables").contains("table inet mine"), "berth never touches other tables");
    assert_eq!(outside_tcp("10.99.0.1", 8000), None);
    sh("nft delete table inet mine");
    assert_eq!(outside_tcp("10.99.0.1", 8000).as_deref(), Some("ok-from-web"));
}

/// Overlapping policies (found by the isolation-matrix suite: the kernel
/// refuses overlapping interval elements, which broke restarts) are cut
/// into disjoint elements and behave as their union.
#[test]
fn overlapping_policies() {
    let Some(mut s) = Sandbox::new() else { return };
    s.outside(&[]);
    s.server("web", &["-p", "8000:80"], 80);
    let narrow = s.ok(&["policy", "deny", "--from", "10.99.0.2/32", "--to", "web:80"]).trim().to_string();
    let broad = s.ok(&["policy", "deny", "--from", "10.99.0.0/24", "--to", "web"]).trim().to_string();
    s.ok(&["policy", "deny", "--from", "10.99.0.0/31", "--to", "web:80/tcp"]);
    assert_eq!(outside_tcp("10.99.0.1", 8000), None);
    s.stop_daemon(false);
    s.start_daemon();
    sh("nft flush ruleset");
    s.ok(&["reconcile"]);
    assert_eq!(outside_tcp("10.99.0.1", 8000), None);
    s.ok(&["policy", "rm", &broad]);
    assert_eq!(outside_tcp("10.99.0.1", 8000), None, "the narrower ones still deny");
    s.ok(&["policy", "rm", &narrow]);
    let rest = s.ok(&["policy", "ls"]);
    let last = rest.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    s.ok(&["policy", "rm", &last]);
    assert_eq!(outside_tcp("10.99.0.1", 8000).as_deref(), Some("ok-from-web"));
}

/// The host's paths to a published port that are DNAT's whether or not
/// translation is on: UDP, a client bound first, and (once more) an unbound
/// one; each must reach the container, or the failure names which did not.
fn dnat_paths(s: &Sandbox, when: &str) {
    let u = udp_ask(None, "127.0.0.1:5300", None);
    let unbound = sh_out("socat -t5 -T5 - TCP:127.0.0.1:8090,connect-timeout=1 </dev/null");
    let bound = sh_out("socat -t5 -T5 - TCP:127.0.0.1:8090,bind=127.0.0.1,connect-timeout=1 </dev/null");
    let show = |o: &std::process::Output| format!("{:?} {}{}", o.status.code(), String::from_utf8_lossy(&o.stdout).trim(), String::from_utf8_lossy(&o.stderr).trim());
    assert!(
        u.as_deref() == Some("from-udp") && unbound.stdout.starts_with(b"ok-from-web") && bound.stdout.starts_with(b"ok-from-web"),
        "{when}: udp: {:?}; unbound tcp: {}; bound tcp: {}\n--- conntrack ---\n{}\n--- table ---\n{}\n--- daemon log ---\n{}",
        u, show(&unbound), show(&bound), sh("conntrack -L -n 2>&1 || true"), sh("nft list table inet berth"), s.daemon_log()
    );
}

/// The host's own TCP connections to a published port are translated in
/// connect(): they work without the per-packet DNAT, show the asked address
/// as their peer, and go back to DNAT when the socket is bound first, for
/// UDP, and whenever no daemon holds the programs.
#[test]
fn host_connections_are_translated_in_connect() {
    let Some(mut s) = Sandbox::new() else { return };
    s.outside(&[]);
    s.server("web", &["-p", "8090:80", "-p", "127.0.0.1:8091:80"], 80);
    s.udp_server("dns", &["-p", "5300:53/udp"], 53, "from-udp");
    assert!(s.ok(&["info"]).contains("Socket translation: on"), "{}", s.daemon_log());
    let udp = || udp_ask(None, "127.0.0.1:5300", None).as_deref() == Some("from-udp");
    dnat_paths(&s, "at start");

    // Without the host's DNAT rules, translated connections still arrive.
    sh("nft flush chain inet berth nat_output");
    // Every address of the host: loopback, a bridge's, the uplink's.
    for addr in ["127.0.0.1:8090", "127.0.0.1:8091", "172.17.0.1:8090", "10.99.0.1:8090"] {
        let c = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
        assert_eq!(c.peer_addr().unwrap().to_string(), addr, "getpeername shows the published address");
        let mut got = String::new();
        std::io::Read::read_to_string(&mut &c, &mut got).unwrap();
        assert_eq!(got.trim(), "ok-from-web", "{addr}");
    }
    assert_eq!(host_tcp("172.17.0.1", 8091), None, "a 127.0.0.1 mapping stays on 127.0.0.1");
    assert!(!udp(), "UDP is DNAT's alone");
    let bound_only = sh_out("socat -t5 -T5 - TCP:127.0.0.1:8090,bind=127.0.0.1,connect-timeout=1 </dev/null");
    assert!(!bound_only.stdout.starts_with(b"ok-from-web"), "a bound socket is DNAT's");
    s.ok(&["reconcile"]);
    dnat_paths(&s, "after reconcile");

    // A stopped daemon leaves no programs: the host path is DNAT's again.
    s.stop_daemon(true);
    sh("nft flush chain inet berth nat_output");
    assert_eq!(host_tcp("127.0.0.1", 8090), None, "nothing translates without the daemon");
    s.start_daemon();
    assert_eq!(host_tcp("127.0.0.1", 8090).as_deref(), Some("ok-from-web"));

    // --socket-translation=false: DNAT alone, and still reachable.
    s.stop_daemon(false);
    s.extra = vec!["--socket-translation=false".into()];
    s.start_daemon();
    assert!(s.ok(&["info"]).contains("Socket translation: off"));
    dnat_paths(&s, "with translation off");
    sh("nft flush chain inet berth nat_output");
    assert_eq!(host_tcp("127.0.0.1", 8090), None);
    s.ok(&["reconcile"]);
}

/// IPv6 on a dual-stack network gets every rule IPv4 gets: icc off both
/// ways, a link opening only exposed ports, ports published on every
/// address reachable over both families from another machine and from the
/// host ([::1] too), a port bound to [::1] reachable only from the host,
/// hairpin, IPv6 policies, conntrack cleanup of a removed UDP mapping, and
/// all of it back after `nft flush ruleset` + reconcile.
#[test]
fn ipv6_gets_every_rule_ipv4_gets() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&["::1/128", "fd00:70::/64"]);
    let outside6 = |to: &str| -> Option<String> {
        let o = sh_out(&format!("ip netns exec outside socat -t5 -T5 - TCP:{to},connect-timeout=1 </dev/null"));
        let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
        (o.status.success() && !out.is_empty()).then_some(out)
    };
    s.ok(&["network", "create", "--ipv6", "--subnet", "10.70.0.0/24", "--subnet", "fd00:70::/64", "-o", "icc=false", "quiet6"]);
    s.server("first", &["--network", "quiet6", "--expose", "80", "-p", "8085:80", "-p", "[::1]:8086:80"], 80);
    s.server("second", &["--network", "quiet6"], 80);
    s.run("third", &["--network", "quiet6", "--link", "first:firsttest"], "sleep 1000");
    let (first6, second6, third6) = (s.ip6("first", "quiet6"), s.ip6("second", "quiet6"), s.ip6("third", "quiet6"));
    let hosts = String::from_utf8_lossy(&s.exec("third", "cat /etc/hosts").stdout).into_owned();
    assert!(hosts.contains(&format!("{first6}\tfirsttest first")), "the link's IPv6 address: {hosts}");

    let check = |when: &str| {
        // icc off, both ways, IPv6 as IPv4.
        assert_eq!(s.tcp_from("second", &first6, 80), None, "{when}: icc off over IPv6");
        assert_eq!(s.tcp_from("first", &second6, 80), None, "{when}");
        assert!(!s.ping_from("first", &second6), "{when}");
        // The link: the exposed port, over IPv6 too; not the way back.
        assert_eq!(s.tcp_from("third", &first6, 80).as_deref(), Some("ok-from-first"), "{when}: link over IPv6");
        assert_eq!(s.tcp_from("third", &second6, 80), None, "{when}");
        assert_eq!(s.tcp_from("first", &third6, 80), None, "{when}");
        // Published on every address: both families, from another machine and from the host.
        assert_eq!(outside6("[fd99::1]:8085").as_deref(), Some("ok-from-first"), "{when}: outside over IPv6");
        assert_eq!(outside6("10.99.0.1:8085").as_deref(), Some("ok-from-first"), "{when}: outside over IPv4");
        assert_eq!(probe("", "[::1]:8085").as_deref(), Some("ok-from-first"), "{when}: the host at [::1]");
        assert_eq!(probe("", "[fd99::1]:8085").as_deref(), Some("ok-from-first"), "{when}: the host at its own IPv6 address");
        // Bound to [::1]: the host only, never a neighbour routing ::1 at us.
        assert_eq!(probe("", "[::1]:8086").as_deref(), Some("ok-from-first"), "{when}: [::1] mapping from the host");
        assert_eq!(outside6("[::1]:8086"), None, "{when}: a neighbour cannot reach a [::1] mapping");
        assert_eq!(outside6("[fd99::1]:8086"), None, "{when}: nor through the host's address");
        // Hairpin over IPv6: a container to the published port, itself included.
        assert_eq!(s.tcp_from("second", "fd99::1", 8085).as_deref(), Some("ok-from-first"), "{when}: hairpin");
        assert_eq!(s.tcp_from("first", "fd99::1", 8085).as_deref(), Some("ok-from-first"), "{when}: to itself");
        // No direct access to the container from outside.
        assert_eq!(outside6(&format!("[{first6}]:80")), None, "{when}: direct");
    };
    check("as set up");
    // An IPv6 policy holds for IPv6 sources only.
    let id = s.ok(&["policy", "deny", "--from", "fd99::2", "--to", "first:80"]).trim().to_string();
    assert_eq!(outside6("[fd99::1]:8085"), None, "denied over IPv6");
    assert_eq!(outside6("10.99.0.1:8085").as_deref(), Some("ok-from-first"), "an IPv6 policy leaves IPv4 alone");
    sh("nft flush ruleset");
    assert!(s.ok(&["reconcile"]).contains("nft table inet berth"));
    assert_eq!(outside6("[fd99::1]:8085"), None, "the policy is back");
    s.ok(&["policy", "rm", &id]);
    check("after flush and reconcile");

    // A removed UDP mapping takes its IPv6 conntrack state along.
    s.udp_server("old", &["--network", "quiet6", "-p", "5401:53/udp"], 53, "from-old");
    let ask = || udp_ask(Some("/run/netns/outside"), "[fd99::1]:5401", Some(40406)).unwrap_or_default();
    assert_eq!(ask(), "from-old");
    s.ok(&["rm", "-f", "old"]);
    s.run("spacer", &["--network", "quiet6"], "sleep 1000");
    s.udp_server("new", &["--network", "quiet6", "-p", "5401:53/udp"], 53, "from-new");
    assert_eq!(ask(), "from-new", "the same IPv6 flow reaches the new mapping");
}

/// A TCP request from the sandbox (`prefix` empty) or through `ip netns
/// exec NS`, waiting for the answer.
fn probe(prefix: &str, to: &str) -> Option<String> {
    let o = sh_out(&format!("{prefix}socat -t5 -T5 - TCP:{to},connect-timeout=1 </dev/null"));
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !out.is_empty()).then_some(out)
}
