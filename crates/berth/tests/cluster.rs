//! Networks that span hosts: several hosts (network namespaces on a LAN
//! bridge, each with its own daemon) and a real etcd, all inside the
//! test's sandbox (see `cluster_support`). Overlay networks: reachability
//! and names across hosts, icc, links, policies, isolation, internal,
//! outbound NAT and published ports; the control plane: 100 starts at
//! once, a host gone, etcd gone and back, a compacted watch, a daemon
//! killed mid-operation. Macvlan networks shared by the hosts.

mod cluster_support;
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_support::{in_host, Cluster, Opts, LAN};
use common::{sh, udp_ask, Bg, Proto};

/// An overlay made on host 0 and seen by every host.
fn overlay(c: &Cluster, name: &str, args: &[&str]) -> String {
    let mut a = vec!["network", "create", "-d", "overlay"];
    a.extend_from_slice(args);
    a.push(name);
    let id = c.h(0).ok(&a).trim().to_string();
    c.eventually(&format!("every host has overlay {name}"), |c| c.hosts.iter().all(|h| h.berth(&["network", "inspect", name]).status.success()));
    id
}

#[test]
fn overlay_spans_hosts_by_address_and_name() {
    let Some(c) = Cluster::new(3) else { return };
    overlay(&c, "ov", &["--subnet", "10.200.0.0/16"]);
    let ls = c.h(1).ok(&["network", "ls"]);
    assert!(ls.lines().any(|l| l.contains("ov") && l.contains("overlay") && l.contains("global")), "{ls}");
    c.h(1).server("web", &["--network", "ov", "--network-alias", "www"], 80);
    c.h(2).udp_server("echo", &["--network", "ov"], 5300, "udp-from-echo");
    c.h(0).run("cli", &["--network", "ov"], "sleep 100000");
    let web = c.h(1).addr("web", "ov");
    let echo = c.h(2).addr("echo", "ov");
    // Each host's containers are in its own block.
    let blocks = |i: usize| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&c.h(i).ok(&["network", "inspect", "ov"])).unwrap();
        v[0]["Berth"]["HostBlocks"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_string()).collect()
    };
    let (b0, b1, b2) = (blocks(0), blocks(1), blocks(2));
    assert!(b0.len() == 1 && b1.len() == 1 && b2.len() == 1 && b0 != b1 && b1 != b2 && b0 != b2, "{b0:?} {b1:?} {b2:?}");
    let inside = |ip: &str, b: &str| b.parse::<ipnet::IpNet>().unwrap().contains(&ip.parse::<std::net::IpAddr>().unwrap());
    assert!(inside(&web, &b1[0]) && inside(&echo, &b2[0]), "web {web} in {b1:?}, echo {echo} in {b2:?}");
    // TCP by address and by every name; ICMP; UDP.
    c.eventually("cli resolves web", |c| c.h(0).dig("cli", "web") == vec![web.clone()]);
    for target in [web.as_str(), "web", "web.ov", "www"] {
        assert_eq!(c.h(0).tcp_from("cli", target, 80).as_deref(), Some("ok-from-web"), "cli → {target}");
    }
    assert!(c.h(0).ping_from("cli", &web) && c.h(0).ping_from("cli", "echo"));
    let cli_ns = format!("/proc/{}/ns/net", c.h(0).pid_of("cli"));
    assert_eq!(udp_ask(Some(&cli_ns), &format!("{echo}:5300"), None).as_deref(), Some("udp-from-echo"));
    // PTR of a container on another host; the asker's own host answers.
    assert_eq!(c.h(0).dig("cli", &format!("-x {web}")), vec!["web.ov.".to_string()]);
    // The MTU leaves room for VXLAN: the LAN's 1500 less 50.
    // (netlink, not /sys: a container's /sys is its host namespace's.)
    let link = String::from_utf8_lossy(&c.h(0).exec("cli", "ip -o link show eth0").stdout).to_string();
    assert!(link.contains(" mtu 1450 "), "{link}");
    // Kernel state grows with hosts: one route per other host's block.
    assert_eq!(c.h(0).tunnel_routes().len(), 2, "{:?}", c.h(0).tunnel_routes());
    // Any host refuses to remove it while a host has endpoints on it.
    let e = c.h(2).fails(&["network", "rm", "ov"]);
    assert!(e.contains("active endpoints") && e.contains("host-1") && e.contains("host-0"), "{e}");
    let nodes = c.h(1).ok(&["node", "ls"]);
    assert_eq!(nodes.lines().filter(|l| l.contains("alive")).count(), 3, "{nodes}");
    // Once every container is gone it can be removed from any host, and is gone from all.
    for (i, n) in [(1, "web"), (2, "echo"), (0, "cli")] {
        c.h(i).ok(&["rm", "-f", n]);
    }
    c.eventually("no endpoints left in the store", |c| c.etcd_keys("/berth/v1/endpoints/").is_empty());
    c.h(2).ok(&["network", "rm", "ov"]);
    c.eventually("ov gone everywhere", |c| c.hosts.iter().all(|h| !h.ok(&["network", "ls"]).contains(" ov ")));
    assert!(c.etcd_keys("/berth/v1/blocks/").is_empty() && c.etcd_keys("/berth/v1/vnis/").is_empty());
    assert!(!sh("ip -n h0 link show").contains("btx-"), "the tunnel device went with the network");
}

