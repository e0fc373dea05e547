//! Real dockerd (Debian's 20.10, its own containerd and runc) with berth
//! as its network and IPAM plugin, end to end: `docker network create -d
//! berth --ipam-driver berth`, `docker run -p`, names through Docker's
//! resolver, `docker rm -f` leaving nothing behind. Each test runs in its
//! own network and mount namespace with dockerd's state under the sandbox
//! directory (`docker/harness.rs`); they skip when not root or docker is
//! missing.

mod common;
#[path = "docker/harness.rs"]
mod harness;

use common::curl;
use harness::{get, DockerBox};
use serde_json::Value;

const HELLO: &str = "hello-from-container";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn dk_network_run_publish_names_and_rm() {
    let Some(b) = DockerBox::new(false) else { return };
    let before = b.s.kernel_view();
    b.s.outside(&[]);
    let nid = b.network("dn1", &["--subnet", "10.66.0.0/24", "--gateway", "10.66.0.1"]);
    // The Docker network is a berth network with Docker's id.
    let n = &json(&b.s.ok(&["network", "inspect", &nid]))[0];
    assert_eq!(n["Id"], nid.as_str());
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.66.0.0/24");
    b.httpd("web", &["--network", "dn1", "-p", "8080:80"], &[80]);
    let ip = b.ip("web", "dn1");
    assert!(ip.starts_with("10.66.0."), "{ip}");
    // berth made the interface and the port: reachable from the host,
    // from another machine, and from another container by name.
    assert_eq!(curl(None, "http://127.0.0.1:8080/index.html").as_deref(), Some(HELLO), "from the host\n{}", b.s.daemon_log());
    assert_eq!(curl(Some("outside"), "http://10.99.0.1:8080/index.html").as_deref(), Some(HELLO), "from another machine");
    b.run("cli", &["--network", "dn1"], "true");
    assert_eq!(get(&b, "cli", &ip, 80).as_deref(), Some(HELLO), "by address");
    assert_eq!(get(&b, "cli", "web", 80).as_deref(), Some(HELLO), "by name, through Docker's resolver");
    // No docker-proxy.
    assert!(!common::ok("pgrep -x docker-proxy"), "a docker-proxy runs");
    // The container's default route is dockerd's, via berth's gateway.
    let route = String::from_utf8_lossy(&b.exec("web", "ip route show default").stdout).into_owned();
    assert!(route.contains("via 10.66.0.1"), "{route}");
    assert_eq!(b.s.ok(&["ps", "-q"]).lines().count(), 2);
    // rm -f and network rm leave nothing of berth's behind.
    b.ok(&["rm", "-f", "web", "cli"]);
    b.eventually("berth's containers gone", || b.s.ok(&["ps", "-a", "-q"]).trim().is_empty());
    b.ok(&["network", "rm", "dn1"]);
    let after = b.s.kernel_view();
    assert!(!after.contains("bth"), "berth's bridge or veths are left:\n{after}");
    let _ = before;
}

/// `berth port NAME [PORT]` lines, once berth knows the container by its Docker name.
fn berth_port(b: &DockerBox, name: &str, port: &str) -> String {
    b.eventually(&format!("berth knows {name} by its Docker name"), || b.s.berth(&["inspect", name]).status.success());
    b.s.ok(&["port", name, port]).trim().to_string()
}

fn host_port(line: &str) -> u16 {
    line.rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("no port in {line:?}"))
}

