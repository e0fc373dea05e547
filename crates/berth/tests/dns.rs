//! Root tests of the embedded DNS: names, aliases, NAME.NETWORK, PTR,
//! isolation between networks, updates on start/stop/rm, forwarding to fake
//! upstreams (with failover, over TCP, per-container --dns), internal
//! networks, truncation, and malformed packets.

mod common;

use std::io::Read;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;

/// A minimal upstream DNS server in namespace `ns`: answers every query
/// with one A record `answer` (TTL 60), over UDP and TCP, and counts queries.
fn fake_upstream(ns: &str, addr: &str, answer: [u8; 4]) -> Arc<AtomicUsize> {
    sh(&format!(
        "ip netns add {ns} && ip link add v{ns} type veth peer name eth0 netns {ns} && ip link set v{ns} master dnsup up && \
         ip -n {ns} addr add {addr}/24 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up && \
         ip -n {ns} route add default via 10.96.0.1"
    ));
    let count = Arc::new(AtomicUsize::new(0));
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    let (c, a) = (count.clone(), addr.to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: this thread enters the namespace and never leaves it.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let udp = UdpSocket::bind(format!("{a}:53")).unwrap();
        let tcp = std::net::TcpListener::bind(format!("{a}:53")).unwrap();
        tx.send(()).unwrap();
        let c2 = c.clone();
        std::thread::spawn(move || {
            for s in tcp.incoming().flatten() {
                let mut s = s;
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut q).is_err() {
                    continue;
                }
                c2.fetch_add(1, Ordering::SeqCst);
                let r = respond(&q, answer);
                let mut out = (r.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&r);
                let _ = std::io::Write::write_all(&mut s, &out);
            }
        });
        let mut buf = [0u8; 1500];
        loop {
            let (n, peer) = udp.recv_from(&mut buf).unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            let _ = udp.send_to(&respond(&buf[..n], answer), peer);
        }
    });
    rx.recv().unwrap();
    count
}