#[test]
fn icc_links_policies_and_isolation_across_hosts() {
    let Some(c) = Cluster::new(3) else { return };
    overlay(&c, "quiet", &["--subnet", "10.201.0.0/16", "-o", "icc=false"]);
    overlay(&c, "other", &["--subnet", "10.202.0.0/16"]);
    c.h(1).server("web", &["--network", "quiet", "--expose", "80"], 80);
    c.h(1).server("side", &["--network", "quiet"], 81);
    c.h(0).run("plain", &["--network", "quiet"], "sleep 100000");
    c.eventually("web announced", |c| c.etcd_keys("/berth/v1/endpoints/").len() == 3);
    c.h(2).run("linked", &["--network", "quiet", "--link", "web:db"], "sleep 100000");
    c.h(2).run("stranger", &["--network", "other"], "sleep 100000");
    let web = c.h(1).addr("web", "quiet");
    // icc=false holds for traffic from other hosts.
    assert_eq!(c.h(0).tcp_from("plain", &web, 80), None, "icc=false across hosts");
    assert!(!c.h(0).ping_from("plain", &web));
    // A link to a container on another host opens its exposed port only.
    assert_eq!(c.h(2).tcp_from("linked", "db", 80).as_deref(), Some("ok-from-web"), "--link web:db across hosts");
    assert_eq!(c.h(2).tcp_from("linked", &c.h(1).addr("side", "quiet"), 81), None, "a link opens only the target's exposed ports");
    // Another overlay is another world: no route through, no name.
    assert_eq!(c.h(2).tcp_from("stranger", &web, 80), None, "overlays are isolated");
    assert!(c.h(2).dig("stranger", "web").is_empty());
    // A policy made on host 0 holds on host 1, where its target runs.
    let linked = c.h(2).addr("linked", "quiet");
    c.h(0).ok(&["policy", "deny", "--from", &format!("{linked}/32"), "--to", "web:80/tcp"]);
    assert!(c.h(1).ok(&["policy", "ls"]).contains("global"));
    c.eventually("the deny policy reaches web's host", |c| c.h(2).tcp_from("linked", "db", 80).is_none());
    let id = c.h(1).ok(&["policy", "ls"]).lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    c.h(2).ok(&["policy", "rm", &id]);
    c.eventually("the policy's removal reaches web's host", |c| c.h(2).tcp_from("linked", "db", 80).is_some());
}

#[test]
fn internal_overlay_outbound_nat_and_published_ports() {
    let Some(c) = Cluster::new(2) else { return };
    overlay(&c, "back", &["--subnet", "10.203.0.0/16", "--internal"]);
    overlay(&c, "front", &["--subnet", "10.204.0.0/16"]);
    // A machine on the LAN that answers with the address it sees.
    let echo = Bg::spawn(&format!("socat TCP4-LISTEN:7000,bind={LAN},fork,reuseaddr SYSTEM:'echo $SOCAT_PEERADDR'"));
    echo.wait_listening(Proto::Tcp, 7000);
    c.h(1).server("db", &["--network", "back"], 5432);
    c.h(0).run("app", &["--network", "back"], "sleep 100000");
    c.h(0).run("out", &["--network", "front"], "sleep 100000");
    c.h(1).server("web", &["--network", "front", "-p", "8080:80"], 80);
    // Internal: across hosts yes, out no.
    assert_eq!(c.h(0).tcp_from("app", &c.h(1).addr("db", "back"), 5432).as_deref(), Some("ok-from-db"));
    assert_eq!(c.h(0).tcp_from("app", LAN, 7000), None, "an internal overlay has no way out");
    // Out through its own host, masqueraded to that host's address.
    assert_eq!(c.h(0).tcp_from("out", LAN, 7000).as_deref(), Some("10.90.0.1"));
    // A published port on an overlay container, from the LAN and from another host's container.
    let from_lan = sh("socat -t5 -T5 - TCP:10.90.0.2:8080,connect-timeout=2 </dev/null");
    assert_eq!(from_lan.trim(), "ok-from-web");
    assert_eq!(c.h(0).tcp_from("out", "10.90.0.2", 8080).as_deref(), Some("ok-from-web"));
    // VXLAN from a machine that is not a cluster host is dropped.
    let rules = String::from_utf8_lossy(&in_host(1, "nft list set inet berth vtep_peers4").stdout).to_string();
    assert!(rules.contains("10.90.0.1 . 4789") && !rules.contains("10.90.0.2 ."), "{rules}");
}

