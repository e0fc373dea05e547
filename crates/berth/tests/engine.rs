//! Root tests of the engine (one host): connectivity, NAT, isolation,
//! internal networks, static addresses, automatic subnets, restarts,
//! crashes and concurrency. Each test has its own network namespace.

mod common;

use std::collections::HashSet;

use common::*;

#[test]
fn two_containers_on_default_network_reach_each_other() {
    let Some(s) = Sandbox::new() else { return };
    s.server("web", &[], 80);
    s.run("client", &[], "sleep 1000");
    let web = s.ip("web", "berth0");
    assert!(web.starts_with("172.17."), "default subnet is 172.17.0.0/16: {web}");
    assert!(s.ping_from("client", &web), "ICMP");
    assert_eq!(s.tcp_from("client", &web, 80).as_deref(), Some("ok-from-web"), "TCP");
    // The container sees its own name and address.
    let hosts = String::from_utf8_lossy(&s.exec("client", "cat /etc/hosts; hostname").stdout).into_owned();
    let me = s.ip("client", "berth0");
    assert!(hosts.contains(&me), "{hosts}");
    let route = String::from_utf8_lossy(&s.exec("client", "ip route").stdout).into_owned();
    assert!(route.contains("default via 172.17.0.1 dev eth0"), "{route}");
}

#[test]
fn outbound_traffic_is_masqueraded_and_inbound_refused() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&["172.17.0.0/16"]);
    // The outsider answers with the address it sees.
    let _peer = s.outside_echo_peer(8000);
    s.server("web", &[], 80);
    assert_eq!(s.tcp_from("web", "10.99.0.2", 8000).as_deref(), Some("10.99.0.1"), "arrives with the host's address");
    let info = s.ok(&["info"]);
    assert!(info.contains("IPv4 forwarding: on"), "{info}");
    // The outside cannot open a connection to the container's address.
    let web = s.ip("web", "berth0");
    assert!(!ok(&format!("ip netns exec outside socat -t5 -T5 - TCP:{web}:80,connect-timeout=1 </dev/null")), "direct access must be dropped");
    assert!(!ok(&format!("ip netns exec outside ping -c1 -W1 {web}")));
}

#[test]
fn masquerade_can_be_turned_off() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&["10.60.0.0/24", "fd00:60::/64"]);
    let _peer = s.outside_echo_peer(8000);
    let _peer6 = s.outside_echo_peer6(8001);
    s.ok(&["network", "create", "--ipv6", "--subnet", "10.60.0.0/24", "--subnet", "fd00:60::/64", "-o", "masquerade=false", "routed"]);
    s.run("c", &["--network", "routed", "--ip", "10.60.0.9", "--ip6", "fd00:60::9"], "sleep 1000");
    assert_eq!(s.tcp_from("c", "10.99.0.2", 8000).as_deref(), Some("10.60.0.9"), "source kept without masquerade");
    let seen = s.tcp_from("c", "fd99::2", 8001).and_then(|a| a.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok());
    assert_eq!(seen, Some("fd00:60::9".parse().unwrap()), "IPv6 source kept without masquerade");
    // Turning IPv6 forwarding on kept the uplink taking router advertisements.
    assert_eq!(sh("cat /proc/sys/net/ipv6/conf/uplink/accept_ra").trim(), "2");
    let info = s.ok(&["info"]);
    assert!(info.contains("IPv6 forwarding: on (router advertisements still accepted: berth set accept_ra=2 on uplink)"), "{info}");
    assert!(s.daemon_log().contains("accept_ra is now 2 on uplink"), "{}", s.daemon_log());
}

#[test]
fn networks_are_isolated_unless_connected_to_both() {
    let Some(s) = Sandbox::new() else { return };
    s.ok(&["network", "create", "front"]);
    s.ok(&["network", "create", "back"]);
    s.server("a", &["--network", "front"], 80);
    s.server("b", &["--network", "back"], 80);
    let (a, b) = (s.ip("a", "front"), s.ip("b", "back"));
    assert!(!s.ping_from("a", &b));
    assert!(!s.ping_from("b", &a));
    assert_eq!(s.tcp_from("a", &b, 80), None);
    // A container on both reaches both.
    s.run("both", &["--network", "front"], "sleep 1000");
    s.ok(&["network", "connect", "back", "both"]);
    assert!(s.ping_from("both", &a));
    assert!(s.ping_from("both", &b));
    assert_eq!(s.tcp_from("both", &b, 80).as_deref(), Some("ok-from-b"));
    let v = s.inspect("both");
    assert!(v["NetworkSettings"]["Networks"]["back"]["IPAddress"].as_str().unwrap().len() > 6);
    s.ok(&["network", "disconnect", "back", "both"]);
    assert!(!s.ping_from("both", &b));
    assert!(s.inspect("both")["NetworkSettings"]["Networks"]["back"].is_null());
}

