//! Real podman (Debian's 4.3, with runc and conmon) using berth as its
//! network backend, end to end: what podman users do, from `run -p` to
//! `network reload`, and what must not break (a daemon killed under
//! running containers, collisions with berth's own networks, a teardown
//! of a namespace berth never set up). Each test runs in its own network
//! and mount namespace with podman's state under the sandbox directory
//! (`podman/harness.rs`); they skip when not root or podman is missing.

mod common;
#[path = "podman/harness.rs"]
mod harness;

use common::{curl, http, sh, udp_ask, UdpEcho};
use harness::{netns_inode, stop_daemon, PodmanBox};
use serde_json::Value;

const HELLO: &str = "hello-from-container";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn published_port_reachable_from_host_and_outside_and_gone_after_rm() {
    let Some(b) = PodmanBox::new() else { return };
    let before = b.s.kernel_view();
    b.s.outside(&[]);
    b.ok(&["network", "create", "n1"]);
    b.httpd("web", &["--network", "n1", "-p", "8080:80"], &[80]);
    assert_eq!(curl(None, "http://127.0.0.1:8080/index.html").as_deref(), Some(HELLO), "from the host");
    assert_eq!(curl(Some("outside"), "http://10.99.0.1:8080/index.html").as_deref(), Some(HELLO), "from another machine");
    assert_eq!(b.ok(&["port", "web"]).trim(), "80/tcp -> 0.0.0.0:8080");
    // A berth container: ps, inspect (with podman's id), the network by podman's name and id.
    let id = b.ok(&["inspect", "-f", "{{.Id}}", "web"]).trim().to_string();
    let c = &json(&b.s.ok(&["inspect", "web"]))[0];
    assert_eq!(c["Config"]["Labels"]["podman.containerID"], id.as_str());
    assert_eq!(c["Berth"]["Netns"], b.netns("web").as_str());
    let n = &json(&b.s.ok(&["network", "inspect", "n1"]))[0];
    assert_eq!(n["Id"], b.ok(&["network", "inspect", "-f", "{{.ID}}", "n1"]).trim());
    assert_eq!((n["Berth"]["Bridge"].as_str(), n["IPAM"]["Config"][0]["Subnet"].as_str()), (Some("podman1"), Some("10.89.0.0/24")));
    assert!(b.s.ok(&["rules"]).contains("8080"), "the published port is an element of berth's table");
    b.ok(&["stop", "-t", "0", "web"]);
    b.ok(&["rm", "web"]);
    assert!(b.s.ok(&["ps", "-a", "-q"]).trim().is_empty(), "no berth container left");
    assert!(!b.s.ok(&["rules"]).contains("8080"), "no element left");
    // The network goes with its last container, a moment later (its bridge's
    // deletion is not billed to podman's teardown).
    b.eventually("the podman network left berth", || !b.s.ok(&["network", "ls"]).contains("n1"));
    sh("ip netns del outside; ip link del uplink 2>/dev/null || true");
    b.eventually("no link, address, route or element left", || b.s.kernel_view() == before);
}

#[test]
fn port_ranges_loopback_only_and_udp() {
    let Some(b) = PodmanBox::new() else { return };
    b.s.outside(&[]);
    b.ok(&["network", "create", "n1"]);
    b.httpd("web", &["--network", "n1", "-p", "9000-9002:9000-9002", "-p", "127.0.0.1:8081:80", "-p", "8082:82/udp"], &[9000, 9001, 9002, 80]);
    for port in 9000..=9002 {
        assert_eq!(curl(None, &format!("http://127.0.0.1:{port}/index.html")).as_deref(), Some(HELLO), "range port {port}");
    }
    assert_eq!(curl(None, "http://127.0.0.1:8081/index.html").as_deref(), Some(HELLO), "127.0.0.1:8081 from the host");
    assert_eq!(curl(Some("outside"), "http://10.99.0.1:8081/index.html"), None, "a loopback-only port is not reachable from another machine");
    let _echo = UdpEcho::start(&b.netns("web"), 82, "pong");
    assert_eq!(udp_ask(None, "127.0.0.1:8082", None).as_deref(), Some("pong"), "UDP");
    let ports = b.ok(&["port", "web"]);
    assert!(ports.contains("82/udp -> 0.0.0.0:8082") && ports.contains("80/tcp -> 127.0.0.1:8081"), "{ports}");
}