#[test]
fn dk_ports_of_every_kind_by_docker_name() {
    let Some(b) = DockerBox::new(false) else { return };
    b.s.outside(&[]);
    b.network("dn2", &["--subnet", "10.67.0.0/24"]);
    b.httpd("web1", &["--network", "dn2", "-p", "127.0.0.1::81", "-p", "5353:53/udp", "-p", "20000-20004:20000-20004"], &[81, 20002]);
    b.httpd("web2", &["--network", "dn2", "--expose", "7000", "-P"], &[7000]);
    // Docker's names in berth.
    let loopback = berth_port(&b, "web1", "81");
    assert!(loopback.starts_with("127.0.0.1:"), "{loopback}");
    assert_eq!(b.s.ok(&["port", "web1", "53/udp"]).trim(), "0.0.0.0:5353");
    let all = b.s.ok(&["port", "web1"]);
    for p in 20000..=20004 {
        assert!(all.contains(&format!("{p}/tcp -> 0.0.0.0:{p}")), "{all}");
    }
    b.eventually("web2 by its Docker name", || b.s.berth(&["inspect", "web2"]).status.success());
    let ps = b.s.ok(&["ps"]);
    assert!(ps.contains("web1") && ps.contains("web2"), "{ps}");
    // 127.0.0.1::81: a port berth picked, for the host only.
    let lp = host_port(&loopback);
    assert_eq!(curl(None, &format!("http://127.0.0.1:{lp}/index.html")).as_deref(), Some(HELLO));
    assert_eq!(curl(Some("outside"), &format!("http://10.99.0.1:{lp}/index.html")), None, "a 127.0.0.1 port from another machine");
    // A port of a range, from another machine and from another container (hairpin).
    assert_eq!(curl(Some("outside"), "http://10.99.0.1:20002/index.html").as_deref(), Some(HELLO));
    assert_eq!(get(&b, "web2", "10.99.0.1", 20002).as_deref(), Some(HELLO), "from a container through the host's address");
    // -P: the exposed port on a port berth picked.
    let pp = host_port(&berth_port(&b, "web2", "7000"));
    assert_eq!(curl(Some("outside"), &format!("http://10.99.0.1:{pp}/index.html")).as_deref(), Some(HELLO));
    // A berth policy naming the Docker container.
    b.s.ok(&["policy", "deny", "--from", "10.99.0.2", "--to", "web2:7000"]);
    assert_eq!(curl(Some("outside"), &format!("http://10.99.0.1:{pp}/index.html")), None, "denied by a policy on web2");
    assert_eq!(curl(None, &format!("http://127.0.0.1:{pp}/index.html")).as_deref(), Some(HELLO), "others still reach it");
    // dockerd 20.10 cannot show a plugin's ports (see the README).
    assert_eq!(b.ok(&["port", "web1"]), "");
    assert!(!common::ok("pgrep -x docker-proxy"), "a docker-proxy runs");
    // rm -f takes the ports with it.
    b.ok(&["rm", "-f", "web1"]);
    b.eventually("web1 gone from berth", || !b.s.berth(&["inspect", "web1"]).status.success());
    assert!(!b.s.ok(&["rules"]).contains("20002"), "an element of web1 is left");
    assert_eq!(curl(Some("outside"), "http://10.99.0.1:20002/index.html"), None);
}

