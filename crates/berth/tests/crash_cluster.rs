//! The crash suite's cluster mode: the same idea as `crash.rs` (a seeded
//! random workload, the daemon killed by SIGKILL in the middle of
//! operations, checks after every restart) on two hosts sharing an
//! overlay network through a real etcd (see `cluster_support`). Host 0
//! runs the workload and is killed; host 1 watches. After every restart,
//! once the cluster has settled (bounded): the store announces exactly
//! host 0's running endpoints at the addresses they hold, every address
//! lies in a block host 0 holds in the store (and in no other host's),
//! no address is held twice across the hosts, host 1 resolves every one
//! of host 0's running containers to its address and reaches it, host 1
//! routes every one of host 0's blocks to it, and `berth reconcile` on
//! host 0 finds nothing to change.
//!
//! BERTH_CRASH_SEED replays a run; BERTH_CRASH_CLUSTER_OPS /
//! BERTH_CRASH_CLUSTER_KILLS size it.

mod cluster_support;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use cluster_support::Cluster;
use common::Rng;

fn env_num(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

const SERVER: &str = "exec socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:'echo ok'";

/// One random operation on host 0, as berth CLI arguments.
fn random_op(r: &mut Rng) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let c = format!("c{}", r.below(12));
    match r.below(100) {
        0..=44 => {
            let mut v = s(&["run", "-d", "--name", &c, "--network", "ov", "--expose", "80"]);
            if r.below(3) == 0 {
                v.extend(s(&["-p", &format!("{}:80", 20000 + r.below(20))]));
            }
            if r.below(4) == 0 {
                v.extend(s(&["--network-alias", &format!("alias{}", r.below(4))]));
            }
            v.extend(s(&["--", "sh", "-c", SERVER]));
            v
        }
        45..=64 => s(&["rm", "-f", &c]),
        65..=74 => s(&["stop", "-t", "1", &c]),
        75..=84 => s(&["start", &c]),
        85..=89 => s(&["network", "disconnect", "ov", &c]),
        90..=94 => s(&["network", "connect", "ov", &c]),
        _ => s(&["policy", "deny", "--from", &format!("10.123.{}.0/24", r.below(4)), "--to", &format!("{c}:80")]),
    }
}

/// Host 0's containers with an address on the overlay: name → address.
fn overlay_endpoints(c: &Cluster) -> BTreeMap<String, IpAddr> {
    let ids = c.h(0).ok(&["ps", "-q"]);
    let mut out = BTreeMap::new();
    for id in ids.split_whitespace() {
        let v = c.h(0).inspect(id);
        let name = v["Name"].as_str().unwrap_or_default().trim_start_matches('/').to_string();
        if let Some(ip) = v["NetworkSettings"]["Networks"]["ov"]["IPAddress"].as_str().filter(|s| !s.is_empty()) {
            out.insert(name, ip.parse().unwrap());
        }
    }
    out
}

/// The blocks a host holds in the store.
fn store_blocks(c: &Cluster, host: &str) -> Vec<ipnet::IpNet> {
    let out = c.etcdctl(&["get", "--prefix", "/berth/v1/blocks/"]);
    let lines: Vec<&str> = out.lines().collect();
    let mut v = Vec::new();
    for pair in lines.chunks(2) {
        if let [k, val] = pair {
            if val.contains(&format!("\"{host}\"")) {
                let cidr = k.rsplit('/').next().unwrap().replacen('-', "/", 1);
                v.push(cidr.parse().unwrap());
            }
        }
    }
    v
}

/// The addresses the store announces for host 0's endpoints.
fn announced(c: &Cluster) -> BTreeMap<String, IpAddr> {
    let out = c.etcdctl(&["get", "--prefix", "/berth/v1/endpoints/", "--print-value-only"]);
    let mut m = BTreeMap::new();
    for line in out.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let addr = v["addresses"][0].as_str().unwrap().split('/').next().unwrap().parse().unwrap();
        m.insert(v["name"].as_str().unwrap().to_string(), addr);
    }
    m
}

