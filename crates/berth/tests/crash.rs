//! The crash suite: a seeded random workload of mixed operations (network
//! create/rm, run with ports and links, attach, detach, policies, stop,
//! rm) with the daemon killed by SIGKILL in the middle of operations, then
//! restarted. After every restart: no address held twice, no berth veth
//! without a container in the store, no NAT state for a mapping that is
//! gone, every running container and published port answers, and
//! `berth reconcile` finds nothing to change.
//!
//! BERTH_CRASH_SEED replays a run; BERTH_CRASH_OPS / BERTH_CRASH_KILLS size it.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

fn env_num(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

/// Whether a TCP server answers at `addr` within 10 s (a container that
/// was just started may not have bound its socket yet).
fn answers(addr: &str) -> bool {
    let a: SocketAddr = addr.parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect_timeout(&a, Duration::from_millis(800)).is_ok() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const NETS: [&str; 3] = ["n1", "n2", "n3"];

/// One random operation as berth CLI arguments.
fn random_op(r: &mut Rng) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let c = format!("c{}", r.below(16));
    let a = format!("a{}", r.below(8));
    match r.below(100) {
        0..=7 => s(&["network", "create", r.pick(&NETS[..])]),
        8..=10 => s(&["network", "rm", r.pick(&NETS[..])]),
        11..=40 => {
            let mut v = s(&["run", "-d", "--name", &c, "--expose", "80"]);
            let net = r.pick(&["berth0", "berth0", "n1", "n2", "n3"][..]);
            v.extend(s(&["--network", net]));
            if r.below(2) == 0 {
                v.extend(s(&["-p", &format!("{}:80", 20000 + r.below(40))]));
            }
            if r.below(4) == 0 {
                v.extend(s(&["--link", &format!("c{}", r.below(16))]));
            }
            v.extend(s(&["--", "socat", "TCP-LISTEN:80,fork,reuseaddr", "SYSTEM:echo ok"]));
            v
        }
        41..=55 => {
            let mut v = s(&["attach", "--netns", &format!("/run/netns/{a}"), "--name", &a]);
            if r.below(2) == 0 {
                v.extend(s(&["-p", &format!("{}:80", 21000 + r.below(20))]));
            }
            v
        }
        56..=65 => s(&["detach", &a]),
        66..=80 => s(&["rm", "-f", &c]),
        81..=85 => s(&["stop", "-t", "1", &c]),
        86..=89 => s(&["start", &c]),
        90..=95 => s(&["policy", "deny", "--from", &format!("10.123.{}.0/24", r.below(4)), "--to", &format!("{c}:80")]),
        _ => s(&["network", "connect", r.pick(&NETS[..]), &c]),
    }
}

/// Checks the invariants; returns a description of what was checked.
fn check(s: &Sandbox, seed: u64, round: usize) -> (usize, usize) {
    let ctx = |m: &str| format!("seed {seed}, after kill {round}: {m}\n--- daemon log ---\n{}", s.daemon_log());
    // NAT state first: the probes below create entries of their own.
    let conntrack = sh("conntrack -L -n 2>/dev/null || true");
    let ids = String::from_utf8_lossy(&s.berth(&["ps", "-a", "-q"]).stdout).into_owned();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let list: Vec<serde_json::Value> = if ids.is_empty() {
        vec![]
    } else {
        let mut args = vec!["inspect"];
        args.extend(ids.iter());
        serde_json::from_str::<Vec<serde_json::Value>>(&s.ok(&args)).unwrap()
    };
    let mut held: HashMap<(String, String), String> = HashMap::new();
    let mut veths = HashSet::new();
    let mut live_ips = HashSet::new();
    let mut probes = 0;
    for c in &list {
        let name = c["Name"].as_str().unwrap().trim_start_matches('/').to_string();
        let running = c["State"]["Running"] == true;
        for (net, ep) in c["NetworkSettings"]["Networks"].as_object().unwrap() {
            let ip = ep["IPAddress"].as_str().unwrap_or("");
            if ip.is_empty() {
                continue;
            }
            assert!(running, "{}", ctx(&format!("{name} is not running but holds {ip} on {net}")));
            if let Some(other) = held.insert((net.clone(), ip.to_string()), name.clone()) {
                panic!("{}", ctx(&format!("{ip} on {net} held by {other} and {name}")));
            }
            live_ips.insert(ip.to_string());
            veths.insert(format!("bthv{}", &ep["EndpointID"].as_str().unwrap()[..11]));
            probes += 1;
            assert!(answers(&format!("{ip}:80")), "{}", ctx(&format!("{name} at {ip}:80 does not answer")));
        }
        if running {
            for bindings in c["NetworkSettings"]["Ports"].as_object().unwrap().values() {
                for b in bindings.as_array().into_iter().flatten() {
                    let port = b["HostPort"].as_str().unwrap();
                    probes += 1;
                    assert!(answers(&format!("127.0.0.1:{port}")), "{}", ctx(&format!("{name}'s published port {port} does not answer")));
                }
            }
        }
    }
    let kernel: HashSet<String> = sh("ip -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1 | grep ^bthv || true")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(kernel, veths, "{}", ctx("veths in the kernel differ from endpoints in the store"));
    // NAT state only for mappings that exist: every translated entry points at a live container.
    for line in conntrack.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let get = |k: &str, nth: usize| f.iter().filter(|w| w.starts_with(k)).nth(nth).map(|w| &w[k.len()..]);
        if let (Some(orig_dst), Some(reply_src)) = (get("dst=", 0), get("src=", 1)) {
            if orig_dst != reply_src && reply_src.starts_with("1") && !orig_dst.starts_with("10.99") {
                assert!(
                    live_ips.contains(reply_src) || !reply_src.contains('.'),
                    "{}",
                    ctx(&format!("NAT entry to a removed container: {line}\n--- store ---\n{}\n--- ops ---\n{}", s.store_dump(), std::fs::read_to_string(s.dir.join("ops.log")).unwrap_or_default()))
                );
            }
        }
    }
    let r = s.ok(&["reconcile"]);
    assert!(r.contains("nothing to change"), "{}", ctx(&format!("reconcile changed: {r}")));
    (list.len(), probes)
}

