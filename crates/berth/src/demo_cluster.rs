//! The demo's last part: one network over three hosts. Three "hosts"
//! (network namespaces on a LAN bridge inside the demo's sandbox) each run
//! a daemon, all joined to one etcd on the LAN; an overlay network made on
//! one host is used from all three, names resolve across hosts, icc=false
//! holds across hosts, and when a host dies the others take its routes
//! and names away within the liveness TTL.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::demo::{sh, Demo};

const LAN: &str = "10.90.0.254";
const TTL: u64 = 3;
const HOSTS: [&str; 3] = ["host-a", "host-b", "host-c"];

/// The processes of the cross-host part: killed by PID when it ends,
/// however it ends.
struct Procs {
    dir: std::path::PathBuf,
    etcd: Option<Child>,
    daemons: Vec<Option<Child>>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (i, d) in self.daemons.iter_mut().enumerate() {
            if let Some(mut c) = d.take() {
                let host = format!("unix://{}", self.dir.join(HOSTS[i]).join("run/berth.sock").display());
                if let Ok(o) = Command::new("/proc/self/exe").args(["ps", "-a", "-q"]).env("BERTH_HOST", &host).output() {
                    for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                        let _ = Command::new("/proc/self/exe").args(["rm", "-f", id]).env("BERTH_HOST", &host).output();
                    }
                }
                // SAFETY: signalling our own child.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
                let _ = c.wait();
            }
            berth_linux::shim::kill_all_under(&self.dir.join(HOSTS[i]).join("run/containers"));
        }
        if let Some(mut e) = self.etcd.take() {
            let _ = e.kill();
            let _ = e.wait();
        }
        for i in 0..HOSTS.len() {
            sh(&format!("ip netns pids h{i} 2>/dev/null | xargs -r kill -9; ip netns del h{i} 2>/dev/null"));
        }
        sh("ip link del lan 2>/dev/null");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` for at most `limit`; true if it came true.
fn within(limit: Duration, f: impl Fn() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn host_env(dir: &std::path::Path, i: usize) -> String {
    format!("unix://{}", dir.join(HOSTS[i]).join("run/berth.sock").display())
}

/// A demo driver aimed at host `i`.
fn on(m: &Demo, dir: &std::path::Path, i: usize) -> Demo {
    Demo { host: host_env(dir, i), verbose: m.verbose, failures: vec![], prompt: format!("{}$", HOSTS[i]) }
}

/// Runs the part; its failed expectations join the demo's.
pub async fn cross_host(m: &mut Demo) {
    m.section(
        "10. One network over three hosts (overlay: VXLAN between hosts, etcd between daemons)",
        "Three hosts on one LAN, a daemon each, one etcd. An overlay made on host-a is used on all three: addresses from each host's own block, names across hosts, icc=false across hosts; a host that dies is forgotten within the liveness TTL.",
    );
    if let Err(e) = run(m).await {
        m.failures.push(format!("cross-host part: {e}"));
        println!("  ✘ {e}");
    }
}

async fn run(m: &mut Demo) -> anyhow::Result<()> {
    let out = Command::new("mktemp").args(["-d", "/tmp/berth-demo-cluster.XXXXXX"]).output()?;
    let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let mut procs = Procs { dir: dir.clone(), etcd: None, daemons: vec![] };
    // The LAN: a bridge in the sandbox (which is also the etcd machine).
    for c in [
        format!("ip link add lan type bridge && ip addr add {LAN}/24 dev lan && ip link set lan up"),
    ] {
        anyhow::ensure!(sh(&c).status.success(), "{c} failed");
    }
    let log = std::fs::File::create(dir.join("etcd.log"))?;
    let url = format!("http://{LAN}:2379");
    procs.etcd = Some(
        Command::new("etcd")
            .args(["--name", "demo", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380", "--initial-cluster", "demo=http://127.0.0.1:2380"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let etcd_up = within(Duration::from_secs(20), || sh(&format!("etcdctl --endpoints {url} endpoint health")).status.success());
    anyhow::ensure!(etcd_up.is_some(), "etcd did not come up: {}", std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default());
    println!("  etcd listens on {LAN}:2379; hosts {} on the LAN 10.90.0.0/24", HOSTS.join(", "));
    for (i, name) in HOSTS.iter().enumerate() {
        let c = format!(
            "ip netns add h{i} && ip link add lan{i} type veth peer name eth0 netns h{i} && ip link set lan{i} master lan up && \
             ip -n h{i} addr add 10.90.0.{}/24 dev eth0 && ip -n h{i} link set eth0 up && ip -n h{i} link set lo up && ip -n h{i} route add default via {LAN}",
            i + 1
        );
        anyhow::ensure!(sh(&c).status.success(), "making {name} failed");
        let hdir = dir.join(name);
        std::fs::create_dir_all(&hdir)?;
        let log = std::fs::File::create(hdir.join("daemon.log"))?;
        let args = [
            "daemon".to_string(),
            "--root".into(),
            hdir.join("root").display().to_string(),
            "--exec-root".into(),
            hdir.join("run").display().to_string(),
            "--cluster-store".into(),
            format!("etcd://{LAN}:2379"),
            "--cluster-advertise".into(),
            "eth0".into(),
            "--node-name".into(),
            name.to_string(),
            "--cluster-store-opt".into(),
            format!("discovery.ttl={TTL}s"),
            "--log-level".into(),
            "warn".into(),
        ];
        println!("{name}# berth {}", args.join(" "));
        // Our own binary by its path: `ip netns exec` would read /proc/self/exe as itself.
        let exe = std::fs::read_link("/proc/self/exe")?;
        let child = Command::new("ip").args(["netns", "exec", &format!("h{i}")]).arg(&exe).args(&args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
        procs.daemons.push(Some(child));
    }
    for i in 0..HOSTS.len() {
        let h = on(m, &dir, i);
        let up = within(Duration::from_secs(20), || {
            Command::new("/proc/self/exe").arg("info").env("BERTH_HOST", &h.host).output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(", connected"))
        });
        anyhow::ensure!(up.is_some(), "{} did not join the cluster: {}", HOSTS[i], std::fs::read_to_string(dir.join(HOSTS[i]).join("daemon.log")).unwrap_or_default());
    }
    let (mut a, mut b, mut c) = (on(m, &dir, 0), on(m, &dir, 1), on(m, &dir, 2));
    a.berth(&["network", "create", "-d", "overlay", "--subnet", "10.220.0.0/16", "multi"]);
    let seen = within(Duration::from_secs(5), || c.exec_ok_host(&["network", "inspect", "multi"]));
    c.check("host-c sees the network host-a made", seen.is_some());
    b.berth(&["network", "ls"]);
    a.server("web", &["--network", "multi"]);
    b.berth(&["run", "-d", "--name", "app", "--network", "multi", "--", "sleep", "1000"]);
    c.berth(&["run", "-d", "--name", "cron", "--network", "multi", "--", "sleep", "1000"]);
    let web = a.ip("web", "multi");
    // The name goes from host-a to the others through etcd in milliseconds.
    let resolved = within(Duration::from_secs(5), || b.exec_ok("app", "getent hosts web"));
    b.check(&format!("app on host-b resolves web (on host-a, {web})"), resolved.is_some());
    let r = b.tcp("app", "web", 80);
    b.expect("app (host-b) → web (host-a) by name", r, true);
    let r = c.ping("cron", "app");
    c.expect("cron (host-c) → app (host-b), ping", r, true);
    a.berth(&["node", "ls"]);
    // icc=false holds for traffic from another host; a link opens one port.
    a.berth(&["network", "create", "-d", "overlay", "--subnet", "10.221.0.0/16", "-o", "icc=false", "quiet"]);
    within(Duration::from_secs(5), || b.exec_ok_host(&["network", "inspect", "quiet"]));
    a.server("vault", &["--network", "quiet", "--expose", "80"]);
    b.berth(&["run", "-d", "--name", "snoop", "--network", "quiet", "--", "sleep", "1000"]);
    let vault = a.ip("vault", "quiet");
    let r = b.tcp("snoop", &vault, 80);
    b.expect("snoop (host-b) → vault (host-a) on an icc=false overlay", r, false);
    within(Duration::from_secs(5), || c.exec_ok_host(&["network", "inspect", "quiet"]));
    c.berth(&["run", "-d", "--name", "auditor", "--network", "quiet", "--link", "vault", "--", "sleep", "1000"]);
    let r = c.tcp("auditor", "vault", 80);
    c.expect("auditor (host-c, --link vault) → vault:80 (host-a)", r, true);
    // host-c dies: daemon killed, namespace gone.
    println!("  host-c dies: its daemon is killed and its namespace deleted");
    if let Some(mut d) = procs.daemons[2].take() {
        let _ = d.kill();
        let _ = d.wait();
    }
    sh("ip netns pids h2 | xargs -r kill -9; ip netns del h2");
    berth_linux::shim::kill_all_under(&dir.join(HOSTS[2]).join("run/containers"));
    let to_c = || String::from_utf8_lossy(&sh("ip -n h0 route show proto 183").stdout).lines().filter(|l| l.contains("via 10.90.0.3 ")).count();
    let gone = within(Duration::from_secs(TTL + 2), || to_c() == 0);
    match gone {
        Some(t) => a.check(&format!("host-a dropped host-c's routes {:.1} s later (liveness TTL {TTL} s)", t.as_secs_f64()), true),
        None => a.check("host-a dropped host-c's routes within the TTL", false),
    }
    let out = a.berth(&["node", "ls"]);
    a.check("host-a lists host-c as down", out.lines().any(|l| l.starts_with("host-c") && l.contains("down")));
    let r = b.tcp("app", "web", 80);
    b.expect("app (host-b) → web (host-a), unaffected", r, true);
    for d in [a, b, c] {
        m.failures.extend(d.failures);
    }
    drop(procs);
    Ok(())
}

impl Demo {
    /// A berth command on this host that succeeds (not shown).
    fn exec_ok_host(&self, args: &[&str]) -> bool {
        Command::new("/proc/self/exe").args(args).env("BERTH_HOST", &self.host).output().is_ok_and(|o| o.status.success())
    }
}