#[test]
fn internal_network_has_no_way_out() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&[]);
    let _peer = s.outside_echo_peer(8000);
    s.ok(&["network", "create", "--internal", "--subnet", "10.70.0.0/24", "secret"]);
    s.server("db", &["--network", "secret"], 80);
    s.run("app", &["--network", "secret"], "sleep 1000");
    let routes = String::from_utf8_lossy(&s.exec("app", "ip route").stdout).into_owned();
    assert!(!routes.contains("default"), "no default route: {routes}");
    assert_eq!(s.tcp_from("app", "10.99.0.2", 8000), None);
    assert!(!s.ping_from("app", "10.99.0.2"));
    // Inside the network they still talk.
    assert_eq!(s.tcp_from("app", &s.ip("db", "secret"), 80).as_deref(), Some("ok-from-db"));
}

#[test]
fn static_ip_and_ip_range() {
    let Some(s) = Sandbox::new() else { return };
    s.ok(&["network", "create", "--subnet", "192.168.28.0/24", "--gateway", "192.168.28.2", "--ip-range", "192.168.28.64/26", "lan"]);
    s.run("fixed", &["--network", "lan", "--ip", "192.168.28.10"], "sleep 1000");
    s.run("auto", &["--network", "lan"], "sleep 1000");
    assert_eq!(s.ip("fixed", "lan"), "192.168.28.10");
    assert_eq!(s.ip("auto", "lan"), "192.168.28.64");
    let inner = String::from_utf8_lossy(&s.exec("fixed", "ip -o -4 addr show eth0; ip route").stdout).into_owned();
    assert!(inner.contains("192.168.28.10/24") && inner.contains("default via 192.168.28.2"), "{inner}");
    assert!(s.ping_from("auto", "192.168.28.10"));
    let n: serde_json::Value = serde_json::from_str(&s.ok(&["network", "inspect", "lan"])).unwrap();
    assert_eq!(n[0]["IPAM"]["Config"][0]["IPRange"], "192.168.28.64/26");
    assert_eq!(n[0]["Containers"].as_object().unwrap().len(), 2);
}

#[test]
fn automatic_subnet_avoids_host_routes() {
    let Some(mut s) = Sandbox::bare() else { return };
    // A host route covering 172.17/16 (as Docker's docker0 would) and one for 172.18/16.
    sh("ip link add fakedocker0 type bridge && ip link set fakedocker0 up && ip addr add 172.17.0.1/16 dev fakedocker0");
    sh("ip route add 172.18.0.0/16 dev fakedocker0");
    s.start_daemon();
    let info = s.ok(&["info"]);
    assert!(info.contains("172.19.0.0/16"), "berth0 moves past docker0's subnet and the route: {info}");
    s.ok(&["network", "create", "auto1"]);
    let n: serde_json::Value = serde_json::from_str(&s.ok(&["network", "inspect", "auto1"])).unwrap();
    assert_eq!(n[0]["IPAM"]["Config"][0]["Subnet"], "172.20.0.0/16");
}

#[test]
fn daemon_restart_keeps_containers_running_and_reachable() {
    let Some(mut s) = Sandbox::new() else { return };
    s.server("web", &[], 80);
    s.run("client", &[], "sleep 1000");
    let web = s.ip("web", "berth0");
    let pid = s.inspect("web")["State"]["Pid"].as_u64().unwrap();
    s.stop_daemon(false);
    // The data plane keeps working while the daemon is down.
    assert!(ok(&format!("nsenter --net=/proc/{pid}/ns/net ip addr show eth0 | grep -q {web}")));
    s.start_daemon();
    assert_eq!(s.inspect("web")["State"]["Pid"].as_u64().unwrap(), pid, "same process");
    assert_eq!(s.ip("web", "berth0"), web, "same address");
    assert_eq!(s.tcp_from("client", &web, 80).as_deref(), Some("ok-from-web"));
    // The restarted daemon still supervises: a stop is noticed and cleaned up.
    s.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(s.inspect("web")["State"]["Status"], "exited");
    assert!(!ok("ip -o link show | grep -q bthv.*master berth0 && [ $(ip -o link show | grep -c bthv) -gt 1 ]"));
    let reconcile = s.ok(&["reconcile"]);
    assert!(reconcile.contains("nothing to change"), "{reconcile}");
    // A new container does not get an address that is still in use.
    s.run("new", &[], "sleep 1000");
    assert_ne!(s.ip("new", "berth0"), s.ip("client", "berth0"));
}