#[test]
fn two_networks_connect_and_disconnect() {
    let Some(b) = PodmanBox::new() else { return };
    // Not hex names: podman 4.3 takes a name that is a prefix of another
    // network's id for that network ("network name c already used").
    for n in ["neta", "netb", "netc"] {
        b.ok(&["network", "create", n]);
    }
    b.run(&["-d", "--name", "multi", "--network", "neta,netb"], &["/bin/sleep", "100000"]);
    let nets = |b: &PodmanBox| {
        let c = &json(&b.s.ok(&["inspect", "multi"]))[0];
        c["NetworkSettings"]["Networks"].as_object().unwrap().keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(nets(&b), ["neta", "netb"]);
    let addrs = String::from_utf8_lossy(&b.exec("multi", "ip -o -4 addr show").stdout).into_owned();
    assert!(addrs.contains("eth0") && addrs.contains("eth1"), "{addrs}");
    let route = String::from_utf8_lossy(&b.exec("multi", "ip route show default").stdout).into_owned();
    assert!(route.contains("dev eth0"), "the first network carries the default route: {route}");
    b.ok(&["network", "connect", "netc", "multi"]);
    assert_eq!(nets(&b), ["neta", "netb", "netc"]);
    let ip_c = b.ok(&["inspect", "-f", "{{(index .NetworkSettings.Networks \"netc\").IPAddress}}", "multi"]);
    let addrs = String::from_utf8_lossy(&b.exec("multi", "ip -o -4 addr show eth2").stdout).into_owned();
    assert!(addrs.contains(ip_c.trim()), "podman's address for netc is on eth2: {addrs} / {ip_c}");
    b.ok(&["network", "disconnect", "netc", "multi"]);
    assert_eq!(nets(&b), ["neta", "netb"]);
    b.eventually("netc left berth with its only container", || !b.s.ok(&["network", "ls"]).contains("netc"));
}

#[test]
fn names_resolve_through_berths_resolver() {
    let Some(b) = PodmanBox::new() else { return };
    b.ok(&["network", "create", "n1"]);
    b.ok(&["network", "create", "other"]);
    b.httpd("srv", &["--network", "n1", "--network-alias", "web"], &[80]);
    let resolv = b.run(&["--rm", "--network", "n1"], &["/bin/cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.89.0.1") && resolv.contains("search dns.podman"), "{resolv}");
    for name in ["srv", "web", "srv.dns.podman", "srv.n1"] {
        let out = b.run(&["--rm", "--network", "n1"], &["/bin/wget", "-q", "-O", "-", &format!("http://{name}/index.html")]);
        assert_eq!(out, HELLO, "{name}");
    }
    let o = b.podman(&b.p.run_args(&["--rm", "--network", "other"], &["/bin/nslookup", "srv", "10.89.1.1"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("10.89.0."), "a container of another network does not resolve srv");
}

#[test]
fn internal_isolated_and_refused_networks() {
    let Some(b) = PodmanBox::new() else { return };
    b.s.outside(&[]);
    let _peer = b.s.outside_echo_peer(8000);
    b.ok(&["network", "create", "--internal", "inner"]);
    b.ok(&["network", "create", "-o", "isolate=true", "iso"]);
    b.ok(&["network", "create", "plain"]);
    b.httpd("inside", &["--network", "inner"], &[80]);
    b.httpd("lone", &["--network", "iso"], &[80]);
    b.run(&["-d", "--name", "client", "--network", "plain"], &["/bin/sleep", "100000"]);
    assert!(!b.exec("inside", "nc -w 2 10.99.0.2 8000 </dev/null").status.success(), "an internal network has no way out");
    assert!(b.exec("client", "nc -w 2 10.99.0.2 8000 </dev/null").status.success(), "a plain network has one");
    let lone = b.ok(&["inspect", "-f", "{{(index .NetworkSettings.Networks \"iso\").IPAddress}}", "lone"]);
    assert!(!b.exec("client", &format!("wget -q -T 2 -O - http://{}/index.html", lone.trim())).status.success(), "isolate=true: unreachable from other networks");
    b.ok(&["network", "create", "-o", "isolate=false", "open"]);
    let e = b.run_fails(&["--rm", "--network", "open"], &["/bin/true"]);
    assert!(e.contains("netavark: network open: option isolate=\"false\""), "{e}");
    b.ok(&["network", "create", "-o", "vlan=7", "tagged"]);
    let e = b.run_fails(&["--rm", "--network", "tagged"], &["/bin/true"]);
    assert!(e.contains("VLANs"), "{e}");
    assert!(!b.s.ok(&["network", "ls"]).contains("open"), "a refused setup leaves no network behind");
}

#[test]
fn static_ip_mac_default_network_and_restart() {
    let Some(b) = PodmanBox::new() else { return };
    b.ok(&["network", "create", "--subnet", "10.55.0.0/24", "n1"]);
    b.run(&["-d", "--name", "fixed", "--network", "n1", "--ip", "10.55.0.50", "--mac-address", "02:11:22:33:44:55"], &["/bin/sleep", "100000"]);
    let c = &json(&b.s.ok(&["inspect", "fixed"]))[0]["NetworkSettings"]["Networks"]["n1"];
    assert_eq!((c["IPAddress"].as_str(), c["MacAddress"].as_str()), (Some("10.55.0.50"), Some("02:11:22:33:44:55")));
    let link = String::from_utf8_lossy(&b.exec("fixed", "ip link show eth0").stdout).into_owned();
    assert!(link.contains("02:11:22:33:44:55"), "{link}");
    // podman's default network: `podman`, 10.88.0.0/16 on podman0.
    b.httpd("dflt", &["-p", "8090:80"], &[80]);
    assert_eq!(curl(None, "http://127.0.0.1:8090/index.html").as_deref(), Some(HELLO));
    let n = &json(&b.s.ok(&["network", "inspect", "podman"]))[0];
    assert_eq!((n["Berth"]["Bridge"].as_str(), n["IPAM"]["Config"][0]["Subnet"].as_str()), (Some("podman0"), Some("10.88.0.0/16")));
    // A restart is a teardown and a setup in a new namespace.
    let old = b.netns("dflt");
    b.ok(&["restart", "-t", "0", "dflt"]);
    crate::common::wait_listening(b.pid("dflt"), crate::common::Proto::Tcp, 80, "dflt");
    assert_ne!(b.netns("dflt"), old);
    assert_eq!(json(&b.s.ok(&["inspect", "dflt"]))[0]["Berth"]["Netns"], b.netns("dflt").as_str());
    assert_eq!(curl(None, "http://127.0.0.1:8090/index.html").as_deref(), Some(HELLO), "after the restart");
}

#[test]
fn network_reload_restores_rules_after_a_flush() {
    let Some(b) = PodmanBox::new() else { return };
    b.s.outside(&[]);
    b.ok(&["network", "create", "n1"]);
    b.httpd("web", &["--network", "n1", "-p", "8080:80"], &[80]);
    // From another machine: the DNAT rules (the host's own connections are
    // translated in connect(), which a flush does not touch).
    let url = "http://10.99.0.1:8080/index.html";
    assert_eq!(curl(Some("outside"), url).as_deref(), Some(HELLO));
    sh("nft flush ruleset");
    assert_eq!(curl(Some("outside"), url), None, "the flush took the port away");
    b.ok(&["network", "reload", "--all"]);
    assert_eq!(curl(Some("outside"), url).as_deref(), Some(HELLO), "podman network reload put it back");
    assert!(b.s.ok(&["reconcile"]).contains("nothing to change"), "and berth agrees nothing is missing");
}

#[test]
fn daemon_killed_and_restarted_under_running_containers() {
    let Some(mut b) = PodmanBox::new() else { return };
    b.ok(&["network", "create", "n1"]);
    b.httpd("web", &["--network", "n1", "-p", "8080:80"], &[80]);
    b.s.stop_daemon(true);
    assert_eq!(curl(None, "http://127.0.0.1:8080/index.html").as_deref(), Some(HELLO), "while the daemon is down");
    b.s.start_daemon();
    assert_eq!(curl(None, "http://127.0.0.1:8080/index.html").as_deref(), Some(HELLO), "after its restart");
    b.ok(&["stop", "-t", "0", "web"]);
    assert!(b.s.ok(&["ps", "-a", "-q"]).trim().is_empty(), "the teardown reached the restarted daemon");
    assert_eq!(curl(None, "http://127.0.0.1:8080/index.html"), None);
}

#[test]
fn collisions_with_berth_networks_are_refused_and_change_nothing() {
    let Some(b) = PodmanBox::new() else { return };
    // podman avoids subnets routed on the host when it creates a network:
    // the berth network comes after podman's, before its first container.
    b.ok(&["network", "create", "--subnet", "10.89.0.0/24", "n1"]);
    b.s.ok(&["network", "create", "--subnet", "10.89.0.0/25", "mine"]);
    b.s.ok(&["network", "create", "--subnet", "10.77.0.0/24", "same"]);
    let (store, kernel) = (b.s.store_dump(), b.s.kernel_view());
    let e = b.run_fails(&["--rm", "--network", "n1"], &["/bin/true"]);
    assert!(e.contains("Error: netavark: network n1:") && e.contains("overlaps with network \"mine\""), "{e}");
    b.ok(&["network", "create", "--subnet", "10.78.0.0/24", "same"]);
    let e = b.run_fails(&["--rm", "--network", "same"], &["/bin/true"]);
    assert!(e.contains("podman network same collides with berth's network same") && e.contains("10.77.0.0/24"), "{e}");
    assert_eq!(b.s.store_dump(), store, "the store is unchanged");
    assert_eq!(b.s.kernel_view(), kernel, "the kernel is unchanged");
}

/// An input of podman 4.3 (the captures), for the direct calls below.
fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/podman").join(name)).unwrap()
}

#[test]
fn direct_calls_answer_as_netavark() {
    let Some(b) = PodmanBox::new() else { return };
    let ns = common::netns("never");
    let store = b.s.store_dump();
    // A teardown of a namespace berth never set up: netavark's error, exit 1, nothing touched.
    let o = b.netavark(&["--config", "/run/containers/networks", "--rootless=false", "--aardvark-binary=", "teardown", &ns], &fixture("09-teardown-on-rm.stdin.json"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = json(&String::from_utf8_lossy(&o.stdout));
    assert!(e["error"].as_str().unwrap().contains("nothing to tear down"), "{e}");
    assert_eq!(b.s.store_dump(), store);
    // Errors as JSON on stdout: a missing namespace, bad JSON.
    let o = b.netavark(&["setup", "/run/netns/nope"], &fixture("01-setup-port.stdin.json"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(json(&String::from_utf8_lossy(&o.stdout))["error"].as_str().unwrap().starts_with("invalid namespace path"));
    let o = b.netavark(&["setup", &ns], b"{not json", &[]);
    assert!(json(&String::from_utf8_lossy(&o.stdout))["error"].as_str().unwrap().starts_with("failed to load network options"));
    // A capture replayed: the StatusBlock has netavark's shape, with berth's MAC.
    let o = b.netavark(&["setup", &ns], &fixture("03-setup-static-ip-mac-aliases-udp-hostip.stdin.json"), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let got = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(got, json(&String::from_utf8_lossy(&fixture("03-setup-static-ip-mac-aliases-udp-hostip.stdout.json"))));
    let o = b.netavark(&["teardown", &ns], &fixture("09-teardown-on-rm.stdin.json"), &[]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", String::from_utf8_lossy(&o.stdout));
    // version, update, firewall-reload; dhcp-proxy is refused.
    let v = json(&String::from_utf8_lossy(&b.netavark(&["version"], b"", &[]).stdout));
    assert_eq!(v["version"], "1.4.0");
    assert!(b.netavark(&["update", "n9", "--network-dns-servers", "192.0.2.1"], b"", &[]).status.success(), "a network berth has not got: nothing to do");
    assert!(b.netavark(&["firewall-reload"], b"", &[]).status.success());
    assert_eq!(b.netavark(&["dhcp-proxy"], b"", &[]).status.code(), Some(1));
    // update changes a network's upstream servers.
    b.s.ok(&["network", "create", "--subnet", "10.79.0.0/24", "up"]);
    assert!(b.netavark(&["update", "up", "--network-dns-servers", "192.0.2.1,192.0.2.2"], b"", &[]).status.success());
    let n = &json(&b.s.ok(&["network", "inspect", "up"]))[0];
    assert_eq!(n["Options"]["dns_servers"], "192.0.2.1,192.0.2.2");
    let (st, _) = http(&b.s, "POST", "/networks/berth0/dns", br#"{"Servers":["192.0.2.1"]}"#);
    assert_eq!(st, 400, "the default network has no resolver");
}

#[test]
fn front_end_starts_the_daemon_of_its_namespace() {
    let Some(b) = PodmanBox::without_daemon() else { return };
    let root = b.s.dir.join("auto-root");
    let exec_root = format!("/run/berth/ns-{}", netns_inode());
    let args = b.p.run_args(&["--rm"], &["/bin/true"]);
    let o = b.p.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>()).env_remove("BERTH_HOST").env("BERTH_ROOT", &root).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pid: u32 = std::fs::read_to_string(format!("{exec_root}/berth.pid")).unwrap().trim().parse().unwrap();
    let (st, body) = raw_info(&format!("{exec_root}/berth.sock"));
    assert_eq!(st, 200);
    assert_eq!(json(&body)["NetnsId"].as_u64(), Some(netns_inode()), "and serves this namespace");
    assert!(root.join("berth.db").exists(), "with its state where BERTH_ROOT says");
    // A call from another network namespace, as rootless podman's are
    // (`--rootless=true`): a daemon of that namespace, under XDG_RUNTIME_DIR.
    let (_other, _inner) = (common::netns("other"), common::netns("inner"));
    let xdg = b.s.dir.join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    let front = b.p.dir.join("helpers/netavark");
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", "other"]).arg(&front).args(["--rootless=true", "setup", "/run/netns/inner"]);
    c.env_remove("BERTH_HOST").env_remove("BERTH_ROOT").env("XDG_RUNTIME_DIR", &xdg);
    let o = piped(c, &fixture("06-setup-internal.stdin.json"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let other_ns = std::fs::metadata("/run/netns/other").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let run = xdg.join(format!("berth/ns-{other_ns}"));
    let pid2: u32 = std::fs::read_to_string(run.join("berth.pid")).unwrap().trim().parse().unwrap();
    assert_ne!(pid2, pid, "a daemon of its own");
    let (_, body) = raw_info(&run.join("berth.sock").display().to_string());
    assert_eq!(json(&body)["NetnsId"].as_u64(), Some(other_ns), "serving that namespace");
    stop_daemon(pid2);
    stop_daemon(pid);
}

/// Runs `c` with `stdin`; its output.
fn piped(mut c: std::process::Command, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `GET /info` on a socket: (status, body).
fn raw_info(socket: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(socket).unwrap();
    c.write_all(b"GET /info HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}