#[test]
fn dk_connect_disconnect_options_internal_and_refusals() {
    let Some(b) = DockerBox::new(false) else { return };
    b.s.outside(&[]);
    b.network("dn3", &["--subnet", "10.68.0.0/24"]);
    b.network("dn6", &["--subnet", "10.70.0.0/24", "--ip-range", "10.70.0.128/25"]);
    b.httpd("ca", &["--network", "dn3"], &[80]);
    b.run("cc", &["--network", "dn3"], "true");
    b.run("cd", &["--network", "dn6"], "true");
    assert!(b.ip("cd", "dn6").starts_with("10.70.0.1"), "from the ip-range: {}", b.ip("cd", "dn6"));
    // connect with --ip and --alias: a second interface, the alias resolves.
    b.ok(&["network", "connect", "--ip", "10.70.0.200", "--alias", "cee", "dn6", "ca"]);
    let addrs = String::from_utf8_lossy(&b.exec("ca", "ip -4 -o addr").stdout).into_owned();
    assert!(addrs.contains("eth1") && addrs.contains("10.70.0.200/24"), "{addrs}");
    assert_eq!(get(&b, "cd", "cee", 80).as_deref(), Some(HELLO), "by the alias");
    assert_eq!(get(&b, "cd", "10.70.0.200", 80).as_deref(), Some(HELLO));
    let nets = json(&b.s.ok(&["inspect", "ca"]))[0]["NetworkSettings"]["Networks"].as_object().map(|m| m.len());
    assert_eq!(nets, Some(2));
    // disconnect: gone from dn6, still on dn3.
    b.ok(&["network", "disconnect", "dn6", "ca"]);
    assert_eq!(get(&b, "cd", "10.70.0.200", 80), None);
    assert_eq!(get(&b, "cc", "ca", 80).as_deref(), Some(HELLO));
    // Options: bridge name, MTU, icc off.
    let id5 = b.network("dn5", &["--subnet", "10.71.0.0/24", "-o", "com.docker.network.bridge.name=dkbr5", "-o", "com.docker.network.driver.mtu=1400", "-o", "icc=false"]);
    let n = &json(&b.s.ok(&["network", "inspect", &id5]))[0];
    assert_eq!((n["Berth"]["Bridge"].as_str(), n["Berth"]["MTU"].as_u64(), n["Berth"]["Icc"].as_bool()), (Some("dkbr5"), Some(1400), Some(false)), "{n}");
    b.httpd("ce", &["--network", "dn5"], &[80]);
    b.run("cf", &["--network", "dn5"], "true");
    assert!(String::from_utf8_lossy(&b.exec("cf", "ip link show eth0").stdout).contains("mtu 1400"));
    assert_eq!(get(&b, "cf", &b.ip("ce", "dn5"), 80), None, "icc=false");
    // Internal and dual-stack: addresses of both families, no way out.
    b.network("dn4", &["--internal", "--ipv6", "--subnet", "10.69.0.0/24", "--subnet", "fd00:69::/64"]);
    b.run("ci", &["--network", "dn4"], "true");
    let v6 = String::from_utf8_lossy(&b.exec("ci", "ip -6 -o addr show eth0").stdout).into_owned();
    assert!(v6.contains("fd00:69::"), "{v6}");
    let r = String::from_utf8_lossy(&b.exec("ci", "ip route; ip -6 route; ip link").stdout).into_owned();
    assert!(!r.contains("default"), "internal: no default route\n{r}\n{}", b.ok(&["network", "ls"]));
    assert!(!b.exec("ci", "ping -c1 -W1 10.99.0.2").status.success(), "internal: no way out");
    // Refusals: an overlapping subnet, an unknown option; nothing is made.
    let before = b.s.ok(&["network", "ls"]);
    let e = b.fails(&["network", "create", "-d", "berth", "--ipam-driver", "berth", "--subnet", "10.68.0.128/25", "dover"]);
    assert!(e.contains("overlaps"), "{e}");
    let e = b.fails(&["network", "create", "-d", "berth", "--ipam-driver", "berth", "--subnet", "10.72.0.0/24", "-o", "bogus=1", "dbad"]);
    assert!(e.contains("bogus"), "{e}");
    assert_eq!(b.s.ok(&["network", "ls"]), before);
    // The refused network's pool went back: the subnet can be used.
    b.network("dgood", &["--subnet", "10.72.0.0/24"]);
}

/// berth's accepts in iptables' DOCKER-USER chain.
fn user_chain(b: &DockerBox) -> String {
    let _ = b;
    common::sh("iptables -w -S DOCKER-USER 2>&1")
}

#[test]
fn dk_dockerd_iptables_true_with_docker_user_accept() {
    let Some(mut b) = DockerBox::with_berth_args(true, &["--docker-user-accept"]) else { return };
    b.s.outside(&[]);
    assert!(common::sh("iptables -w -S FORWARD").contains("-P FORWARD DROP"), "dockerd set FORWARD to DROP");
    let id = b.network("dn7", &["--subnet", "10.73.0.0/24"]);
    let bridge = format!("bth-{}", &id[..10]);
    b.eventually("berth's accepts in DOCKER-USER", || user_chain(&b).contains(&format!("-i {bridge} -m comment --comment berth -j ACCEPT")));
    b.httpd("web", &["--network", "dn7", "-p", "8080:80"], &[80]);
    b.run("cli", &["--network", "dn7"], "true");
    assert_eq!(get(&b, "cli", "web", 80).as_deref(), Some(HELLO), "container to container under FORWARD DROP");
    assert_eq!(curl(Some("outside"), "http://10.99.0.1:8080/index.html").as_deref(), Some(HELLO), "from another machine");
    // dockerd restarted: the accepts are still (or again) there, the network works.
    b.stop_dockerd();
    b.start_dockerd();
    b.ok(&["start", "web", "cli"]);
    b.eventually("web serves again", || get(&b, "cli", "web", 80).as_deref() == Some(HELLO));
    assert!(user_chain(&b).contains(&format!("-o {bridge} -m comment --comment berth -j ACCEPT")));
    // The network goes, its accepts go.
    b.ok(&["rm", "-f", "web", "cli"]);
    b.ok(&["network", "rm", "dn7"]);
    b.eventually("the accepts removed", || !user_chain(&b).contains(&bridge));
}

