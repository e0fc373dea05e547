//! `berth bench`: the figures berth promises, measured in a private sandbox
//! on this machine — attach/detach latency as a client of the API sees it,
//! flat cost with many containers, published ports (one, and a 10,000-port
//! range) and throughput through them — beside the same work done with `ip`
//! commands. The peers (netavark, the CNI plugins, docker-proxy) do the same
//! operations in the same run when they are installed
//! (`scripts/install-peers.sh`; `--no-peers` skips them): see bench_peers.rs.

use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use hyper::Method;
use serde_json::json;

use crate::local::LocalDaemon;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Containers attached to one network; the first 20 and the last 20 are compared.
    #[arg(long, default_value_t = 1000)]
    containers: usize,
    /// Samples for the per-command comparisons (CLI, ip, ports).
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Ports in the published range.
    #[arg(long, default_value_t = 10_000)]
    range: u16,
    /// Skip the iperf3 throughput part (berth's and docker-proxy's).
    #[arg(long)]
    no_throughput: bool,
    /// Throughput rounds per case, each of 1 s iperf3 runs ordered direct,
    /// published, DNAT, direct, DNAT, published, direct (about 8 s a round).
    /// Single runs vary by ±25% on the 2-core VM: the ratio is printed with
    /// its 95% confidence interval, about ±5% with 16 rounds. docker-proxy,
    /// far from any target, gets half as many.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
    /// Do not measure the peers (netavark, CNI plugins, docker-proxy), even when installed.
    #[arg(long)]
    no_peers: bool,
    /// Ports for the peers that publish one port at a time (CNI portmap mappings, docker-proxy processes).
    #[arg(long, default_value_t = 100)]
    peer_ports: usize,
    /// Instead: the multi-host bench with N hosts (3 when
    /// no number is given): overlay convergence, throughput against a VXLAN
    /// link made by hand, kernel objects per host at (3 hosts, 150
    /// containers) and (20 hosts, --containers), etcd traffic per start.
    #[arg(long, num_args = 0..=1, default_missing_value = "3", value_name = "N")]
    hosts: Option<usize>,
}

