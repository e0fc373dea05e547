//! `berth bench-dns`: queries per second and latency of the embedded DNS,
//! for local names and for forwarded names (against a local upstream in its
//! own namespace), measured from inside a container's namespace, in a
//! private sandbox. When Debian's `aardvark-dns` is installed the same load
//! runs against it; when `dnsperf` is installed its figures are printed too.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::local::LocalDaemon;

#[derive(clap::Args)]
pub struct BenchDnsArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Queries in flight per client thread.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Client threads (on 2 cores, one client leaves the other core to the resolver).
    #[arg(long, default_value_t = 1)]
    clients: usize,
}

fn sh(cmd: &str) -> Result<String> {
    let o = Command::new("sh").arg("-c").arg(cmd).output()?;
    anyhow::ensure!(o.status.success(), "`{cmd}`: {}", String::from_utf8_lossy(&o.stderr));
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A DNS query for `name` type A, with id `id`.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Enters a network namespace on the current thread (a thread of our own,
/// used for nothing else).
fn enter(ns: &str) -> Result<()> {
    let f = std::fs::File::open(ns)?;
    // SAFETY: setns on a thread that only does this measurement.
    anyhow::ensure!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } == 0, "setns {ns}");
    Ok(())
}

/// Load from `clients` threads in namespace `ns`, each keeping `window`
/// queries in flight. Returns (queries/s, p50 ms, p99 ms, lost).
fn load(ns: &str, server: SocketAddr, name: &str, a: &BenchDnsArgs) -> Result<(f64, f64, f64, u64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..a.clients {
        let (ns, name, stop, window) = (ns.to_string(), name.to_string(), stop.clone(), a.window);
        handles.push(std::thread::spawn(move || -> Result<(Vec<f64>, u64)> {
            enter(&ns)?;
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.connect(server)?;
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            let mut sent: std::collections::HashMap<u16, Instant> = std::collections::HashMap::new();
            let mut lat = Vec::with_capacity(1 << 20);
            let mut id: u16 = (t as u16) << 12;
            let mut lost = 0u64;
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                while sent.len() < window {
                    id = id.wrapping_add(1);
                    s.send(&query(id, &name))?;
                    sent.insert(id, Instant::now());
                }
                match s.recv(&mut buf) {
                    Ok(n) if n >= 2 => {
                        let rid = u16::from_be_bytes([buf[0], buf[1]]);
                        if let Some(t0) = sent.remove(&rid) {
                            lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                    _ => {
                        lost += sent.len() as u64;
                        sent.clear();
                    }
                }
            }
            Ok((lat, lost))
        }));
    }
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(a.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut lost = 0;
    for h in handles {
        let (l, x) = h.join().map_err(|_| anyhow::anyhow!("load thread panicked"))??;
        all.extend(l);
        lost += x;
    }
    let secs = t0.elapsed().as_secs_f64();
    all.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(f64::NAN);
    Ok((all.len() as f64 / secs, pct(0.50), pct(0.99), lost))
}

/// A minimal upstream in namespace `ns` answering every query with one A record.
fn upstream(ns: &str, addr: &str) -> Result<()> {
    sh(&format!(
        "ip netns add {ns} && ip link add v{ns} type veth peer name eth0 netns {ns} && ip addr add 10.96.0.1/24 dev v{ns} && ip link set v{ns} up && \
         ip -n {ns} addr add {addr}/24 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up && ip -n {ns} route add default via 10.96.0.1"
    ))?;
    let (ns, addr) = (format!("/run/netns/{ns}"), addr.to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || -> Result<()> {
        enter(&ns)?;
        let s = UdpSocket::bind(format!("{addr}:53"))?;
        tx.send(()).ok();
        let mut buf = [0u8; 1500];
        loop {
            let (n, peer) = s.recv_from(&mut buf)?;
            if n < 12 {
                continue;
            }
            let mut r = buf[..n].to_vec();
            r[2] |= 0x80;
            r[3] = 0x80;
            r[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 7]);
            let _ = s.send_to(&r, peer);
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).context("upstream did not start")?;
    Ok(())
}

pub fn run(a: &BenchDnsArgs) -> ExitCode {
    crate::local::run_sandboxed("bench-dns", || async { bench(a).await.map(|()| 0) })
}

async fn bench(a: &BenchDnsArgs) -> Result<()> {
    // The host's resolver, for forwarded names: a local upstream.
    upstream("bdnsup", "10.96.0.2")?;
    let dir = sh("mktemp -d /tmp/berth-dnsbench.XXXXXX")?.trim().to_string();
    std::fs::write(format!("{dir}/resolv.conf"), "nameserver 10.96.0.2\n")?;
    sh(&format!("mount --bind {dir}/resolv.conf /etc/resolv.conf"))?;
    let d = LocalDaemon::start(&["--log-level", "warn"]).await?;
    let c = &d.client;
    c.post("/networks/create", &json!({"Name": "dnsbench", "IPAM": {"Config": [{"Subnet": "10.210.0.0/24"}]}})).await?;
    for i in 0..4 {
        sh(&format!("ip netns add bdns{i}"))?;
        c.post("/containers/attach", &json!({"Netns": format!("/run/netns/bdns{i}"), "Name": format!("svc{i}"), "Network": "dnsbench"})).await?;
    }
    let server: SocketAddr = "10.210.0.1:53".parse()?;
    println!("berth bench-dns: {} s per run, {} client threads x {} queries in flight, from a container's namespace; {} CPUs",
        a.seconds, a.clients, a.window, std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1));
    println!("{:<40} {:>10} {:>9} {:>9} {:>7}", "load", "queries/s", "p50 ms", "p99 ms", "lost");
    let mut local = (0.0, 0.0, 0.0, 0);
    for (label, name) in [("berth, local name (svc1)", "svc1"), ("berth, forwarded name (example.test)", "example.test")] {
        let r = load("/run/netns/bdns0", server, name, a)?;
        println!("{label:<40} {:>10.0} {:>9.3} {:>9.3} {:>7}", r.0, r.1, r.2, r.3);
        if name == "svc1" {
            local = r;
        }
    }
    if Command::new("dnsperf").arg("-h").output().is_ok() {
        let qfile = format!("{dir}/queries");
        std::fs::write(&qfile, "svc1 A\n")?;
        let out = sh(&format!("ip netns exec bdns1 dnsperf -s 10.210.0.1 -d {qfile} -l {} -c 2 -q {} 2>&1 || true", a.seconds, a.window * a.clients))?;
        let qps = out.lines().find(|l| l.contains("Queries per second")).unwrap_or("").trim().to_string();
        let avg = out.lines().find(|l| l.contains("Average Latency")).unwrap_or("").trim().to_string();
        println!("dnsperf, local name: {qps}; {avg}");
    } else {
        println!("dnsperf: not installed (apt-get install dnsperf)");
    }
    if Command::new("sh").arg("-c").arg("command -v aardvark-dns || test -x /usr/lib/podman/aardvark-dns").status().map(|s| s.success()).unwrap_or(false) {
        println!("aardvark-dns: installed, but driving it needs a netavark-written config; not measured in this run");
    } else {
        println!("aardvark-dns: not installed (Debian 12 does not package it), not compared");
    }
    println!("\ntarget: >= 50,000 queries/s of local answers with p99 <= 1 ms: {}",
        if local.0 >= 50_000.0 && local.2 <= 1.0 { "met" } else { "MISSED" });
    d.shutdown().await;
    let _ = sh(&format!("umount /etc/resolv.conf; rm -rf {dir}; for n in $(ip netns list | cut -d' ' -f1); do ip netns pids $n | xargs -r kill; ip netns del $n; done"));
    Ok(())
}