#[test]
fn hundred_containers_at_once_get_distinct_addresses() {
    let Some(c) = Cluster::new(3) else { return };
    // Small blocks, so hosts lease more while the containers start.
    overlay(&c, "many", &["--subnet", "10.205.0.0/16", "-o", "host_block=27"]);
    std::thread::scope(|s| {
        for t in 0..10 {
            let c = &c;
            s.spawn(move || {
                for k in 0..10 {
                    let n = t * 10 + k;
                    c.h(n % 3).ok(&["run", "-d", "--name", &format!("m{n}"), "--network", "many", "--", "sleep", "100000"]);
                }
            });
        }
    });
    let mut seen = BTreeSet::new();
    for n in 0..100 {
        let ip = c.h(n % 3).addr(&format!("m{n}"), "many");
        assert!(seen.insert(ip.clone()), "{ip} given twice");
    }
    c.eventually("all 100 announced", |c| c.etcd_keys("/berth/v1/endpoints/").len() == 100);
    // Every host's blocks are its own, and its containers are in them.
    let blocks = c.etcd_keys("/berth/v1/blocks/");
    assert!(blocks.len() >= 3, "{blocks:?}");
    // Names of containers on other hosts resolve.
    c.eventually("m1 (host 1) resolves from host 0", |c| c.h(0).dig("m0", "m1") == vec![c.h(1).addr("m1", "many")]);
    c.eventually("m99 (host 0) resolves from host 2", |c| c.h(2).dig("m2", "m99") == vec![c.h(0).addr("m99", "many")]);
}

#[test]
fn a_host_gone_others_converge_within_the_ttl() {
    let Some(mut c) = Cluster::with(Opts { hosts: 3, ttl: 3, grace: 8, extra: vec![] }) else { return };
    overlay(&c, "ov", &["--subnet", "10.206.0.0/16"]);
    c.h(0).run("a", &["--network", "ov"], "sleep 100000");
    c.h(2).server("gone", &["--network", "ov"], 80);
    c.eventually("gone resolves on host 0", |c| !c.h(0).dig("a", "gone").is_empty());
    assert_eq!(c.h(0).tunnel_routes().len(), 2);
    // The whole host: daemon killed, namespace (and its containers) deleted.
    let pid = c.h(2).daemon_pid();
    sh(&format!("kill -9 {pid}; ip netns pids h2 | xargs -r kill -9; ip netns del h2"));
    // Its tunnel entries go within the TTL of its last keep-alive, plus
    // etcd's expiry tick (0.5 s) and the watch and kernel's share (measured
    // 2.4-3.9 s on a loaded 2-core CI machine with a 3 s TTL).
    let limit = Duration::from_millis(c.ttl * 1000 + 2000);
    let took = c.within(limit, "host 0 drops host 2's routes", |c| c.h(0).tunnel_routes().len() == 1);
    eprintln!("host 2 gone: host 0 dropped its routes {took:?} later (ttl {} s)", c.ttl);
    // While its grace runs (8 s from its last keep-alive, 5 s after the
    // liveness lease's) it is listed as down and its blocks are kept; after
    // it, it is forgotten, so these come before anything slow.
    // Each host hears of it on its own watch: host 1 within moments of host 0.
    let down = |c: &Cluster| c.h(1).ok(&["node", "ls"]).lines().any(|l| l.starts_with("host-2") && l.contains("down"));
    c.within(Duration::from_secs(2), "host 1 lists host-2 as down", down);
    assert!(c.etcd_keys("/berth/v1/blocks/").len() == 3, "blocks kept during the grace");
    // Its names go with its routes (a lookup of a name nobody has is
    // forwarded upstream, which takes dig a moment to see fail).
    c.eventually("host 0 drops host 2's names", |c| c.h(0).dig("a", "gone").is_empty());
    // Its blocks wait out the grace, then go back to the pool.
    c.within(Duration::from_secs(12), "host 2's block freed after the grace", |c| c.etcd_keys("/berth/v1/blocks/").len() == 2);
    // Host 1 comes back after a restart within the grace with its block.
    let before = c.etcd_keys("/berth/v1/blocks/");
    c.hosts[1].stop_daemon(true);
    c.hosts[1].start_daemon();
    c.eventually("host 1 back", |c| c.h(1).connected());
    assert_eq!(c.etcd_keys("/berth/v1/blocks/"), before, "a host that returns keeps its blocks");
    // The old daemon's record of host 2 stays stopped: a new host 2 with its root comes back as itself.
    c.hosts[2].stop_daemon(true);
    let o = Opts { hosts: 3, ttl: 3, grace: 5, extra: vec![] };
    c.add_host(2, &o);
    c.hosts[2].start_daemon();
    c.eventually("host 2 alive again", |c| c.h(1).ok(&["node", "ls"]).lines().any(|l| l.starts_with("host-2") && l.contains("alive")));
}

