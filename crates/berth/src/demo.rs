//! `berth demo`: the seed's story, live, in a private sandbox (own network
//! and mount namespaces: the host's network is never changed). It starts a
//! daemon, runs the same commands a user would type — printed with their
//! output — probes who reaches whom, and cleans up. Every probe states what
//! Docker's network model expects; the demo fails if reality differs.

use std::process::{Command, ExitCode, Output};

use anyhow::Result;

use crate::local::LocalDaemon;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Also print each command's full output.
    #[arg(short, long)]
    verbose: bool,
}

pub(crate) struct Demo {
    pub(crate) host: String,
    pub(crate) verbose: bool,
    pub(crate) failures: Vec<String>,
    /// Printed before each command: `$`, or `host-a$` in the cross-host part.
    pub(crate) prompt: String,
}

pub(crate) fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

impl Demo {
    pub(crate) fn section(&self, title: &str, text: &str) {
        println!("\n== {title}\n   {text}");
    }

    /// Runs a berth command as the user would, showing it.
    pub(crate) fn berth(&mut self, args: &[&str]) -> String {
        let quote = |a: &&str| match (a.contains(' '), a.contains('\'')) {
            (false, false) => a.to_string(),
            (_, false) => format!("'{a}'"),
            (_, true) => format!("\"{}\"", a.replace('"', "\\\"")),
        };
        println!("{} berth {}", self.prompt, args.iter().map(quote).collect::<Vec<_>>().join(" "));
        let o = Command::new("/proc/self/exe").args(args).env("BERTH_HOST", &self.host).output().expect("berth");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let shown: Vec<&str> = out.lines().collect();
        let limit = if self.verbose { usize::MAX } else { 12 };
        for l in shown.iter().take(limit) {
            println!("  {l}");
        }
        if shown.len() > limit {
            println!("  … ({} more lines)", shown.len() - limit);
        }
        for l in err.lines() {
            println!("  {l}");
        }
        if !o.status.success() && !args.contains(&"--expect-failure") {
            self.failures.push(format!("berth {} failed: {err}", args.join(" ")));
        }
        out
    }

    /// A probe with an expectation.
    pub(crate) fn expect(&mut self, what: &str, reached: bool, want: bool) {
        let verdict = if reached { "reachable" } else { "blocked" };
        let ok = reached == want;
        println!("  {} {what}: {verdict}{}", if ok { "✔" } else { "✘" }, if ok { "" } else { "  ← NOT AS EXPECTED" });
        if !ok {
            self.failures.push(format!("{what}: {verdict}, expected {}", if want { "reachable" } else { "blocked" }));
        }
    }

    /// A check that is not about reachability.
    pub(crate) fn check(&mut self, what: &str, ok: bool) {
        println!("  {} {what}{}", if ok { "✔" } else { "✘" }, if ok { "" } else { "  ← NOT AS EXPECTED" });
        if !ok {
            self.failures.push(what.to_string());
        }
    }

    pub(crate) fn exec_ok(&self, name: &str, cmd: &str) -> bool {
        Command::new("/proc/self/exe")
            .args(["exec", name, "--", "sh", "-c", cmd])
            .env("BERTH_HOST", &self.host)
            .output()
            .map(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty())
            .unwrap_or(false)
    }

    /// A TCP request; the answer may take its time (`-t5`: socat would
    /// otherwise give up half a second after its own input ends).
    pub(crate) fn tcp(&self, from: &str, to: &str, port: u16) -> bool {
        self.exec_ok(from, &format!("socat -t5 -T5 - TCP:{to}:{port},connect-timeout=1 </dev/null"))
    }