#[test]
fn crash_while_starting_twenty_containers() {
    let Some(mut s) = Sandbox::new() else { return };
    let mut kids = Vec::new();
    for i in 0..20 {
        let name = format!("c{i}");
        kids.push(s.cmd(&["run", "-d", "--name", &name, "--", "sleep", "1000"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap());
    }
    // Kill the daemon once some have started and others are still on their way.
    s.eventually("a few containers running", || s.daemon_log().matches("running (pid").count() >= 4);
    s.stop_daemon(true);
    for mut k in kids {
        let _ = k.wait();
    }
    s.start_daemon();
    let list: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(&s.cmd(&["inspect"]).args(
        String::from_utf8_lossy(&s.berth(&["ps", "-a", "-q"]).stdout).split_whitespace().collect::<Vec<_>>()
    ).output().unwrap().stdout)).unwrap_or(serde_json::json!([]));
    let running: Vec<&serde_json::Value> = list.as_array().unwrap().iter().filter(|c| c["State"]["Running"] == true).collect();
    let mut seen = HashSet::new();
    for c in &running {
        let ip = c["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
        assert!(seen.insert(ip.clone()), "address {ip} held twice");
    }
    // No veth without a running container, none missing.
    let veths = sh("ip -o link show type veth | grep -c bthv || true").trim().parse::<usize>().unwrap();
    assert_eq!(veths, running.len(), "one veth per running container");
    s.run("probe", &[], "sleep 1000");
    for c in &running {
        let ip = c["NetworkSettings"]["IPAddress"].as_str().unwrap();
        assert!(s.ping_from("probe", ip), "{} ({ip}) reachable", c["Name"]);
    }
    // Nothing was left for reconcile.
    assert!(s.ok(&["reconcile"]).contains("nothing to change"));
    eprintln!("{} of 20 containers survived the crash as running", running.len());
    assert!(!running.is_empty(), "the ones started before the crash keep running: {}", s.daemon_log());
}

#[test]
fn fifty_concurrent_attaches_get_distinct_addresses() {
    let Some(s) = Sandbox::new() else { return };
    let paths: Vec<String> = (0..50).map(|i| netns(&format!("rt{i}"))).collect();
    let kids: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| s.cmd(&["attach", "--netns", p, "--name", &format!("ext{i}")]).output())
        .collect();
    drop(kids);
    // The loop above ran sequentially; now truly in parallel:
    let kids: Vec<_> = (0..50)
        .map(|i| {
            let p = netns(&format!("par{i}"));
            s.cmd(&["attach", "--netns", &p, "--name", &format!("par{i}")]).stdout(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for k in kids {
        assert!(k.wait_with_output().unwrap().status.success());
    }
    let mut seen = HashSet::new();
    for i in 0..50 {
        let ip = s.ip(&format!("par{i}"), "berth0");
        assert!(seen.insert(ip.clone()), "{ip} given twice");
        let inside = sh(&format!("ip -n par{i} -o -4 addr show eth0"));
        assert!(inside.contains(&ip), "{inside}");
    }
    for i in 0..50 {
        seen.insert(s.ip(&format!("ext{i}"), "berth0"));
    }
    assert_eq!(seen.len(), 100);
    // Detach releases everything.
    s.ok(&["detach", "par0"]);
    // Cut off at once; the interface itself goes a moment later (deleting a
    // link waits for the kernel's RCU grace period, off the request path).
    assert!(ok("ip -n par0 link show eth0 | grep -q 'state DOWN\\|LOWERLAYERDOWN\\|NO-CARRIER' || ! ip -n par0 link show eth0 2>/dev/null"));
    s.eventually("eth0 of par0 deleted", || !ok("ip -n par0 link show eth0 2>/dev/null"));
    assert!(s.ok(&["ps"]).lines().count() == 100);
}

#[test]
fn bridge_names_with_dots() {
    let Some(s) = Sandbox::new() else { return };
    s.ok(&["network", "create", "-o", "bridge_name=br.100", "vlanish"]);
    assert_eq!(sh("cat /proc/sys/net/ipv4/conf/br.100/route_localnet").trim(), "1");
    s.run("a", &["--network", "vlanish"], "sleep 1000");
    s.run("b", &["--network", "vlanish"], "sleep 1000");
    assert!(s.ping_from("a", &s.ip("b", "vlanish")));
}

/// Dual-stack and IPv6-only networks, and a dual-stack default network
/// (`--ipv6 --fixed-cidr-v6`): one address per family with each family's
/// gateway as default route, traffic between containers over both, the
/// outside reached over IPv6 with the host's address (masqueraded), and
/// no direct IPv6 access from the outside.
#[test]
fn dual_stack_and_ipv6_only_networks() {
    let Some(s) = Sandbox::with_args(&["--ipv6", "--fixed-cidr-v6", "fd00:17::/64"]) else { return };
    s.outside(&["fd00:61::/64"]);
    let _peer = s.outside_echo_peer6(8000);
    s.ok(&["network", "create", "--ipv6", "--subnet", "10.61.0.0/24", "--subnet", "fd00:61::/64", "ds"]);
    s.ok(&["network", "create", "--ipv6", "--ipv4=false", "--subnet", "fd00:62::/64", "only6"]);
    s.server("web", &["--network", "ds", "--ip6", "fd00:61::80"], 80);
    s.run("client", &["--network", "ds"], "sleep 1000");
    s.server("v6srv", &["--network", "only6"], 80);
    s.run("v6cl", &["--network", "only6"], "sleep 1000");
    s.run("plain", &[], "sleep 1000");

    let v = s.inspect("web");
    let ep = &v["NetworkSettings"]["Networks"]["ds"];
    assert_eq!((ep["GlobalIPv6Address"].as_str(), ep["GlobalIPv6PrefixLen"].as_u64(), ep["IPv6Gateway"].as_str()), (Some("fd00:61::80"), Some(64), Some("fd00:61::1")));
    assert_eq!(ep["IPAMConfig"]["IPv6Address"], "fd00:61::80");
    let n: serde_json::Value = serde_json::from_str(&s.ok(&["network", "inspect", "ds"])).unwrap();
    assert_eq!((n[0]["EnableIPv6"].as_bool(), n[0]["IPAM"]["Config"].as_array().map(|c| c.len())), (Some(true), Some(2)));
    let routes = String::from_utf8_lossy(&s.exec("client", "ip route; ip -6 route").stdout).into_owned();
    assert!(routes.contains("default via 10.61.0.1") && routes.contains("default via fd00:61::1"), "{routes}");

    let (web4, web6) = (s.ip("web", "ds"), s.ip6("web", "ds"));
    assert_eq!(s.tcp_from("client", &web6, 80).as_deref(), Some("ok-from-web"), "IPv6");
    assert_eq!(s.tcp_from("client", &web4, 80).as_deref(), Some("ok-from-web"), "IPv4");
    assert!(s.ping_from("client", &web6));
    // IPv6 only: no IPv4 address at all.
    assert_eq!(s.tcp_from("v6cl", &s.ip6("v6srv", "only6"), 80).as_deref(), Some("ok-from-v6srv"));
    let v4 = String::from_utf8_lossy(&s.exec("v6cl", "ip -4 addr show eth0").stdout).into_owned();
    assert!(v4.trim().is_empty(), "{v4}");
    assert_eq!(s.ip("v6cl", "only6"), "");
    // The default network is dual-stack.
    assert!(s.ip6("plain", "berth0").starts_with("fd00:17::"), "{}", s.ip6("plain", "berth0"));
    assert!(s.ok(&["info"]).contains("IPv6 forwarding: on"));
    // Out over IPv6, with the host's address; not in directly.
    let seen = s.tcp_from("client", "fd99::2", 8000).and_then(|a| a.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok());
    assert_eq!(seen, Some("fd99::1".parse().unwrap()), "masqueraded");
    assert!(!ok(&format!("ip netns exec outside socat -t5 -T5 - TCP:[{web6}]:80,connect-timeout=1 </dev/null")), "direct IPv6 access is dropped");
    assert!(!ok(&format!("ip netns exec outside ping -6 -c1 -W1 {web6}")));
    // An internal dual-stack network: no way out in either family.
    s.ok(&["network", "create", "--internal", "--ipv6", "--subnet", "10.63.0.0/24", "--subnet", "fd00:63::/64", "secret6"]);
    s.server("vault", &["--network", "secret6"], 80);
    s.run("inside", &["--network", "secret6"], "sleep 1000");
    let routes = String::from_utf8_lossy(&s.exec("inside", "ip route; ip -6 route").stdout).into_owned();
    assert!(!routes.contains("default"), "no default route in either family: {routes}");
    assert_eq!(s.tcp_from("inside", "fd99::2", 8000), None);
    assert_eq!(s.tcp_from("inside", &s.ip6("vault", "secret6"), 80).as_deref(), Some("ok-from-vault"), "inside they still talk");
}