#[test]
fn etcd_down_data_plane_and_local_starts_keep_working() {
    let Some(mut c) = Cluster::new(2) else { return };
    overlay(&c, "ov", &["--subnet", "10.207.0.0/16"]);
    c.h(1).server("web", &["--network", "ov"], 80);
    c.h(0).run("cli", &["--network", "ov"], "sleep 100000");
    c.eventually("web resolves", |c| !c.h(0).dig("cli", "web").is_empty());
    c.stop_etcd();
    c.eventually("both daemons see the store gone", |c| c.hosts.iter().all(|h| !h.connected()));
    // Running containers keep talking, by address and by name.
    assert_eq!(c.h(0).tcp_from("cli", "web", 80).as_deref(), Some("ok-from-web"));
    // A host starts a container from its own block.
    c.h(1).server("late", &["--network", "ov"], 80);
    let late = c.h(1).addr("late", "ov");
    assert_eq!(c.h(0).tcp_from("cli", &late, 80).as_deref(), Some("ok-from-late"), "routes to a host's block need no store");
    // What needs the store says which one and why.
    let e = c.h(0).fails(&["network", "create", "-d", "overlay", "x"]);
    assert!(e.contains(&format!("etcd://{}", cluster_support::ETCD)), "{e}");
    // etcd back: the container started meanwhile is announced.
    c.start_etcd();
    c.eventually("late resolves on host 0 once etcd is back", |c| c.h(0).dig("cli", "late") == vec![late.clone()]);
    assert!(c.hosts.iter().all(|h| h.connected()));
}

#[test]
fn a_compacted_watch_is_listed_again() {
    let Some(c) = Cluster::new(2) else { return };
    overlay(&c, "ov", &["--subnet", "10.208.0.0/16"]);
    c.h(1).run("watcher", &["--network", "ov"], "sleep 100000");
    c.h(0).run("old", &["--network", "ov"], "sleep 100000");
    c.eventually("old resolves on host 1", |c| !c.h(1).dig("watcher", "old").is_empty());
    c.cut_off(1, true);
    c.eventually("host 1 cut off", |c| !c.h(1).connected());
    c.h(0).ok(&["rm", "-f", "old"]);
    c.h(0).run("new", &["--network", "ov"], "sleep 100000");
    c.eventually("new announced", |c| c.etcd_keys("/berth/v1/endpoints/").iter().filter(|k| k.contains("/host-0/")).count() == 1);
    c.etcdctl(&["compact", &c.revision().to_string()]);
    c.cut_off(1, false);
    c.eventually("host 1 lists again and converges", |c| c.h(1).dig("watcher", "new").len() == 1 && c.h(1).dig("watcher", "old").is_empty());
    assert!(c.h(1).daemon_log().contains("compacted away"), "{}", c.h(1).daemon_log());
}