/// The query with QR/RA set and one A answer pointing at the question name.
fn respond(q: &[u8], ip: [u8; 4]) -> Vec<u8> {
    // Keep header + question only (drop any additional records such as EDNS).
    let mut end = 12;
    while end < q.len() && q[end] != 0 {
        end += q[end] as usize + 1;
    }
    let end = (end + 5).min(q.len());
    let mut r = q[..end].to_vec();
    r[2] |= 0x80;
    r[3] = 0x80;
    r[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    r.extend_from_slice(&ip);
    r
}

/// Sandbox with a link to the fake upstreams' segment (10.96.0.0/24) and a
/// host resolv.conf naming `nameservers` (bind-mounted in this test's
/// private mount namespace).
fn sandbox(nameservers: &[&str]) -> Option<Sandbox> {
    let mut s = Sandbox::bare()?;
    sh("ip link add dnsup type bridge && ip addr add 10.96.0.1/24 dev dnsup && ip link set dnsup up");
    let conf = s.dir.join("host-resolv.conf");
    let text: String = nameservers.iter().map(|n| format!("nameserver {n}\n")).collect::<String>() + "search corp.example\n";
    std::fs::write(&conf, text).unwrap();
    sh(&format!("mount --bind {} /etc/resolv.conf", conf.display()));
    s.start_daemon();
    Some(s)
}

/// `dig` from inside a container (through its resolv.conf): (status, answers).
fn dig(s: &Sandbox, from: &str, args: &str) -> (String, Vec<String>) {
    let o = s.exec(from, &format!("dig +tries=1 +time=3 {args}"));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let status = out.split("status: ").nth(1).and_then(|r| r.split(',').next()).unwrap_or("NONE").to_string();
    let answers = out
        .split(";; ANSWER SECTION:")
        .nth(1)
        .map(|sec| sec.lines().skip(1).take_while(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().last().unwrap_or("").to_string()).collect())
        .unwrap_or_default();
    (status, answers)
}

#[test]
fn names_aliases_network_suffix_and_reverse() {
    let Some(s) = sandbox(&["10.96.0.2"]) else { return };
    s.ok(&["network", "create", "--subnet", "10.55.0.0/24", "app"]);
    s.ok(&["network", "create", "--subnet", "10.56.0.0/24", "other"]);
    s.run("db", &["--network", "app", "--network-alias", "database"], "sleep 1000");
    s.run("web", &["--network", "app", "--link", "db:primary"], "sleep 1000");
    s.run("lonely", &["--network", "other"], "sleep 1000");
    let db = s.ip("db", "app");
    let resolv = String::from_utf8_lossy(&s.exec("web", "cat /etc/resolv.conf").stdout).into_owned();
    assert!(resolv.starts_with("nameserver 10.55.0.1\n") && resolv.contains("search corp.example"), "{resolv}");
    assert_eq!(dig(&s, "web", "db"), ("NOERROR".into(), vec![db.clone()]));
    assert_eq!(dig(&s, "web", "DB.app.").1, vec![db.clone()], "NAME.NETWORK, any case");
    assert_eq!(dig(&s, "web", "database").1, vec![db.clone()], "--network-alias");
    assert_eq!(dig(&s, "web", "primary").1, vec![db.clone()], "a link's alias");
    assert_eq!(dig(&s, "web", &format!("-x {db}")).1, vec!["db.app.".to_string()], "PTR");
    assert_eq!(dig(&s, "web", "db AAAA"), ("NOERROR".into(), vec![]), "no IPv6 records, and not forwarded");
    // Isolation: names on a network the asker is not on do not exist for it.
    assert_eq!(dig(&s, "web", "lonely").0, "NXDOMAIN");
    assert_eq!(dig(&s, "web", "lonely.other").0, "NXDOMAIN");
    assert_eq!(dig(&s, "lonely", "db").0, "NXDOMAIN");
    assert_eq!(dig(&s, "lonely", &format!("-x {db}")).0, "NXDOMAIN");
    // connect --alias: the alias exists on that network only.
    s.ok(&["network", "connect", "--alias", "api", "other", "web"]);
    let web_other = s.ip("web", "other");
    assert_eq!(dig(&s, "lonely", "api").1, vec![web_other.clone()]);
    assert_eq!(dig(&s, "lonely", "web").1, vec![web_other]);
    assert_eq!(dig(&s, "db", "api").0, "NXDOMAIN", "api is an alias on 'other' only");
    // The default network has no names, as in Docker.
    s.run("plain", &[], "sleep 1000");
    let resolv = String::from_utf8_lossy(&s.exec("plain", "cat /etc/resolv.conf").stdout).into_owned();
    assert!(resolv.contains("nameserver 10.96.0.2"), "{resolv}");
}

/// The resolvers answer only their networks' containers. A machine that
/// routes a network's subnet through the host (any LAN neighbour can), the
/// host itself and a container of another network get no answer at all,
/// over UDP or TCP, for names, reverse names or forwarded names, and
/// nothing reaches the upstream for them; even with berth's table flushed.
#[test]
fn resolver_answers_only_its_containers() {
    let Some(s) = sandbox(&["10.96.0.2"]) else { return };
    let up = fake_upstream("up5", "10.96.0.2", [203, 0, 113, 2]);
    s.ok(&["network", "create", "--subnet", "10.77.0.0/24", "app"]);
    s.ok(&["network", "create", "--subnet", "10.78.0.0/24", "other"]);
    s.run("svc1", &["--network", "app"], "sleep 1000");
    s.run("nosy", &["--network", "other"], "sleep 1000");
    s.outside(&["10.77.0.0/24"]);
    let ip = s.ip("svc1", "app");
    assert_eq!(dig(&s, "svc1", "svc1").1, vec![ip.clone()], "a container of the network is answered");
    assert_eq!(dig(&s, "svc1", "example.test").1, vec!["203.0.113.2".to_string()]);
    let asked = up.load(Ordering::SeqCst);
    let queries = ["svc1".to_string(), format!("-x {ip}"), "example.test".to_string()];
    let silent = |prefix: &str, who: &str| {
        for q in &queries {
            for tcp in ["", "+tcp "] {
                let o = sh_out(&format!("{prefix}dig +tries=1 +time=1 @10.77.0.1 {tcp}{q}"));
                let out = String::from_utf8_lossy(&o.stdout);
                assert!(!o.status.success() && !out.contains("status:"), "{who} got an answer to {tcp}{q}: {out}");
            }
        }
    };
    silent("ip netns exec outside ", "a machine outside");
    silent("", "the host");
    let nosy = s.pid_of("nosy");
    silent(&format!("nsenter -t {nosy} -n "), "a container of another network");
    sh("nft flush ruleset");
    silent("ip netns exec outside ", "a machine outside, without berth's table");
    assert_eq!(up.load(Ordering::SeqCst), asked, "nothing was forwarded for them");
    s.ok(&["reconcile"]);
    assert_eq!(dig(&s, "svc1", "svc1").1, vec![ip], "still answering its containers");
}

/// IPv6 names: AAAA records beside the A ones (names, aliases,
/// NAME.NETWORK), ip6.arpa PTR answers, a resolver on the IPv6 gateway
/// too (UDP and TCP), an IPv6-only network with its resolver on its IPv6
/// gateway alone, and over IPv6 as over IPv4 it answers only containers.
#[test]
fn ipv6_names_and_resolvers() {
    let Some(s) = sandbox(&["10.96.0.2"]) else { return };
    s.ok(&["network", "create", "--ipv6", "--subnet", "10.58.0.0/24", "--subnet", "fd00:58::/64", "ds"]);
    s.ok(&["network", "create", "--ipv6", "--ipv4=false", "--subnet", "fd00:59::/64", "only6"]);
    s.run("db", &["--network", "ds", "--network-alias", "database"], "sleep 1000");
    s.run("web", &["--network", "ds"], "sleep 1000");
    s.run("v6a", &["--network", "only6"], "sleep 1000");
    s.run("v6b", &["--network", "only6"], "sleep 1000");
    let (db4, db6) = (s.ip("db", "ds"), s.ip6("db", "ds"));
    let resolv = String::from_utf8_lossy(&s.exec("web", "cat /etc/resolv.conf").stdout).into_owned();
    assert!(resolv.starts_with("nameserver 10.58.0.1\nnameserver fd00:58::1\n"), "{resolv}");
    assert_eq!(dig(&s, "web", "db"), ("NOERROR".into(), vec![db4.clone()]));
    assert_eq!(dig(&s, "web", "-t AAAA db"), ("NOERROR".into(), vec![db6.clone()]));
    assert_eq!(dig(&s, "web", "-t AAAA database").1, vec![db6.clone()], "alias");
    assert_eq!(dig(&s, "web", "-t AAAA db.ds").1, vec![db6.clone()], "NAME.NETWORK");
    assert_eq!(dig(&s, "web", &format!("-x {db6}")).1, vec!["db.ds.".to_string()], "ip6.arpa");
    for server in ["@fd00:58::1", "+tcp @fd00:58::1"] {
        assert_eq!(dig(&s, "web", &format!("{server} -t AAAA db")).1, vec![db6.clone()], "asked over IPv6 ({server})");
    }
    // IPv6 only: the resolver sits on the IPv6 gateway, A queries have no data.
    let resolv = String::from_utf8_lossy(&s.exec("v6a", "cat /etc/resolv.conf").stdout).into_owned();
    assert!(resolv.starts_with("nameserver fd00:59::1\n") && !resolv.contains("10."), "{resolv}");
    assert_eq!(dig(&s, "v6a", "-t AAAA v6b").1, vec![s.ip6("v6b", "only6")]);
    assert_eq!(dig(&s, "v6a", "v6b"), ("NOERROR".into(), vec![]), "no IPv4 address: NODATA");
    assert_eq!(dig(&s, "v6a", "-t AAAA db").0, "NXDOMAIN", "names of other networks stay hidden");
    // From outside, over IPv6: nothing.
    s.outside(&["fd00:58::/64"]);
    for q in ["-t AAAA db", "+tcp -t AAAA db", &format!("-x {db6}")] {
        let o = sh_out(&format!("ip netns exec outside dig +tries=1 +time=1 @fd00:58::1 {q}"));
        assert!(!o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("status:"), "a machine outside got an answer to {q}");
    }
}

#[test]
fn changes_are_seen_at_once() {
    let Some(s) = sandbox(&["10.96.0.2"]) else { return };
    let up = fake_upstream("up1", "10.96.0.2", [203, 0, 113, 2]);
    s.ok(&["network", "create", "app"]);
    s.run("asker", &["--network", "app"], "sleep 1000");
    s.run("new", &["--network", "app"], "sleep 1000");
    assert_eq!(dig(&s, "asker", "new").1, vec![s.ip("new", "app")], "resolvable when run -d returns");
    s.ok(&["stop", "-t", "1", "new"]);
    assert_eq!(dig(&s, "asker", "new").0, "NXDOMAIN", "a stopped container has no address");
    s.ok(&["start", "new"]);
    assert_eq!(dig(&s, "asker", "new").1, vec![s.ip("new", "app")]);
    s.ok(&["rm", "-f", "new"]);
    let before = up.load(Ordering::SeqCst);
    let (status, _) = dig(&s, "asker", "new");
    assert!(status == "NOERROR" || status == "NXDOMAIN");
    assert_eq!(dig(&s, "asker", "new").1, vec!["203.0.113.2".to_string()], "gone: now a foreign name, forwarded");
    assert!(up.load(Ordering::SeqCst) > before);
}

#[test]
fn forwarding_failover_tcp_and_per_container_dns() {
    // The first upstream does not exist: the resolver must fail over.
    let Some(s) = sandbox(&["10.96.0.9", "10.96.0.2"]) else { return };
    let up2 = fake_upstream("up2", "10.96.0.2", [203, 0, 113, 2]);
    let up3 = fake_upstream("up3", "10.96.0.3", [203, 0, 113, 3]);
    s.ok(&["network", "create", "app"]);
    s.run("c", &["--network", "app"], "sleep 1000");
    s.run("custom", &["--network", "app", "--dns", "10.96.0.3"], "sleep 1000");
    let t = std::time::Instant::now();
    assert_eq!(dig(&s, "c", "example.test").1, vec!["203.0.113.2".to_string()], "failover to the second upstream");
    assert!(t.elapsed() < std::time::Duration::from_secs(3), "bounded timeout per upstream");
    assert_eq!(dig(&s, "c", "+tcp example.test").1, vec!["203.0.113.2".to_string()], "TCP query, forwarded over TCP");
    assert_eq!(dig(&s, "c", "+tcp c").1, vec![s.ip("c", "app")], "TCP query, local name");
    assert_eq!(dig(&s, "custom", "example.test").1, vec!["203.0.113.3".to_string()], "--dns overrides the host's servers");
    assert!(up2.load(Ordering::SeqCst) >= 2 && up3.load(Ordering::SeqCst) >= 1);
    // Host resolv.conf changes are picked up.
    std::fs::write(s.dir.join("host-resolv.conf"), "nameserver 10.96.0.3\n").unwrap();
    assert_eq!(dig(&s, "c", "example.test").1, vec!["203.0.113.3".to_string()]);
}

#[test]
fn internal_network_forwards_nothing() {
    let Some(s) = sandbox(&["10.96.0.2"]) else { return };
    let up = fake_upstream("up4", "10.96.0.2", [203, 0, 113, 2]);
    s.ok(&["network", "create", "--internal", "secret"]);
    s.run("a", &["--network", "secret"], "sleep 1000");
    s.run("b", &["--network", "secret"], "sleep 1000");
    assert_eq!(dig(&s, "a", "b").1, vec![s.ip("b", "secret")], "names still resolve inside");
    assert_eq!(dig(&s, "a", "example.test").0, "REFUSED");
    assert_eq!(up.load(Ordering::SeqCst), 0, "nothing reached the upstream");
}

#[test]
fn large_answers_truncate_to_tcp_and_garbage_does_not_hurt() {
    let Some(s) = sandbox(&["10.96.0.2"]) else { return };
    s.ok(&["network", "create", "--subnet", "10.57.0.0/24", "many"]);
    s.run("asker", &["--network", "many"], "sleep 1000");
    for i in 0..40 {
        let p = netns(&format!("m{i}"));
        s.ok(&["attach", "--netns", &p, "--name", &format!("m{i}"), "--network", "many"]);
        s.ok(&["network", "disconnect", "many", &format!("m{i}")]);
        s.ok(&["network", "connect", "--alias", "pool", "many", &format!("m{i}")]);
    }
    let o = s.exec("asker", "dig +tries=1 +time=3 +ignore +noedns pool");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains(" tc"), "a 40-address answer does not fit 512 bytes: truncated\n{out}");
    let (status, answers) = dig(&s, "asker", "+noedns pool");
    assert_eq!((status.as_str(), answers.len()), ("NOERROR", 40), "dig retries over TCP and gets all 40");
    // Garbage of every size, short headers, responses, a query with no question.
    let garbage = "for i in $(seq 200); do head -c $((i * 7 % 600 + 1)) /dev/urandom | socat -u - UDP:10.57.0.1:53; done; \
                   printf '\\x12\\x34' | socat -u - UDP:10.57.0.1:53; \
                   printf '\\x12\\x34\\x81\\x80\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00' | socat -u - UDP:10.57.0.1:53; \
                   printf '\\x12\\x34\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00' | socat -u - UDP:10.57.0.1:53; \
                   head -c 3000 /dev/urandom | socat -u - TCP:10.57.0.1:53,connect-timeout=1; true";
    s.exec("asker", garbage);
    assert_eq!(dig(&s, "asker", "asker").1, vec![s.ip("asker", "many")], "still answering after garbage");
    assert!(s.ok(&["info"]).contains("Server Version"), "daemon alive");
}