    /// Starts a container serving `hello from NAME` on port 80 and waits
    /// until it listens (`run -d` returns when the command has started).
    pub(crate) fn server(&mut self, name: &str, opts: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(opts);
        let script = format!("exec socat TCP6-LISTEN:80,ipv6only=0,fork,reuseaddr SYSTEM:'echo hello from {name}'");
        args.extend_from_slice(&["--", "sh", "-c", &script]);
        self.berth(&args);
        let pid = self.pid(name);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pid != 0 && !berth_linux::ports::listening_in(pid, false, 80) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub(crate) fn pid(&self, name: &str) -> u32 {
        let o = Command::new("/proc/self/exe").args(["inspect", name]).env("BERTH_HOST", &self.host).output().expect("inspect");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v[0]["State"]["Pid"].as_u64().unwrap_or(0) as u32
    }

    pub(crate) fn ping(&self, from: &str, to: &str) -> bool {
        self.exec_ok(from, &format!("ping -c1 -W1 {to} >/dev/null && echo ok"))
    }

    pub(crate) fn ip(&self, name: &str, net: &str) -> String {
        self.address(name, net, "IPAddress")
    }

    pub(crate) fn ip6(&self, name: &str, net: &str) -> String {
        self.address(name, net, "GlobalIPv6Address")
    }

    pub(crate) fn address(&self, name: &str, net: &str, field: &str) -> String {
        let o = Command::new("/proc/self/exe").args(["inspect", name]).env("BERTH_HOST", &self.host).output().expect("inspect");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v[0]["NetworkSettings"]["Networks"][net][field].as_str().unwrap_or_default().to_string()
    }
}

/// A TCP request from the sandbox (or `ip netns exec NS`), waiting for the answer.
fn probe(prefix: &str, to: &str) -> bool {
    sh(&format!("{prefix}socat -t5 -T5 - TCP:{to},connect-timeout=1 </dev/null")).status.success()
}

pub fn run(a: &DemoArgs) -> ExitCode {
    for tool in ["nft", "ip", "socat", "ping", "etcd"] {
        if sh(&format!("command -v {tool}")).stdout.is_empty() {
            eprintln!("berth demo needs `{tool}` (run ./install.sh, or apt-get install nftables iproute2 socat iputils-ping etcd-server)");
            return ExitCode::from(1);
        }
    }
    crate::local::run_sandboxed("demo", || async {
        let n = demo(a).await?;
        if n > 0 {
            eprintln!("\nberth demo: {n} expectation(s) not met");
        }
        Ok(if n == 0 { 0 } else { 1 })
    })
}

async fn demo(a: &DemoArgs) -> Result<usize> {
    println!("berth demo — Docker's container network model on netlink and nftables.");
    println!("Everything below happens in a private network namespace; the host is untouched.");
    let d = LocalDaemon::start(&["--log-level", "warn"]).await?;
    let mut m = Demo { host: d.host_env(), verbose: a.verbose, failures: vec![], prompt: "$".into() };
    // An "outside" machine wired to our sandbox host: host 10.99.0.1, outsider 10.99.0.2.
    // IPv6 too: host fd99::1, outsider fd99::2 (no DAD on the fresh links).
    for c in [
        "ip netns add outside",
        "ip link add uplink type veth peer name eth0 netns outside",
        "sysctl -qw net.ipv6.conf.uplink.accept_dad=0 && ip netns exec outside sysctl -qw net.ipv6.conf.eth0.accept_dad=0",
        "ip addr add 10.99.0.1/24 dev uplink && ip addr add fd99::1/64 dev uplink nodad && ip link set uplink up",
        "ip -n outside addr add 10.99.0.2/24 dev eth0 && ip -n outside addr add fd99::2/64 dev eth0 nodad && ip -n outside link set eth0 up && ip -n outside link set lo up",
        "ip -n outside route add default via 10.99.0.1 && ip -n outside -6 route add default via fd99::1",
    ] {
        sh(c);
    }

    m.section("1. The default bridge", "Containers get an address on bridge berth0 (like docker0) and reach each other.");
    m.berth(&["network", "ls"]);
    m.server("firstcentos", &["-p", "32768:80"]);
    m.server("secondcentos", &[]);
    m.berth(&["ps"]);
    let first = m.ip("firstcentos", "berth0");
    let r = m.ping("secondcentos", &first);
    m.expect(&format!("secondcentos → firstcentos ({first}) ping"), r, true);
    let r = m.tcp("secondcentos", &first, 80);
    m.expect("secondcentos → firstcentos:80 (the seed's curl)", r, true);

    m.section("2. Deny inter-container traffic (--icc=false)", "On a network with icc off, no container can open a connection to another.");
    m.berth(&["network", "create", "-o", "icc=false", "quiet"]);
    m.server("one", &["--network", "quiet", "--expose", "80"]);
    m.server("two", &["--network", "quiet"]);
    let (one, two) = (m.ip("one", "quiet"), m.ip("two", "quiet"));
    let r = m.tcp("two", &one, 80);
    m.expect("two → one:80", r, false);
    let r = m.ping("one", &two);
    m.expect("one → two ping", r, false);

    m.section("3. Allow one pair (--link)", "three links to one as 'firsttest': one's exposed port opens, nothing else does.");
    m.berth(&["run", "-d", "--name", "three", "--network", "quiet", "--link", "one:firsttest", "--", "sleep", "1000"]);
    m.berth(&["exec", "three", "--", "grep", "firsttest", "/etc/hosts"]);
    let r = m.tcp("three", "firsttest", 80);
    m.expect("three → firsttest:80 (by alias)", r, true);
    let r = m.tcp("three", &two, 80);
    m.expect("three → two:80", r, false);
    let three = m.ip("three", "quiet");
    let r = m.tcp("one", &three, 80);
    m.expect("one → three (no way back)", r, false);

    m.section("4. ip_forward and NAT", "berth turned on forwarding; traffic leaving a bridge is masqueraded.");
    m.berth(&["info"]);
    let mut peer = Command::new("ip")
        .args(["netns", "exec", "outside", "socat", "TCP-LISTEN:8000,fork,reuseaddr", "SYSTEM:echo you are $SOCAT_PEERADDR"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !berth_linux::ports::listening_in(peer.id(), false, 8000) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    m.berth(&["exec", "secondcentos", "--", "socat", "-t5", "-T5", "-", "TCP:10.99.0.2:8000"]);

    m.section("5. Port mapping (-p 32768:80)", "firstcentos:80 is published on host port 32768: from another machine, the host, and containers. No process per port: DNAT map elements, and the host's own TCP connections are translated once, in connect().");
    m.berth(&["port", "firstcentos"]);
    let r = probe("ip netns exec outside ", "10.99.0.1:32768");
    m.expect("outside machine → host:32768", r, true);
    let r = probe("", "127.0.0.1:32768");
    m.expect("host → 127.0.0.1:32768", r, true);
    let r = m.tcp("secondcentos", "10.99.0.1", 32768);
    m.expect("container → host address:32768 (hairpin)", r, true);
    let r = probe("ip netns exec outside ", &format!("{first}:80"));
    m.expect("outside machine → container address directly", r, false);
    m.berth(&["rules"]);

    m.section("6. Restrict source addresses", "The seed's `iptables -I docker -s ... -j DROP`, as a policy that survives restarts.");
    m.berth(&["policy", "deny", "--from", "10.99.0.2", "--to", "firstcentos:80"]);
    m.berth(&["policy", "ls"]);
    let r = probe("ip netns exec outside ", "10.99.0.1:32768");
    m.expect("outside machine (10.99.0.2) → host:32768", r, false);
    let r = probe("", "127.0.0.1:32768");
    m.expect("host → 127.0.0.1:32768", r, true);
    println!("  Someone runs `nft flush ruleset`; berth reconcile puts everything back:");
    sh("nft flush ruleset");
    m.berth(&["reconcile"]);
    let r = probe("ip netns exec outside ", "10.99.0.1:32768");
    m.expect("outside machine → host:32768 after flush + reconcile", r, false);
    let r = probe("", "127.0.0.1:32768");
    m.expect("host → 127.0.0.1:32768 after flush + reconcile", r, true);

    m.section("7. Separate networks", "Containers on different networks cannot reach each other; an internal network has no way out.");
    m.berth(&["network", "create", "--internal", "backend"]);
    m.berth(&["run", "-d", "--name", "db", "--network", "backend", "--", "sleep", "1000"]);
    let db = m.ip("db", "backend");
    let r = m.ping("secondcentos", &db);
    m.expect("secondcentos (berth0) → db (backend)", r, false);
    let r = m.exec_ok("db", "socat -t5 -T5 - TCP:10.99.0.2:8000,connect-timeout=1 </dev/null");
    m.expect("db → outside machine", r, false);

    m.section("8. Names on user-defined networks", "berth's resolver answers container names, aliases and NAME.NETWORK; the default network has none, as in Docker.");
    m.berth(&["network", "create", "app"]);
    m.berth(&["run", "-d", "--name", "api", "--network", "app", "--network-alias", "backend", "--", "sleep", "1000"]);
    m.berth(&["run", "-d", "--name", "frontend", "--network", "app", "--", "sleep", "1000"]);
    m.berth(&["exec", "frontend", "--", "cat", "/etc/resolv.conf"]);
    let api = m.ip("api", "app");
    for name in ["api", "backend", "api.app"] {
        let out = String::from_utf8_lossy(
            &Command::new("/proc/self/exe").args(["exec", "frontend", "--", "getent", "hosts", name]).env("BERTH_HOST", &m.host).output().expect("exec").stdout,
        )
        .into_owned();
        println!("  frontend$ getent hosts {name}\n    {}", out.trim());
        m.check(&format!("frontend resolves {name} to {api}"), out.split_whitespace().next() == Some(api.as_str()));
    }
    let r = m.exec_ok("secondcentos", "getent hosts api");
    m.check("secondcentos (default network) does not resolve api", !r);

    m.section("9. IPv6 (dual stack)", "A network with both families: each container gets an address of each, published ports answer over both, names resolve to both.");
    m.berth(&["network", "create", "--ipv6", "--subnet", "10.88.0.0/24", "--subnet", "fd00:88::/64", "dual"]);
    m.server("web6", &["--network", "dual", "-p", "8443:80"]);
    m.berth(&["run", "-d", "--name", "client6", "--network", "dual", "--", "sleep", "1000"]);
    m.berth(&["port", "web6"]);
    let r = probe("", "[::1]:8443");
    m.expect("host → [::1]:8443", r, true);
    let r = probe("ip netns exec outside ", "[fd99::1]:8443");
    m.expect("outside machine → [fd99::1]:8443 (IPv6)", r, true);
    let r = probe("ip netns exec outside ", "10.99.0.1:8443");
    m.expect("outside machine → 10.99.0.1:8443 (IPv4)", r, true);
    let out = String::from_utf8_lossy(
        &Command::new("/proc/self/exe").args(["exec", "client6", "--", "getent", "ahosts", "web6"]).env("BERTH_HOST", &m.host).output().expect("exec").stdout,
    )
    .into_owned();
    let addrs: std::collections::BTreeSet<&str> = out.lines().filter_map(|l| l.split_whitespace().next()).collect();
    println!("  client6$ getent ahosts web6\n    {}", addrs.iter().copied().collect::<Vec<_>>().join("\n    "));
    let (v4, v6) = (m.ip("web6", "dual"), m.ip6("web6", "dual"));
    m.check(&format!("web6 resolves to {v4} and {v6}"), addrs.contains(v4.as_str()) && addrs.contains(v6.as_str()));

    crate::demo_cluster::cross_host(&mut m).await;

    println!("\n== Cleaning up");
    d.shutdown().await;
    let _ = peer.kill();
    let _ = peer.wait();
    sh("ip netns pids outside | xargs -r kill; ip netns del outside");
    let n = m.failures.len();
    if n == 0 {
        println!("All expectations met. berth left nothing behind (the sandbox is gone with this process).");
    } else {
        for f in &m.failures {
            println!("  ✘ {f}");
        }
    }
    Ok(n)
}
