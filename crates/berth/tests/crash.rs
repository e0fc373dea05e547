//! The crash suite: a seeded random workload of mixed operations (network
//! create/rm — IPv4, dual-stack and IPv6-only networks —, run with ports,
//! links and static IPv6 addresses, attach, detach, policies of both
//! families, stop, rm) with the daemon killed by SIGKILL in the middle of
//! operations, then restarted. After every restart: no address of either
//! family held twice, every endpoint has one address per family of its
//! network and keeps its static `--ip6`, no berth veth without a container
//! in the store, no NAT state (IPv4 or IPv6) for a mapping that is gone,
//! every running container answers on each of its addresses and every
//! published port in each family it is published in, and `berth
//! reconcile` finds nothing to change.
//!
//! BERTH_CRASH_SEED replays a run; BERTH_CRASH_OPS / BERTH_CRASH_KILLS size it.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

fn env_num(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

/// Whether a TCP server answers at `a` within 10 s (a container that
/// was just started may not have bound its socket yet).
fn answers(a: SocketAddr) -> bool {
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

/// n1 is IPv4; n2 dual-stack (a /64 from the IPv6 pool); n3 dual-stack or,
/// one creation in three, IPv6-only, always with the IPv6 subnet
/// `N3_V6`, so `--ip6` can name addresses in it.
const NETS: [&str; 3] = ["n1", "n2", "n3"];
const N3_V6: &str = "fd00:203::/64";

/// The servers of the workload's containers and attached namespaces: one
/// IPv6 socket that takes IPv4 too (socat's TCP-LISTEN is IPv4 only).
const SERVER: [&str; 2] = ["TCP6-LISTEN:80,ipv6only=0,fork,reuseaddr", "SYSTEM:echo ok"];

/// A static IPv6 address for n3 (a few, so they collide now and then).
fn ip6(r: &mut Rng) -> String {
    format!("fd00:203::{:x}", 0x10 + r.below(6))
}

/// One random operation as berth CLI arguments.
fn random_op(r: &mut Rng) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let c = format!("c{}", r.below(16));
    let a = format!("a{}", r.below(8));
    match r.below(100) {
        0..=7 => match r.pick(&NETS[..]) {
            "n1" => s(&["network", "create", "n1"]),
            "n2" => s(&["network", "create", "--ipv6", "n2"]),
            _ if r.below(3) == 0 => s(&["network", "create", "--ipv6", "--ipv4=false", "--subnet", N3_V6, "n3"]),
            _ => s(&["network", "create", "--ipv6", "--subnet", N3_V6, "n3"]),
        },
        8..=10 => s(&["network", "rm", r.pick(&NETS[..])]),
        11..=40 => {
            let mut v = s(&["run", "-d", "--name", &c, "--expose", "80"]);
            let net = r.pick(&["berth0", "berth0", "n1", "n2", "n3"][..]);
            v.extend(s(&["--network", net]));
            if net == "n3" && r.below(2) == 0 {
                v.extend(s(&["--ip6", &ip6(r)]));
            }
            if r.below(2) == 0 {
                v.extend(s(&["-p", &format!("{}:80", 20000 + r.below(40))]));
            }
            if r.below(4) == 0 {
                v.extend(s(&["--link", &format!("c{}", r.below(16))]));
            }
            v.extend(s(&["--", "socat", SERVER[0], SERVER[1]]));
            v
        }
        41..=55 => {
            let mut v = s(&["attach", "--netns", &format!("/run/netns/{a}"), "--name", &a]);
            if r.below(3) == 0 {
                v.extend(s(&["--network", "n2"]));
            }
            if r.below(2) == 0 {
                v.extend(s(&["-p", &format!("{}:80", 21000 + r.below(20))]));
            }
            v
        }
        56..=65 => s(&["detach", &a]),
        66..=80 => s(&["rm", "-f", &c]),
        81..=85 => s(&["stop", "-t", "1", &c]),
        86..=89 => s(&["start", &c]),
        90..=92 => s(&["policy", "deny", "--from", &format!("10.123.{}.0/24", r.below(4)), "--to", &format!("{c}:80")]),
        93..=95 => s(&["policy", "deny", "--from", &format!("fd00:123:{}::/64", r.below(4)), "--to", &format!("{c}:80")]),
        _ => {
            let net = r.pick(&NETS[..]);
            let mut v = s(&["network", "connect"]);
            if net == "n3" && r.below(2) == 0 {
                v.extend(s(&["--ip6", &ip6(r)]));
            }
            v.extend(s(&[net, &c]));
            v
        }
    }
}

/// The families of a network's address blocks (IPv4, IPv6), from
/// `berth network inspect`.
fn families(s: &Sandbox, net: &str) -> Option<(bool, bool)> {
    let o = s.berth(&["network", "inspect", net]);
    if !o.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    let gws: Vec<IpAddr> = v[0]["IPAM"]["Config"].as_array()?.iter().filter_map(|c| c["Gateway"].as_str()?.parse().ok()).collect();
    Some((gws.iter().any(|g| g.is_ipv4()), gws.iter().any(|g| g.is_ipv6())))
}

/// When the host's neighbour entry for `ip` names another MAC than the
/// endpoint's (left by the address's previous holder), says so.
fn stale_neighbour(ip: IpAddr, ep: &serde_json::Value) -> String {
    let mac = ep["MacAddress"].as_str().unwrap_or("");
    let entry = sh(&format!("ip neigh show {ip} 2>/dev/null || true"));
    let lladdr = entry.split_whitespace().skip_while(|w| *w != "lladdr").nth(1).unwrap_or("");
    if !lladdr.is_empty() && !lladdr.eq_ignore_ascii_case(mac) {
        format!(": the host's neighbour entry for it is `{}`, but the endpoint's MAC is {mac} (a stale entry: the address had another holder before)", entry.trim())
    } else {
        String::new()
    }
}

/// What a container that does not answer looks like: its record, its
/// namespace's addresses, routes and listeners, the host's view and the
/// last operations.
fn diag(s: &Sandbox, c: &serde_json::Value) -> String {
    let pid = c["State"]["Pid"].as_u64().unwrap_or(0);
    let inside = if pid > 0 {
        sh(&format!("nsenter -n -t {pid} sh -c 'ip -br addr; ip route; ip -6 route; ip -6 neigh; ss -ltn' 2>&1 || true"))
    } else {
        String::new()
    };
    let host = sh("(ip -br addr; ip -6 route; ip -6 neigh; nft list table inet berth) 2>&1 || true");
    let ops = std::fs::read_to_string(s.dir.join("ops.log")).unwrap_or_default();
    let tail: Vec<&str> = ops.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
    format!("--- record ---\n{c}\n--- inside (pid {pid}) ---\n{inside}--- host ---\n{host}--- last operations ---\n{}", tail.join("\n"))
}

/// Checks the invariants; returns (containers, probes, of which IPv6).
fn check(s: &Sandbox, seed: u64, round: usize) -> (usize, usize, usize) {
    let ctx = |m: &str| format!("seed {seed}, after kill {round}: {m}\n--- daemon log ---\n{}", s.daemon_log());
    // NAT state first: the probes below create entries of their own.
    let conntrack = sh("conntrack -L -n -f ipv4 2>/dev/null; conntrack -L -n -f ipv6 2>/dev/null; true");
    let ids = String::from_utf8_lossy(&s.berth(&["ps", "-a", "-q"]).stdout).into_owned();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let list: Vec<serde_json::Value> = if ids.is_empty() {
        vec![]
    } else {
        let mut args = vec!["inspect"];
        args.extend(ids.iter());
        serde_json::from_str::<Vec<serde_json::Value>>(&s.ok(&args)).unwrap()
    };
    let mut held: HashMap<(String, IpAddr), String> = HashMap::new();
    let mut veths = HashSet::new();
    let mut live_ips: HashSet<IpAddr> = HashSet::new();
    let mut nets: HashMap<String, Option<(bool, bool)>> = HashMap::new();
    let (mut probes, mut probes6) = (0, 0);
    for c in &list {
        let name = c["Name"].as_str().unwrap().trim_start_matches('/').to_string();
        let running = c["State"]["Running"] == true;
        for (net, ep) in c["NetworkSettings"]["Networks"].as_object().unwrap() {
            let addr = |key: &str| -> Option<IpAddr> {
                let text = ep[key].as_str().filter(|t| !t.is_empty())?;
                Some(text.parse().unwrap_or_else(|e| panic!("{}", ctx(&format!("{name}'s {key} on {net} is {text:?}: {e}")))))
            };
            let (v4, v6) = (addr("IPAddress"), addr("GlobalIPv6Address"));
            if v4.is_none() && v6.is_none() {
                continue;
            }
            let ips: Vec<IpAddr> = v4.into_iter().chain(v6).collect();
            assert!(running, "{}", ctx(&format!("{name} is not running but holds {ips:?} on {net}")));
            // One address per family of the network, no more, no fewer.
            let fams = *nets.entry(net.clone()).or_insert_with(|| families(s, net));
            let Some((has4, has6)) = fams else { panic!("{}", ctx(&format!("{name} holds {ips:?} on {net}, which does not exist"))) };
            assert_eq!(
                (v4.is_some(), v6.is_some()),
                (has4, has6),
                "{}",
                ctx(&format!("{name} on {net} (IPv4 {has4}, IPv6 {has6}) has addresses {ips:?}: {ep}"))
            );
            // A static --ip6 is the address held.
            if let Some(want) = ep["IPAMConfig"]["IPv6Address"].as_str().filter(|t| !t.is_empty()) {
                assert_eq!(v6.map(|a| a.to_string()).as_deref(), Some(want), "{}", ctx(&format!("{name}'s static --ip6 on {net}: {ep}")));
            }
            for ip in ips {
                if let Some(other) = held.insert((net.clone(), ip), name.clone()) {
                    panic!("{}", ctx(&format!("{ip} on {net} held by {other} and {name}")));
                }
                live_ips.insert(ip);
                probes += 1;
                probes6 += ip.is_ipv6() as usize;
                let to = SocketAddr::new(ip, 80);
                if !answers(to) {
                    panic!("{}", ctx(&format!("{name} at {to} does not answer{}\n{}", stale_neighbour(ip, ep), diag(s, c))));
                }
            }
            veths.insert(format!("bthv{}", &ep["EndpointID"].as_str().unwrap()[..11]));
        }
        if running {
            for bindings in c["NetworkSettings"]["Ports"].as_object().unwrap().values() {
                for b in bindings.as_array().into_iter().flatten() {
                    let port: u16 = b["HostPort"].as_str().unwrap().parse().unwrap();
                    // A port published on every address shows once per
                    // family the container has an address of: reach it
                    // through that family's loopback.
                    let host: IpAddr = match b["HostIp"].as_str().unwrap_or("") {
                        "" | "0.0.0.0" => Ipv4Addr::LOCALHOST.into(),
                        "::" => Ipv6Addr::LOCALHOST.into(),
                        other => other.parse().unwrap(),
                    };
                    probes += 1;
                    probes6 += host.is_ipv6() as usize;
                    let to = SocketAddr::new(host, port);
                    assert!(answers(to), "{}", ctx(&format!("{name}'s published port {to} does not answer\n{}", diag(s, c))));
                }
            }
        }
    }
    let kernel: HashSet<String> = sh("ip -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1 | grep ^bthv || true")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(kernel, veths, "{}", ctx("veths in the kernel differ from endpoints in the store"));
    // NAT state only for mappings that exist: every translated entry
    // (its reply comes from another address than the original went to)
    // points at a live container, in both families.
    for line in conntrack.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let get = |k: &str, nth: usize| f.iter().filter(|w| w.starts_with(k)).nth(nth).map(|w| &w[k.len()..]);
        let (Some(orig_dst), Some(reply_src)) = (get("dst=", 0), get("src=", 1)) else { continue };
        let (Ok(orig_dst), Ok(reply_src)) = (orig_dst.parse::<IpAddr>(), reply_src.parse::<IpAddr>()) else { continue };
        let translated = orig_dst != reply_src
            && match reply_src {
                IpAddr::V4(_) => reply_src.to_string().starts_with('1') && !orig_dst.to_string().starts_with("10.99"),
                IpAddr::V6(a) => !a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80,
            };
        if translated {
            assert!(
                live_ips.contains(&reply_src),
                "{}",
                ctx(&format!("NAT entry to a removed container: {line}\n--- store ---\n{}\n--- ops ---\n{}", s.store_dump(), std::fs::read_to_string(s.dir.join("ops.log")).unwrap_or_default()))
            );
        }
    }
    let r = s.ok(&["reconcile"]);
    assert!(r.contains("nothing to change"), "{}", ctx(&format!("reconcile changed: {r}")));
    (list.len(), probes, probes6)
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
        let bg = Bg::in_netns(&format!("a{i}"), &format!("socat {} '{}'", SERVER[0], SERVER[1]));
        bg.wait_listening(Proto::Tcp, 80);
        servers.push(bg);
    }
    let mut r = Rng(seed);
    let every = (total / kills.max(1)).max(1);
    let (mut done, mut failed, mut killed, mut probes, mut probes6, mut peak) = (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
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
            let (n, p, p6) = check(&s, seed, killed);
            probes += p;
            probes6 += p6;
            peak = peak.max(n);
        } else if s.berth(&args).status.success() {
            done += 1;
        } else {
            failed += 1;
        }
    }
    eprintln!(
        "crash suite: {total} operations ({done} succeeded, {failed} refused, {killed} interrupted by SIGKILL), \
         {killed} restarts checked, {probes} reachability probes ({probes6} over IPv6), up to {peak} containers; seed {seed}"
    );
}