fn check(c: &Cluster, seed: u64, round: usize) -> usize {
    let ctx = |m: &str| format!("seed {seed}, after kill {round}: {m}\n--- host 0 log ---\n{}", c.h(0).daemon_log());
    let local = overlay_endpoints(c);
    // The store converges to exactly what runs on host 0 (the watcher's
    // container is host 1's and not in `local`).
    let limit = Duration::from_secs(10);
    let want: BTreeMap<String, IpAddr> = local.iter().map(|(k, v)| (k.clone(), *v)).chain([("watcher".to_string(), c.h(1).addr("watcher", "ov").parse().unwrap())]).collect();
    let start = std::time::Instant::now();
    while announced(c) != want {
        assert!(start.elapsed() < limit, "{}", ctx(&format!("the store announces {:?}, host 0 runs {local:?}", announced(c))));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Settled: reconcile finds the kernel as the state wants it.
    let before = c.h(0).ok(&["rules"]);
    let r = c.h(0).ok(&["reconcile"]);
    if !r.contains("nothing to change") {
        let after = c.h(0).ok(&["rules"]);
        let b: BTreeSet<&str> = before.lines().collect();
        let a: BTreeSet<&str> = after.lines().collect();
        panic!("{}", ctx(&format!("reconcile changed: {r}\nonly before: {:?}\nonly after: {:?}", b.difference(&a).collect::<Vec<_>>(), a.difference(&b).collect::<Vec<_>>())));
    }
    // Addresses come from host 0's own blocks, which are its in the store.
    let blocks = store_blocks(c, "host-0");
    let v: serde_json::Value = serde_json::from_str(&c.h(0).ok(&["network", "inspect", "ov"])).unwrap();
    let mut local_blocks: Vec<ipnet::IpNet> = v[0]["Berth"]["HostBlocks"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().parse().unwrap()).collect();
    local_blocks.sort();
    let mut sorted = blocks.clone();
    sorted.sort();
    assert_eq!(local_blocks, sorted, "{}", ctx("host 0's blocks differ from the store's"));
    let seen: BTreeSet<IpAddr> = local.values().copied().collect();
    assert_eq!(seen.len(), local.len(), "{}", ctx(&format!("an address held twice: {local:?}")));
    for (name, ip) in &local {
        assert!(blocks.iter().any(|b| b.contains(ip)), "{}", ctx(&format!("{name} at {ip} is outside host 0's blocks {blocks:?}")));
    }
    // Host 1 routes each of host 0's blocks to it and reaches each container by name.
    let routes = c.h(1).tunnel_routes();
    for b in &blocks {
        assert!(routes.iter().any(|r| r.starts_with(&format!("{b} via 10.90.0.1 "))), "{}", ctx(&format!("host 1 has no route for {b}: {routes:?}")));
    }
    for (name, ip) in &local {
        let start = std::time::Instant::now();
        loop {
            let resolved = c.h(1).dig("watcher", name);
            if resolved == vec![ip.to_string()] && c.h(1).tcp_from("watcher", name, 80).as_deref() == Some("ok") {
                break;
            }
            assert!(start.elapsed() < limit, "{}", ctx(&format!("host 1 resolves {name} to {resolved:?} (host 0 has {ip}) or cannot reach it")));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    local.len()
}

#[test]
fn crash_suite_cluster() {
    let seed = std::env::var("BERTH_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    let total = env_num("BERTH_CRASH_CLUSTER_OPS", 150) as usize;
    let kills = env_num("BERTH_CRASH_CLUSTER_KILLS", 12) as usize;
    eprintln!("crash suite (cluster): seed {seed} ({total} operations, {kills} kills; replay with BERTH_CRASH_SEED={seed})");
    let Some(mut c) = Cluster::new(2) else { return };
    // Small blocks: kills land in the middle of leases too.
    c.h(0).ok(&["network", "create", "-d", "overlay", "--subnet", "10.230.0.0/16", "-o", "host_block=28", "ov"]);
    c.eventually("host 1 has ov", |c| c.h(1).berth(&["network", "inspect", "ov"]).status.success());
    c.h(1).run("watcher", &["--network", "ov"], "sleep 100000");
    let mut r = Rng(seed);
    let every = (total / kills.max(1)).max(1);
    let (mut done, mut failed, mut killed, mut peak) = (0usize, 0usize, 0usize, 0usize);
    for i in 0..total {
        let op = random_op(&mut r);
        let args: Vec<&str> = op.iter().map(String::as_str).collect();
        if i % every == every - 1 && killed < kills {
            let child = c.h(0).cmd(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
            std::thread::sleep(Duration::from_micros(r.below(20_000)));
            c.hosts[0].stop_daemon(true);
            let _ = child.wait_with_output();
            c.hosts[0].start_daemon();
            killed += 1;
            peak = peak.max(check(&c, seed, killed));
        } else if c.h(0).berth(&args).status.success() {
            done += 1;
        } else {
            failed += 1;
        }
    }
    eprintln!("crash suite (cluster): {total} operations ({done} succeeded, {failed} refused, {killed} interrupted by SIGKILL), {killed} restarts checked, up to {peak} containers on the overlay; seed {seed}");
}