/// (median, p95) in milliseconds.
pub(crate) fn stats(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let median = if s.len() % 2 == 1 { s[s.len() / 2] } else { (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0 };
    let p95 = s[((s.len() as f64 * 0.95).ceil() as usize).clamp(1, s.len()) - 1];
    (median, p95)
}

pub(crate) fn row(label: &str, v: &[f64]) -> (f64, f64) {
    let (m, p) = stats(v);
    println!("{label:<58} {:>5} {:>10.3} {:>10.3}", v.len(), m, p);
    (m, p)
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

pub(crate) fn sh(cmd: &str) -> Result<String> {
    let o = Command::new("sh").arg("-c").arg(cmd).output()?;
    if !o.status.success() {
        anyhow::bail!("`{cmd}`: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

pub(crate) fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Processes started so far on this machine (the `processes` line of /proc/stat).
pub(crate) fn forks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("processes ")).and_then(|l| l[10..].trim().parse().ok()))
        .unwrap_or(0)
}

/// (busy, total) CPU time so far, in ticks (the `cpu` line of /proc/stat).
fn cpu_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Waits (at most 60 s) until the machine is quiet: under 10% of the CPUs
/// busy over a quarter of a second. Deleting a thousand network namespaces
/// (the end of a bench or of the test suite) keeps a kernel worker busy for
/// many seconds after the command returned; measured meanwhile, every
/// latency here is 10-30% higher.
pub(crate) fn settle(what: &str) {
    let t = Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(60) {
        let (b0, t0) = cpu_ticks();
        std::thread::sleep(std::time::Duration::from_millis(250));
        let (b1, t1) = cpu_ticks();
        if t1 > t0 && ((b1 - b0) as f64) < 0.10 * (t1 - t0) as f64 {
            break;
        }
    }
    if t.elapsed() > std::time::Duration::from_secs(1) {
        println!("(waited {:.1} s for the machine to be quiet before {what})", t.elapsed().as_secs_f64());
    }
}

pub fn run(a: &BenchArgs) -> ExitCode {
    if let Some(hosts) = a.hosts {
        return crate::bench_hosts::run(&crate::bench_hosts::Opts { hosts, containers: a.containers, rounds: a.rounds as usize, throughput: !a.no_throughput });
    }
    crate::local::run_sandboxed("bench", || async { bench(a).await.map(|()| 0) })
}

async fn bench(a: &BenchArgs) -> Result<()> {
    let n = a.containers.max(2 * a.samples);
    let k = a.samples;
    println!("berth bench: {n} containers on one network, in a private network namespace; {} CPUs", std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1));
    println!("(latencies in ms; API = one HTTP request on the Unix socket as a client program makes it)\n");
    let d = LocalDaemon::start(&["--log-level", "warn"]).await?;
    let c = &d.client;
    // A Linux bridge takes at most 1024 ports: the n containers get one
    // network, the other measurements their own.
    anyhow::ensure!(n <= 1000, "at most 1000 containers per network (a Linux bridge has 1024 ports)");
    for (name, subnet) in [("bench", "10.200.0.0/16"), ("benchp", "10.201.0.0/16"), ("benchc", "10.202.0.0/16"), ("bench4", "10.203.0.0/16")] {
        c.post("/networks/create", &json!({"Name": name, "IPAM": {"Config": [{"Subnet": subnet}]}})).await?;
    }
    // Dual-stack: one for attaches, one for throughput over IPv6.
    for (name, v4, v6) in [("bench6", "10.204.0.0/16", "fd00:204::/64"), ("benchd", "10.205.0.0/16", "fd00:205::/64")] {
        c.post("/networks/create", &json!({"Name": name, "EnableIPv6": true, "IPAM": {"Config": [{"Subnet": v4}, {"Subnet": v6}]}})).await?;
    }
    let total = n + 5 * k;
    let batch: String = (0..total).map(|i| format!("netns add bn{i}\n")).collect();
    let mut p = Command::new("ip").args(["-batch", "-"]).stdin(Stdio::piped()).spawn()?;
    std::io::Write::write_all(p.stdin.as_mut().unwrap(), batch.as_bytes())?;
    p.wait()?;
    // As before every measured phase: let the kernel finish the work it
    // deferred while the namespaces were made.
    settle("the attach measurements");

    println!("{:<58} {:>5} {:>10} {:>10}", "operation", "n", "median", "p95");
    // IPv4-only against dual-stack, alternating, on empty networks of their own.
    let (mut only4, mut dual) = (Vec::new(), Vec::new());
    for j in 0..k {
        for (net, base, out) in [("bench4", n + 3 * k, &mut only4), ("bench6", n + 4 * k, &mut dual)] {
            let i = base + j;
            let body = json!({"Netns": format!("/run/netns/bn{i}"), "Name": format!("bn{i}"), "Network": net});
            let t = Instant::now();
            c.post("/containers/attach", &body).await.with_context(|| format!("attach bn{i} to {net}"))?;
            out.push(ms(t));
        }
    }
    let (v4_med, _) = row("API attach, IPv4-only network (alternating with the next)", &only4);
    let (ds_med, _) = row("API attach, dual-stack network (IPv4 and IPv6)", &dual);
    let mut attach = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"Netns": format!("/run/netns/bn{i}"), "Name": format!("bn{i}"), "Network": "bench"});
        let t = Instant::now();
        c.post("/containers/attach", &body).await.with_context(|| format!("attach bn{i}"))?;
        attach.push(ms(t));
    }
    let (first, _) = row("API attach, containers 1-20", &attach[..k]);
    let (last, _) = row(&format!("API attach, containers {}-{}", n - k + 1, n), &attach[n - k..]);

    // The same with one published port each, with n containers present,
    // once the kernel has done what it deferred during the burst of attaches.
    settle("the published-port attaches");
    let mut with_port = Vec::new();
    for j in 0..k {
        let i = n + j;
        let body = json!({"Netns": format!("/run/netns/bn{i}"), "Name": format!("bn{i}"), "Network": "benchp", "Publish": [format!("{}:80", 40000 + j)]});
        let t = Instant::now();
        c.post("/containers/attach", &body).await?;
        with_port.push(ms(t));
    }
    let (port_med, _) = row(&format!("API attach with one published port ({n} present)"), &with_port);

    // The CLI adds its own process start.
    let mut cli = Vec::new();
    for j in 0..k {
        let i = n + k + j;
        let t = Instant::now();
        let st = Command::new("/proc/self/exe")
            .args(["attach", "--netns", &format!("/run/netns/bn{i}"), "--name", &format!("bn{i}"), "--network", "benchc"])
            .env("BERTH_HOST", d.host_env())
            .stdout(Stdio::null())
            .status()?;
        cli.push(ms(t));
        anyhow::ensure!(st.success(), "berth attach failed");
    }
    let (cli_med, _) = row("berth attach command (includes its process start)", &cli);

    let mut detach = Vec::new();
    for i in (0..k).chain(n - k..n) {
        let t = Instant::now();
        c.call(Method::POST, &format!("/containers/bn{i}/detach"), None).await?;
        detach.push(ms(t));
    }
    let (det_med, _) = row("API detach (first 20 and last 20)", &detach);

    // The same plumbing with ip commands (8 commands per container, as a
    // CLI-driven engine does it).
    sh("ip link add bthbenchbr type bridge && ip addr add 10.77.0.1/16 dev bthbenchbr && ip link set bthbenchbr up")?;
    let mut ipv = Vec::new();
    for j in 0..k {
        let ns = format!("bipns{j}");
        sh(&format!("ip netns add {ns}"))?;
        let t = Instant::now();
        sh(&format!(
            "ip link add bthbv{j} type veth peer name bthbp{j} && ip link set bthbp{j} netns {ns} && ip -n {ns} link set bthbp{j} name eth0 && \
             ip -n {ns} addr add 10.77.1.{}/16 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up && \
             ip -n {ns} route add default via 10.77.0.1 && ip link set bthbv{j} master bthbenchbr up",
            j + 1
        ))?;
        ipv.push(ms(t));
    }
    let (ip_med, _) = row("same plumbing with ip commands (8 x ip)", &ipv);

    // Publishing a port range in one request: time and processes started.
    let range_ns = "bnrange";
    sh(&format!("ip netns add {range_ns}"))?;
    let spec = format!("20000-{}:20000-{}", 20000 + a.range as u32 - 1, 20000 + a.range as u32 - 1);
    let f0 = forks();
    let p0 = c.get("/info").await?["ProcessesStarted"].as_u64().unwrap_or(0);
    let t = Instant::now();
    c.post("/containers/attach", &json!({"Netns": format!("/run/netns/{range_ns}"), "Name": "range", "Network": "benchc", "Publish": [spec]})).await?;
    let range_ms = ms(t);
    let range_forks = forks() - f0;
    let range_procs = c.get("/info").await?["ProcessesStarted"].as_u64().unwrap_or(0) - p0;
    println!("{:<58} {:>5} {:>10.3} {:>10}", format!("publish a {}-port range (one API call)", a.range), 1, range_ms, "-");
    println!("{:<58} {:>5} {:>10}", "  processes berth started for it", "", range_procs);
    println!("{:<58} {:>5} {:>10}", "  processes and threads created on the machine meanwhile", "", range_forks);

    println!("\ntargets");
    println!("  API attach median {first:.3} ms <= 2 ms: {}", verdict(first <= 2.0));
    println!("  API attach with a port median {port_med:.3} ms <= 3 ms: {}", verdict(port_med <= 3.0));
    println!("  API detach median {det_med:.3} ms <= 2 ms: {}", verdict(det_med <= 2.0));
    println!("  containers {}-{} / 1-20 = {:.2} <= 1.10: {}", n - k + 1, n, last / first, verdict(last / first <= 1.10));
    println!("  dual-stack attach / IPv4 attach = {:.2} <= 1.20: {}", ds_med / v4_med, verdict(ds_med / v4_med <= 1.20));
    println!("  berth attach command / ip commands = {:.3} <= 0.12: {}", cli_med / ip_med, verdict(cli_med / ip_med <= 0.12));
    println!("  {}-port range {range_ms:.1} ms <= 100 ms, 0 processes started by berth: {}", a.range, verdict(range_ms <= 100.0 && range_procs == 0));

    if !a.no_throughput {
        settle("the throughput runs");
        if let Err(e) = throughput(&d, a.range, a.rounds as usize).await {
            println!("\nthroughput: skipped ({e:#})");
        }
    }
    d.shutdown().await;
    let _ = sh("ip link del bthbenchbr; for n in $(ip netns list | cut -d' ' -f1); do ip netns del $n; done");
    if !a.no_peers {
        // berth's namespaces were just deleted: their teardown must not be
        // billed to the peers.
        settle("the peers");
        crate::bench_peers::run(&crate::bench_peers::PeerArgs { samples: k, range: a.range, ports: a.peer_ports, throughput_rounds: if a.no_throughput { 0 } else { (a.rounds as usize / 2).max(4) } });
    }
    Ok(())
}