#[test]
fn dk_dockerd_iptables_true_without_docker_user_accept_is_explained() {
    let Some(b) = DockerBox::new(true) else { return };
    b.network("dn8", &["--subnet", "10.74.0.0/24"]);
    b.httpd("web", &["--network", "dn8"], &[80]);
    b.run("cli", &["--network", "dn8"], "true");
    // berth writes only its own table: dockerd's FORWARD DROP wins, and berth says what to do.
    assert_eq!(get(&b, "cli", "web", 80), None);
    assert!(!user_chain(&b).contains("berth"));
    assert!(b.s.daemon_log().contains("--docker-user-accept"), "{}", b.s.daemon_log());
}

#[test]
fn dk_berth_killed_and_dockerd_restarted_under_running_containers() {
    let Some(mut b) = DockerBox::new(false) else { return };
    b.s.outside(&[]);
    b.network("dn9", &["--subnet", "10.75.0.0/24"]);
    b.httpd("web", &["--network", "dn9", "-p", "8080:80"], &[80]);
    b.run("cli", &["--network", "dn9"], "true");
    berth_port(&b, "web", "80");
    // berth killed: the data plane keeps working; restarted: dockerd's later calls work.
    b.s.stop_daemon(true);
    assert_eq!(curl(Some("outside"), "http://10.99.0.1:8080/index.html").as_deref(), Some(HELLO), "while berth is down");
    assert_eq!(get(&b, "cli", "web", 80).as_deref(), Some(HELLO));
    b.s.start_daemon();
    assert_eq!(b.s.ok(&["port", "web", "80"]).trim(), "0.0.0.0:8080");
    b.ok(&["rm", "-f", "cli"]);
    b.eventually("cli gone from berth", || !b.s.berth(&["inspect", "cli"]).status.success());
    b.run("cli2", &["--network", "dn9"], "true");
    assert_eq!(get(&b, "cli2", "web", 80).as_deref(), Some(HELLO));
    // dockerd restarted: containers stop and start again, nothing doubles.
    b.stop_dockerd();
    b.eventually("berth let go of the stopped containers", || b.s.ok(&["ps", "-q"]).trim().is_empty());
    b.start_dockerd();
    b.ok(&["start", "web", "cli2"]);
    b.eventually("web serves again", || get(&b, "cli2", "web", 80).as_deref() == Some(HELLO));
    assert_eq!(curl(Some("outside"), "http://10.99.0.1:8080/index.html").as_deref(), Some(HELLO));
    assert_eq!(b.s.ok(&["ps", "-q"]).lines().count(), 2, "{}", b.s.ok(&["ps"]));
    let nets = b.s.ok(&["network", "ls"]);
    assert_eq!(nets.lines().filter(|l| l.contains("docker-")).count(), 1, "{nets}");
    b.eventually("names learnt again", || b.s.berth(&["inspect", "web"]).status.success());
}

/// Figures, not a timed test (`cargo test --test docker -- --ignored
/// --nocapture`): `docker run` with 1,000 published ports against the
/// same run without ports, and `docker network connect` to a berth
/// network, as dockerd's users see them. No docker-proxy may run.
#[test]
#[ignore]
fn dk_figures_thousand_ports_and_connect() {
    use std::time::Instant;
    let Some(b) = DockerBox::new(false) else { return };
    b.network("dnp", &["--subnet", "10.76.0.0/24"]);
    b.network("dnq", &["--subnet", "10.77.0.0/24"]);
    let t = Instant::now();
    b.run("plain", &["--network", "dnp"], "true");
    let plain = t.elapsed();
    let t = Instant::now();
    b.run("many", &["--network", "dnp", "-p", "20000-20999:20000-20999"], "true");
    let many = t.elapsed();
    b.eventually("many known by name", || b.s.berth(&["inspect", "many"]).status.success());
    assert_eq!(b.s.ok(&["port", "many"]).lines().count(), 1000);
    let procs = common::sh("pgrep -c -x docker-proxy || true");
    assert_eq!(procs.trim(), "0", "docker-proxy processes");
    let mut connects = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        b.ok(&["network", "connect", "dnq", "plain"]);
        connects.push(t.elapsed());
        b.ok(&["network", "disconnect", "dnq", "plain"]);
    }
    connects.sort();
    eprintln!(
        "docker run: {:.0} ms without ports, {:.0} ms with 1,000 ports (0 docker-proxy); docker network connect median {:.1} ms (min {:.1} ms)",
        plain.as_secs_f64() * 1e3,
        many.as_secs_f64() * 1e3,
        connects[5].as_secs_f64() * 1e3,
        connects[0].as_secs_f64() * 1e3
    );
}