#[test]
fn crash_suite() {
    let seed = std::env::var("BERTH_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    let total = env_num("BERTH_CRASH_OPS", 500) as usize;
    let kills = env_num("BERTH_CRASH_KILLS", 50) as usize;
    eprintln!("crash suite: seed {seed} ({total} operations, {kills} kills; replay with BERTH_CRASH_SEED={seed})");
    let Some(mut s) = Sandbox::new() else { return };
    // Runtime namespaces for `attach`, each with a server on port 80.
    let mut servers = Vec::new();
    for i in 0..8 {
        netns(&format!("a{i}"));
        sh(&format!("ip -n a{i} link set lo up"));
        let bg = Bg::in_netns(&format!("a{i}"), "socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:'echo ok'");
        bg.wait_listening(Proto::Tcp, 80);
        servers.push(bg);
    }
    let mut r = Rng(seed);
    let every = (total / kills.max(1)).max(1);
    let (mut done, mut failed, mut killed, mut probes, mut peak) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for i in 0..total {
        let op = random_op(&mut r);
        let args: Vec<&str> = op.iter().map(String::as_str).collect();
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(s.dir.join("ops.log")).unwrap();
            let _ = writeln!(f, "{:?} {i}: {}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 100_000, args.join(" "));
        }
        if i % every == every - 1 && killed < kills {
            // Kill the daemon while this operation is in flight.
            let child = s.cmd(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
            std::thread::sleep(Duration::from_micros(r.below(15_000)));
            s.stop_daemon(true);
            let _ = child.wait_with_output();
            s.start_daemon();
            killed += 1;
            let (n, p) = check(&s, seed, killed);
            probes += p;
            peak = peak.max(n);
        } else if s.berth(&args).status.success() {
            done += 1;
        } else {
            failed += 1;
        }
    }
    eprintln!(
        "crash suite: {total} operations ({done} succeeded, {failed} refused, {killed} interrupted by SIGKILL), \
         {killed} restarts checked, {probes} reachability probes, up to {peak} containers; seed {seed}"
    );
}