/// One iperf3 run of 1 s from CPU 0 (the servers run on CPU 1: unpinned,
/// the scheduler's placement moves single-stream throughput by 20% here), in
/// Gbit/s received.
pub(crate) fn iperf(target: &str) -> Result<f64> {
    let out = sh(&format!("taskset -c 0 iperf3 -c {target} -t 1 -J"))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9)
}

/// One path's throughput against a baseline's, from [`interleaved`].
pub(crate) struct Compared {
    /// Median throughputs of the baseline and of this path.
    pub base: f64,
    pub this: f64,
    /// Geometric mean over the rounds of this path's mean over the
    /// baseline's mean, and its 95% confidence interval (two standard
    /// errors of the mean log ratio): single runs here vary by ±25%, and
    /// the interval says how far the figure can be trusted.
    pub ratio: f64,
    pub ci: (f64, f64),
}

impl Compared {
    pub(crate) fn ratio_text(&self) -> String {
        format!("ratio {:.3} (95% CI {:.2}-{:.2})", self.ratio, self.ci.0, self.ci.1)
    }
}

/// Measures `paths` against `base` in `rounds` rounds, each run in the
/// order base, p1 … pk, base, pk … p1, base. Single-stream throughput on
/// this VM drifts within seconds and a run's position in a sequence biases
/// it (always measuring the baseline first put the other path 5-10% low);
/// in this order every path's runs sit, on average, at the middle of the
/// round, so a drift that is linear over a round cancels for all of them.
pub(crate) fn interleaved(rounds: usize, base: &mut dyn FnMut() -> Result<f64>, paths: &mut [&mut dyn FnMut() -> Result<f64>]) -> Result<Vec<Compared>> {
    let k = paths.len();
    let (mut base_runs, mut runs, mut logs) = (vec![], vec![vec![]; k], vec![vec![]; k]);
    for _ in 0..rounds.max(1) {
        let mut b = vec![base()?];
        let mut got = vec![vec![]; k];
        for (i, p) in paths.iter_mut().enumerate() {
            got[i].push(p()?);
        }
        b.push(base()?);
        for (i, p) in paths.iter_mut().enumerate().rev() {
            got[i].push(p()?);
        }
        b.push(base()?);
        let b_mean = b.iter().sum::<f64>() / b.len() as f64;
        for i in 0..k {
            logs[i].push((got[i].iter().sum::<f64>() / got[i].len() as f64 / b_mean).ln());
            runs[i].extend(&got[i]);
        }
        base_runs.extend(b);
    }
    Ok((0..k)
        .map(|i| {
            let l = &logs[i];
            let n = l.len() as f64;
            let mean = l.iter().sum::<f64>() / n;
            let sd = if l.len() > 1 { (l.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
            let se = sd / n.sqrt();
            Compared { base: stats(&base_runs).0, this: stats(&runs[i]).0, ratio: mean.exp(), ci: ((mean - 2.0 * se).exp(), (mean + 2.0 * se).exp()) }
        })
        .collect())
}

/// iperf3 through a published port versus straight to the container. The
/// host's connections are translated in connect() when socket translation
/// is on; a client bound to an address first (`iperf3 -B`) is not, which
/// measures the nft DNAT path on the same port as well.
async fn throughput(d: &LocalDaemon, range: u16, rounds: usize) -> Result<()> {
    if Command::new("iperf3").arg("--version").stdout(Stdio::null()).status().is_err() {
        anyhow::bail!("iperf3 not installed (apt-get install iperf3)");
    }
    let c = &d.client;
    let translated = c.get("/info").await?["SocketTranslation"].as_bool() == Some(true);
    // The earlier range is gone: the first measurement has exactly one port published.
    let _ = c.call(Method::POST, "/containers/range/detach", None).await;
    let r = c.post("/containers/run", &json!({"Name": "iperf", "Network": "benchc", "Publish": ["15201:5201"], "Cmd": ["taskset", "-c", "1", "iperf3", "-s", "-p", "5201"]})).await?.json()?;
    let id = r["Id"].as_str().unwrap_or_default().to_string();
    let v = c.get(&format!("/containers/{id}/json")).await?;
    let ip = v["NetworkSettings"]["Networks"]["benchc"]["IPAddress"].as_str().unwrap_or_default().to_string();
    // What a program on the host most often dials for a published port.
    let host = "127.0.0.1";
    let pid = v["State"]["Pid"].as_u64().unwrap_or(0) as u32;
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !berth_linux::ports::listening_in(pid, false, 5201) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    println!("\nthroughput (iperf3, host -> the same container; {rounds} rounds of 1 s runs ordered direct, published[, DNAT], direct[, DNAT], published, direct)");
    println!("  socket translation: {}", if translated { "on (the published path is translated in connect())" } else { "off (the published path is the nft DNAT rules)" });
    for total in [1u32, range as u32] {
        if total > 1 {
            // Fill the map: another namespace publishes the other total-1 ports.
            sh("ip netns add bnfill")?;
            let spec = format!("30000-{}:30000-{}", 30000 + total - 2, 30000 + total - 2);
            c.post("/containers/attach", &json!({"Netns": "/run/netns/bnfill", "Name": "filler", "Network": "benchc", "Publish": [spec]})).await?;
        }
        let mut direct = || iperf(&format!("{ip} -p 5201"));
        let mut published = || iperf(&format!("{host} -p 15201"));
        // Bound first, the client is left to the DNAT rules (and, from
        // 127.0.0.1, masquerading out of the bridge).
        let mut dnat = || iperf(&format!("{host} -p 15201 -B {host}"));
        let r = if translated {
            interleaved(rounds, &mut direct, &mut [&mut published, &mut dnat])?
        } else {
            interleaved(rounds, &mut direct, &mut [&mut published])?
        };
        let label = format!("{total} port{} published", if total == 1 { "" } else { "s" });
        println!("  {label:<24} direct {:>6.2} Gbit/s   via published port {:>6.2} Gbit/s   {}", r[0].base, r[0].this, r[0].ratio_text());
        if let Some(n) = r.get(1) {
            println!("  {:<24} via DNAT (client bound first, so not translated) {:>6.2} Gbit/s   {}", "", n.this, n.ratio_text());
        }
        let r = &r[0];
        if total > 1 {
            println!("  target: ratio {:.3} >= 0.95 with {total} ports published: {}", r.ratio, verdict(r.ratio >= 0.95));
        }
    }
    let _ = c.call(Method::POST, "/containers/filler/detach", None).await;
    c.call(Method::DELETE, &format!("/containers/{id}?force=1"), None).await?;
    throughput_v6(d, range, rounds).await
}

/// The same over IPv6 on a dual-stack network: iperf3 through the port
/// published on every address, dialled at [::1] (translated in connect6;
/// a DNAT'ed packet from ::1 could not leave the loopback), against
/// straight to the container's IPv6 address.
async fn throughput_v6(d: &LocalDaemon, range: u16, rounds: usize) -> Result<()> {
    let c = &d.client;
    let r = c.post("/containers/run", &json!({"Name": "iperf6", "Network": "benchd", "Publish": ["15202:5201"], "Cmd": ["taskset", "-c", "1", "iperf3", "-s", "-p", "5201"]})).await?.json()?;
    let id = r["Id"].as_str().unwrap_or_default().to_string();
    let v = c.get(&format!("/containers/{id}/json")).await?;
    let ip6 = v["NetworkSettings"]["Networks"]["benchd"]["GlobalIPv6Address"].as_str().unwrap_or_default().to_string();
    let pid = v["State"]["Pid"].as_u64().unwrap_or(0) as u32;
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !berth_linux::ports::listening_in(pid, false, 5201) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    println!("\nthroughput over IPv6 (iperf3, host -> a container of a dual-stack network; {rounds} rounds: direct, published [::1], direct, published, direct)");
    for total in [1u32, range as u32] {
        if total > 1 {
            sh("ip netns add bnfill6")?;
            let spec = format!("30000-{}:30000-{}", 30000 + total - 2, 30000 + total - 2);
            c.post("/containers/attach", &json!({"Netns": "/run/netns/bnfill6", "Name": "filler6", "Network": "benchd", "Publish": [spec]})).await?;
        }
        let mut direct = || iperf(&format!("{ip6} -p 5201"));
        let mut published = || iperf("::1 -p 15202");
        let r = interleaved(rounds, &mut direct, &mut [&mut published])?;
        let r = &r[0];
        let label = format!("{total} port{} published", if total == 1 { "" } else { "s" });
        println!("  {label:<24} direct {:>6.2} Gbit/s   via [::1]:15202 {:>6.2} Gbit/s   {}", r.base, r.this, r.ratio_text());
        if total > 1 {
            println!("  target: ratio {:.3} >= 0.95 with {total} ports published (IPv6): {}", r.ratio, verdict(r.ratio >= 0.95));
        }
    }
    let _ = c.call(Method::POST, "/containers/filler6/detach", None).await;
    c.call(Method::DELETE, &format!("/containers/{id}?force=1"), None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_balances_positions_and_rates_each_path() {
        let order = std::cell::RefCell::new(String::new());
        let mut d = || -> Result<f64> { order.borrow_mut().push('D'); Ok(10.0) };
        let mut t = || -> Result<f64> { order.borrow_mut().push('T'); Ok(9.0) };
        let mut n = || -> Result<f64> { order.borrow_mut().push('N'); Ok(12.0) };
        let r = interleaved(2, &mut d, &mut [&mut t, &mut n]).unwrap();
        assert_eq!(order.into_inner(), "DTNDNTDDTNDNTD");
        assert!((r[0].ratio - 0.9).abs() < 1e-9 && (r[0].ci.0 - 0.9).abs() < 1e-9 && (r[1].ratio - 1.2).abs() < 1e-9);
        assert_eq!((r[0].base, r[0].this, r[1].this), (10.0, 9.0, 12.0));
    }
}