#[test]
fn a_daemon_killed_mid_operation_converges() {
    let Some(mut c) = Cluster::new(2) else { return };
    overlay(&c, "ov", &["--subnet", "10.209.0.0/16"]);
    c.h(1).run("peer", &["--network", "ov"], "sleep 100000");
    // Starts and removals in flight when the daemon is killed.
    std::thread::scope(|s| {
        let c = &c;
        s.spawn(move || {
            for n in 0..12 {
                let _ = c.h(0).berth(&["run", "-d", "--name", &format!("k{n}"), "--network", "ov", "--", "sleep", "100000"]);
                if n % 3 == 2 {
                    let _ = c.h(0).berth(&["rm", "-f", &format!("k{}", n - 1)]);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: signalling the daemon this test started.
        unsafe { libc::kill(c.h(0).daemon_pid() as i32, libc::SIGKILL) };
    });
    c.hosts[0].stop_daemon(true);
    c.hosts[0].start_daemon();
    c.h(0).ok(&["reconcile"]);
    // The store announces exactly what runs on host 0, at the addresses it has.
    let running: BTreeSet<String> = c.h(0).ok(&["ps", "-q"]).split_whitespace().map(str::to_string).collect();
    c.eventually("host 0's endpoints in the store are its running containers", |c| {
        let keys = c.etcd_keys("/berth/v1/endpoints/");
        keys.iter().filter(|k| k.contains("/host-0/")).count() == running.len()
    });
    for id in &running {
        let name = c.h(0).inspect(id)["Name"].as_str().unwrap().trim_start_matches('/').to_string();
        let ip = c.h(0).addr(&name, "ov");
        c.eventually(&format!("{name} resolves on host 1"), |c| c.h(1).dig("peer", &name) == vec![ip.clone()]);
        assert!(c.h(1).ping_from("peer", &ip), "{name} at {ip} answers from host 1");
    }
}

#[test]
fn macvlan_shared_by_hosts_gets_a_slice_each() {
    let Some(c) = Cluster::new(3) else { return };
    // A second LAN, on interface m0 of hosts 0 and 1 only; its router is the sandbox.
    sh("ip link add mvlan type bridge && ip addr add 10.95.0.254/24 dev mvlan && ip link set mvlan up");
    for i in 0..2 {
        sh(&format!("ip link add mvh{i} type veth peer name m0 netns h{i} && ip link set mvh{i} master mvlan up && ip -n h{i} link set m0 up"));
    }
    c.h(0).ok(&["network", "create", "-d", "macvlan", "-o", "parent=m0", "--subnet", "10.95.0.0/24", "--gateway", "10.95.0.254", "--ip-range", "10.95.0.0/25", "mv"]);
    c.eventually("host 1 has mv", |c| c.h(1).berth(&["network", "inspect", "mv"]).status.success());
    assert!(c.h(1).ok(&["network", "ls"]).lines().any(|l| l.contains("macvlan") && l.contains("global") && l.contains("m0")));
    c.h(0).server("m-a", &["--network", "mv"], 80);
    c.h(1).run("m-b", &["--network", "mv"], "sleep 100000");
    let (a, b) = (c.h(0).addr("m-a", "mv"), c.h(1).addr("m-b", "mv"));
    // Each host hands out addresses from its own slice of the range.
    let slice = |ip: &str| ip.rsplit('.').next().unwrap().parse::<u8>().unwrap() / 8;
    assert_ne!(slice(&a), slice(&b), "{a} and {b} come from different hosts' slices");
    assert!(a.parse::<std::net::Ipv4Addr>().unwrap().octets()[3] < 128, "inside --ip-range");
    // Flat L2: straight across the LAN, no tunnel, no NAT.
    assert_eq!(c.h(1).tcp_from("m-b", &a, 80).as_deref(), Some("ok-from-m-a"));
    assert!(sh_ok(&format!("ping -c1 -W1 {a}")), "the LAN's router reaches a macvlan container");
    // A host without the parent refuses, saying so.
    let e = c.h(2).fails(&["run", "-d", "--name", "nope", "--network", "mv", "--", "sleep", "1"]);
    assert!(e.contains("parent interface m0 does not exist on this host"), "{e}");
    assert!(!c.h(2).ok(&["ps", "-a"]).contains("nope"), "a refused run leaves no container behind");
    assert!(c.etcd_keys("/berth/v1/endpoints/").iter().all(|k| !k.contains("/host-2/")));
}

fn sh_ok(cmd: &str) -> bool {
    common::ok(cmd)
}
