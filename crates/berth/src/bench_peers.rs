//! The peers in `berth bench`: the same operations berth's bench measures —
//! attach without and with one published port, detach, publishing a port
//! range — done by the engines berth replaces, when they are installed
//! (`scripts/install-peers.sh`), in the same run and the same sandbox:
//!
//! - netavark (podman's network tool): `netavark --config DIR setup|teardown
//!   /run/netns/NS` with the container's options as JSON on stdin; its
//!   iptables firewall driver.
//! - the CNI reference plugins bridge + host-local (+ portmap for ports),
//!   invoked directly as a runtime does (CNI_* environment, configuration on
//!   stdin, bridge's result as portmap's prevResult).
//! - docker-proxy, the process Docker starts for every published port.
//!
//! Each peer removes everything it created — namespaces, bridges, iptables
//! rules and chains, nft tables iptables-nft made, processes, files — also
//! when it fails half-way (the `Guard`s below), and a failing peer does not
//! stop the others. All of it happens inside the bench's private network
//! namespace: the host's network is never touched.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::bench::{forks, ms, row, sh};

pub(crate) struct PeerArgs {
    /// Samples per operation (as berth's: containers 1-20, 20 with a port).
    pub samples: usize,
    /// The port range published in one call by berth (netavark has ranges too).
    pub range: u16,
    /// Ports for the peers without ranges (CNI portmap, docker-proxy).
    pub ports: usize,
    /// Rounds of iperf3 through a docker-proxy (0: none).
    pub throughput_rounds: usize,
}

const NETAVARK: &[&str] = &["/usr/lib/podman/netavark", "/usr/libexec/podman/netavark"];
const CNI_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];
const DOCKER_PROXY: &[&str] = &["/usr/sbin/docker-proxy", "/usr/bin/docker-proxy", "/usr/libexec/docker/docker-proxy"];

/// Host ports for the one-port attaches (as berth's bench) and the ranges.
const ONE_PORT_BASE: u16 = 40000;
const RANGE_BASE: u16 = 20000;

pub(crate) fn run(a: &PeerArgs) {
    println!("\npeers (same operations, same run; latencies in ms, each peer invoked as its engine invokes it)");
    println!("{:<58} {:>5} {:>10} {:>10}", "operation", "n", "median", "p95");
    let k = a.samples.max(1);
    let nft_before = nft_tables();

    match NETAVARK.iter().map(Path::new).find(|p| p.exists()) {
        None => println!("netavark: not installed ({}), skipped", NETAVARK[0]),
        Some(bin) => {
            let version = output(Command::new(bin).arg("--version")).unwrap_or_else(|_| "netavark (unknown version)".into());
            let ipt = output(Command::new("iptables").arg("--version")).unwrap_or_else(|_| "no iptables".into());
            println!("{} ({}, setup/teardown, iptables firewall driver: {})", version.trim(), bin.display(), ipt.trim());
            if let Err(e) = netavark(bin, k, a.range) {
                println!("  netavark: stopped: {e:#}");
            }
        }
    }

    match CNI_DIRS.iter().map(Path::new).find(|d| ["bridge", "host-local", "portmap"].iter().all(|p| d.join(p).exists())) {
        None => println!("CNI plugins: not installed ({}/{{bridge,host-local,portmap}}), skipped", CNI_DIRS[0]),
        Some(dir) => {
            let version = deb_version("containernetworking-plugins").map(|v| format!("containernetworking-plugins {v}")).unwrap_or_else(|| "CNI plugins (unknown version)".into());
            println!("{version} ({}/bridge + host-local [+ portmap], invoked directly, no cnitool)", dir.display());
            if let Err(e) = cni(dir, k, a.ports) {
                println!("  CNI: stopped: {e:#}");
            }
        }
    }

    match DOCKER_PROXY.iter().map(Path::new).find(|p| p.exists()) {
        None => println!("docker-proxy: not installed ({}, Debian package docker.io), skipped", DOCKER_PROXY[0]),
        Some(bin) => {
            let version = deb_version("docker.io").map(|v| format!("docker-proxy of docker.io {v}")).unwrap_or_else(|| "docker-proxy (unknown version)".into());
            println!("{version} ({}, started as dockerd starts it: one process per port, waiting for its ready signal)", bin.display());
            if let Err(e) = docker_proxy(bin, a.ports, a.throughput_rounds) {
                println!("  docker-proxy: stopped: {e:#}");
            }
        }
    }

    let left = leftovers(&nft_before);
    if left.is_empty() {
        println!("(sandbox checked after the peers: no namespace, link, iptables rule, nft table, process or file of theirs left)");
    } else {
        println!("peers LEFT BEHIND in the sandbox (removed with it at exit): {}", left.join("; "));
    }
}

/// Names and ids of this process's children (none should be left).
fn children() -> String {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let Some((head, tail)) = stat.rsplit_once(')') else { continue };
        if tail.split_whitespace().nth(1) == Some(me.as_str()) {
            out.push(format!("{})", head.trim()));
        }
    }
    out.join(" ")
}

/// What the peer runs left in the sandbox, if anything.
fn leftovers(nft_before: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    let links = sh("ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^bthp' || true").unwrap_or_default();
    let netns = sh("ip netns list | cut -d' ' -f1 | grep -E '^bp' || true").unwrap_or_default();
    let rules = sh("{ iptables-save; ip6tables-save; } 2>/dev/null | grep -E '^(-A|:)' | grep -E 'NETAVARK|CNI-' || true").unwrap_or_default();
    let procs = children();
    let files = sh("ls -d /tmp/berth-peer-* 2>/dev/null || true").unwrap_or_default();
    for (what, s) in [("links", links), ("namespaces", netns), ("iptables", rules), ("processes", procs), ("files", files)] {
        if !s.trim().is_empty() {
            left.push(format!("{what}: {}", s.split_whitespace().collect::<Vec<_>>().join(" ")));
        }
    }
    let tables: Vec<String> = nft_tables().into_iter().filter(|t| !nft_before.contains(t)).collect();
    if !tables.is_empty() {
        left.push(format!("nft tables: {}", tables.join(", ")));
    }
    left
}

fn single(label: &str, v: f64) {
    println!("{label:<58} {:>5} {v:>10.3} {:>10}", 1, "-");
}

fn output(cmd: &mut Command) -> Result<String> {
    let o = cmd.stdin(Stdio::null()).output().with_context(|| format!("{:?}", cmd.get_program()))?;
    if !o.status.success() {
        bail!("{:?}: {}", cmd.get_program(), String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn deb_version(pkg: &str) -> Option<String> {
    output(Command::new("dpkg-query").args(["-W", "-f=${Version}", pkg])).ok().filter(|v| !v.trim().is_empty())
}

/// Runs `cmd` with `input` on stdin and returns (milliseconds from spawn to
/// exit, stdout); a non-zero exit is an error carrying stderr and stdout.
fn timed(cmd: &mut Command, input: &[u8]) -> Result<(f64, Vec<u8>)> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {:?}", cmd.get_program()))?;
    // The peers read all of stdin before they write; a write error means the
    // program exited early, which its status tells.
    let _ = child.stdin.take().expect("piped stdin").write_all(input);
    let out = child.wait_with_output()?;
    let elapsed = ms(t);
    if !out.status.success() {
        bail!(
            "{:?} {:?}: {}: {} {}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok((elapsed, out.stdout))
}

/// Deletes every iptables/ip6tables rule whose text matches the regex, then
/// flushes and deletes the chains whose name matches it (the bench's sandbox
/// only: all of this runs in its network namespace).
const IPT_REMOVE: &str = r#"
re="$1"
for ipt in iptables ip6tables; do
  command -v "$ipt-save" >/dev/null 2>&1 || continue
  for t in nat filter mangle raw; do
    "$ipt-save" -t $t 2>/dev/null | grep -E '^-A ' | grep -E -- "$re" | sed 's/^-A /-D /' | while read -r rule; do
      eval "$ipt -t $t $rule" 2>/dev/null
    done
    chains=$("$ipt-save" -t $t 2>/dev/null | grep -E '^:' | cut -d' ' -f1 | tr -d ':' | grep -E -- "$re")
    for c in $chains; do "$ipt" -t $t -F "$c" 2>/dev/null; done
    for c in $chains; do "$ipt" -t $t -X "$c" 2>/dev/null; done
  done
done
exit 0
"#;

fn nft_tables() -> Vec<String> {
    output(Command::new("nft").args(["list", "tables"])).map(|s| s.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()).unwrap_or_default()
}

/// What a peer run created in the sandbox, removed on drop whatever happened.
struct Guard {
    dir: PathBuf,
    netns: Vec<String>,
    links: Vec<String>,
    /// Regex of the iptables rules and chains the peer makes.
    ipt: &'static str,
    nft_before: Vec<String>,
    children: Vec<Child>,
}

impl Guard {
    fn new(tag: &str, ipt: &'static str) -> Result<Guard> {
        let out = output(Command::new("mktemp").args(["-d", &format!("/tmp/berth-peer-{tag}.XXXXXX")]))?;
        Ok(Guard { dir: PathBuf::from(out.trim()), netns: Vec::new(), links: Vec::new(), ipt, nft_before: nft_tables(), children: Vec::new() })
    }

    fn netns_add(&mut self, name: &str) -> Result<String> {
        sh(&format!("ip netns add {name}"))?;
        self.netns.push(name.to_string());
        Ok(format!("/run/netns/{name}"))
    }

    fn netns_del(&mut self, name: &str) {
        let _ = sh(&format!("ip netns del {name}"));
        self.netns.retain(|n| n != name);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
        for n in &self.netns {
            let _ = sh(&format!("ip netns del {n}"));
        }
        for l in &self.links {
            let _ = sh(&format!("ip link show {l} >/dev/null 2>&1 && ip link del {l}"));
        }
        if !self.ipt.is_empty() {
            let _ = Command::new("bash").args(["-c", IPT_REMOVE, "ipt-remove", self.ipt]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        // Tables iptables-nft created for this peer (nat, filter, ...).
        for t in nft_tables() {
            if !self.nft_before.contains(&t) {
                let _ = Command::new("nft").args(["delete", "table"]).args(t.split_whitespace().skip(1)).stderr(Stdio::null()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- netavark

const NV_BRIDGE: &str = "bthpnv0";

struct Netavark<'a> {
    bin: &'a Path,
    /// Attached containers: namespace name and the options they were set up with.
    attached: Vec<(String, Value)>,
    g: Guard,
}

impl Netavark<'_> {
    fn opts(&self, name: &str, idx: u32, ip: &str, ports: Value) -> Value {
        json!({
            "container_id": format!("{:064x}", 0xb0e0000u64 + idx as u64),
            "container_name": name,
            "port_mappings": ports,
            "networks": { "bthpeer": { "static_ips": [ip], "interface_name": "eth0" } },
            "network_info": { "bthpeer": {
                "name": "bthpeer",
                "id": format!("{:064x}", 0xb0e7u64),
                "driver": "bridge",
                "network_interface": NV_BRIDGE,
                "subnets": [ { "subnet": "10.89.0.0/16", "gateway": "10.89.255.254" } ],
                "ipv6_enabled": false, "internal": false, "dns_enabled": false,
                "ipam_options": { "driver": "host-local" }
            } }
        })
    }

    fn call(&self, verb: &str, ns: &str, opts: &Value) -> Result<f64> {
        let input = serde_json::to_vec(opts)?;
        let (t, _) = timed(Command::new(self.bin).arg("--config").arg(self.g.dir.join("config")).arg(verb).arg(format!("/run/netns/{ns}")), &input)?;
        Ok(t)
    }

    /// A fresh namespace (not timed), then `netavark setup` (timed).
    fn setup(&mut self, ns: &str, idx: u32, ip: &str, ports: Value) -> Result<f64> {
        self.g.netns_add(ns)?;
        let opts = self.opts(ns, idx, ip, ports);
        let t = self.call("setup", ns, &opts).with_context(|| format!("netavark setup {ns}"))?;
        self.attached.push((ns.to_string(), opts));
        Ok(t)
    }

    /// `netavark teardown` (timed), then the namespace goes (not timed).
    fn teardown(&mut self, ns: &str) -> Result<f64> {
        let i = self.attached.iter().position(|(n, _)| n == ns).context("not attached")?;
        let (_, opts) = self.attached.remove(i);
        let t = self.call("teardown", ns, &opts).with_context(|| format!("netavark teardown {ns}"))?;
        self.g.netns_del(ns);
        Ok(t)
    }
}

impl Drop for Netavark<'_> {
    fn drop(&mut self) {
        for (ns, opts) in std::mem::take(&mut self.attached).into_iter().rev() {
            let _ = self.call("teardown", &ns, &opts);
        }
    }
}

fn one_port(container_port: u16, host_port: u16) -> Value {
    json!([{ "host_ip": "", "container_port": container_port, "host_port": host_port, "range": 1, "protocol": "tcp" }])
}

fn netavark(bin: &Path, k: usize, range: u16) -> Result<()> {
    let mut g = Guard::new("netavark", "NETAVARK")?;
    g.links.push(NV_BRIDGE.into());
    std::fs::create_dir_all(g.dir.join("config"))?;
    let mut nv = Netavark { bin, attached: Vec::new(), g };

    // An anchor container keeps the bridge and the chains warm, as berth's
    // network exists before its first attach.
    nv.setup("bpnvanc", 9999, "10.89.200.1", json!([]))?;
    let mut plain = Vec::new();
    for i in 0..k {
        let ns = format!("bpnv{i}");
        plain.push(nv.setup(&ns, i as u32, &format!("10.89.0.{}", i + 2), json!([]))?);
        if i == 0 {
            let a = sh(&format!("ip -n {ns} -4 -o addr show eth0"))?;
            anyhow::ensure!(a.contains("10.89.0.2/16"), "netavark setup gave no address: {a}");
        }
    }
    row(&format!("netavark setup, containers 1-{k} (+ anchor)"), &plain);
    let mut ported = Vec::new();
    for j in 0..k {
        let ns = format!("bpnv{}", k + j);
        ported.push(nv.setup(&ns, (k + j) as u32, &format!("10.89.1.{}", j + 2), one_port(80, ONE_PORT_BASE + j as u16))?);
    }
    row(&format!("netavark setup with one published port ({}-{} present)", k + 1, 2 * k), &ported);
    let mut down = Vec::new();
    for i in 0..2 * k {
        down.push(nv.teardown(&format!("bpnv{i}"))?);
    }
    row(&format!("netavark teardown (detach), all {}", 2 * k), &down);

    let range = range.min(u16::MAX - RANGE_BASE + 1);
    let ports = json!([{ "host_ip": "", "container_port": RANGE_BASE, "host_port": RANGE_BASE, "range": range, "protocol": "tcp" }]);
    let f0 = forks();
    let t = nv.setup("bpnvrange", 9998, "10.89.200.2", ports)?;
    let f = forks() - f0;
    single(&format!("netavark publish a {range}-port range (one setup)"), t);
    println!("{:<58} {:>5} {:>10}", "  processes started meanwhile (whole machine)", "", f);
    nv.teardown("bpnvrange")?;
    Ok(())
}

// ---------------------------------------------------------------- CNI

const CNI_BRIDGE: &str = "bthpcni0";

struct CniAttached {
    ns: String,
    /// bridge's result (portmap's prevResult).
    result: Value,
    /// portmap's runtimeConfig.portMappings, when ports were published.
    ports: Option<Value>,
}

struct Cni<'a> {
    dir: &'a Path,
    attached: Vec<CniAttached>,
    g: Guard,
}

impl Cni<'_> {
    fn bridge_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": "bthpeer", "type": "bridge", "bridge": CNI_BRIDGE,
            "isGateway": true, "ipMasq": true, "hairpinMode": true,
            "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.90.0.0/16" }]],
                      "routes": [{ "dst": "0.0.0.0/0" }], "dataDir": self.g.dir.join("ipam") }
        })
    }

    fn portmap_conf(ports: &Value, prev: &Value) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": "bthpeer", "type": "portmap",
            "capabilities": { "portMappings": true }, "snat": true,
            "runtimeConfig": { "portMappings": ports }, "prevResult": prev
        })
    }

    fn plugin(&self, command: &str, ns: &str, plugin: &str, conf: &Value) -> Result<(f64, Vec<u8>)> {
        let input = serde_json::to_vec(conf)?;
        timed(
            Command::new(self.dir.join(plugin))
                .env("CNI_COMMAND", command)
                .env("CNI_CONTAINERID", format!("bthpeer-{ns}"))
                .env("CNI_NETNS", format!("/run/netns/{ns}"))
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", self.dir),
            &input,
        )
        .with_context(|| format!("CNI {command} {plugin} {ns}"))
    }

    /// A fresh namespace (not timed), then ADD of the chain as a runtime runs
    /// it: bridge (+ host-local), then portmap when there are ports. Returns
    /// (whole ADD, portmap part) in ms.
    fn add(&mut self, ns: &str, ports: Option<Value>) -> Result<(f64, f64)> {
        self.g.netns_add(ns)?;
        let t = Instant::now();
        let (_, out) = self.plugin("ADD", ns, "bridge", &self.bridge_conf())?;
        let result: Value = serde_json::from_slice(&out).context("bridge's result")?;
        self.attached.push(CniAttached { ns: ns.to_string(), result: result.clone(), ports: None });
        let mut pm = 0.0;
        if let Some(p) = ports {
            // Recorded first: a half-done portmap ADD is undone by its DEL.
            self.attached.last_mut().unwrap().ports = Some(p.clone());
            pm = self.plugin("ADD", ns, "portmap", &Self::portmap_conf(&p, &result))?.0;
        }
        Ok((ms(t), pm))
    }

    fn del_plugins(&self, a: &CniAttached) -> Result<()> {
        if let Some(p) = &a.ports {
            self.plugin("DEL", &a.ns, "portmap", &Self::portmap_conf(p, &a.result))?;
        }
        self.plugin("DEL", &a.ns, "bridge", &self.bridge_conf())?;
        Ok(())
    }

    /// DEL of the chain in reverse (portmap, then bridge) timed; then the
    /// namespace goes (not timed).
    fn del(&mut self, ns: &str) -> Result<f64> {
        let i = self.attached.iter().position(|a| a.ns == ns).context("not attached")?;
        let a = self.attached.remove(i);
        let t = Instant::now();
        self.del_plugins(&a)?;
        let elapsed = ms(t);
        self.g.netns_del(ns);
        Ok(elapsed)
    }
}

impl Drop for Cni<'_> {
    fn drop(&mut self) {
        for a in std::mem::take(&mut self.attached).into_iter().rev() {
            let _ = self.del_plugins(&a);
        }
    }
}

fn cni(dir: &Path, k: usize, nports: usize) -> Result<()> {
    let mut g = Guard::new("cni", "CNI-")?;
    g.links.push(CNI_BRIDGE.into());
    let mut c = Cni { dir, attached: Vec::new(), g };

    c.add("bpcnianc", None)?;
    let mut plain = Vec::new();
    for i in 0..k {
        let ns = format!("bpcni{i}");
        plain.push(c.add(&ns, None)?.0);
        if i == 0 {
            let a = sh(&format!("ip -n {ns} -4 -o addr show eth0"))?;
            anyhow::ensure!(a.contains("10.90."), "CNI ADD gave no address: {a}");
        }
    }
    row(&format!("CNI ADD bridge+host-local, containers 1-{k} (+ anchor)"), &plain);
    let mut ported = Vec::new();
    for j in 0..k {
        let pm = json!([{ "hostPort": ONE_PORT_BASE + j as u16, "containerPort": 80, "protocol": "tcp" }]);
        ported.push(c.add(&format!("bpcni{}", k + j), Some(pm))?.0);
    }
    row(&format!("CNI ADD +portmap, one published port ({}-{} present)", k + 1, 2 * k), &ported);
    let mut down = Vec::new();
    for i in 0..2 * k {
        down.push(c.del(&format!("bpcni{i}"))?);
    }
    row(&format!("CNI DEL (detach), all {}", 2 * k), &down);

    // portmap has no ranges: one mapping per port.
    let nports = nports.clamp(1, (u16::MAX - RANGE_BASE) as usize + 1);
    let pm: Vec<Value> = (0..nports).map(|i| json!({ "hostPort": RANGE_BASE as usize + i, "containerPort": RANGE_BASE as usize + i, "protocol": "tcp" })).collect();
    let f0 = forks();
    let (t, pm_ms) = c.add("bpcnirange", Some(Value::Array(pm)))?;
    let f = forks() - f0;
    single(&format!("CNI ADD +portmap with {nports} ports (no ranges: {nports} mappings)"), t);
    println!("{:<58} {:>5} {:>10}", "  processes started meanwhile (whole machine)", "", f);
    println!(
        "  measured with {nports} ports: portmap's part {:.0} ms = {:.2} ms per port (its rules are added one by one; not extrapolated)",
        pm_ms,
        pm_ms / nports as f64
    );
    c.del("bpcnirange")?;
    Ok(())
}

// ---------------------------------------------------------------- docker-proxy

/// Starts one docker-proxy as dockerd 20.10 does (portmapper.startProxy): the
/// write end of a pipe as fd 3, on which the proxy writes "0\n" once it
/// listens (or "1\n" and the error). Returns the process and the ms from
/// spawn to that signal.
fn start_proxy(bin: &Path, host_port: u16, container_ip: &str, container_port: u16) -> Result<(Child, f64)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let wfd = w.as_raw_fd();
    let mut cmd = Command::new(bin);
    cmd.args(["-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", &host_port.to_string()])
        .args(["-container-ip", container_ip, "-container-port", &container_port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if wfd == 3 {
                let fl = libc::fcntl(3, libc::F_GETFD);
                if fl < 0 || libc::fcntl(3, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
    drop(w);
    // dockerd waits 16 s for the signal.
    let mut pfd = libc::pollfd { fd: r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 16_000) };
    let mut msg = String::new();
    if n == 1 {
        let _ = std::fs::File::from(r).read_to_string(&mut msg);
    }
    let elapsed = ms(t);
    if !msg.starts_with("0\n") {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        bail!("docker-proxy for port {host_port} did not start: {}", if n == 1 { msg.trim().to_string() } else { "no ready signal within 16 s".into() });
    }
    Ok((child, elapsed))
}

/// Listening TCP sockets (IPv4 and IPv6) on ports lo..=hi.
fn listening(lo: u16, hi: u16) -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|s| s.lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[3] == "0A" && f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()).is_some_and(|p| (lo..=hi).contains(&p))
        })
        .count()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn docker_proxy(bin: &Path, nports: usize, throughput_rounds: usize) -> Result<()> {
    let mut g = Guard::new("docker-proxy", "")?;
    let nports = nports.clamp(1, (u16::MAX - RANGE_BASE) as usize + 1);
    let (lo, hi) = (RANGE_BASE, RANGE_BASE + (nports - 1) as u16);

    // Publishing a range: dockerd starts the proxies one after another, each
    // once the previous one said it listens.
    let mut each = Vec::with_capacity(nports);
    let t = Instant::now();
    for p in lo..=hi {
        let (child, elapsed) = start_proxy(bin, p, "10.94.0.2", p)?;
        g.children.push(child);
        each.push(elapsed);
    }
    let total = ms(t);
    row("docker-proxy start, one port (until it signals listening)", &each);
    single(&format!("docker-proxy publish a {nports}-port range ({nports} processes)"), total);
    let alive = g.children.iter_mut().map(|c| matches!(c.try_wait(), Ok(None))).filter(|&up| up).count();
    let rss: u64 = g.children.iter().map(|c| rss_kb(c.id())).sum();
    println!(
        "  {alive} docker-proxy processes running, {} ports listening, summed VmRSS {:.1} MiB ({:.1} MiB each)",
        listening(lo, hi),
        rss as f64 / 1024.0,
        rss as f64 / 1024.0 / nports as f64
    );
    println!("  (dockerd also adds DNAT rules per port; peers README: with its defaults it ran 2000 proxies for 1000 ports)");
    let t = Instant::now();
    for c in &g.children {
        // SAFETY: signalling our own children.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    }
    for mut c in std::mem::take(&mut g.children) {
        let _ = c.wait();
    }
    single(&format!("docker-proxy unpublish {nports} ports (SIGTERM, all exited)"), ms(t));

    if throughput_rounds > 0 {
        if let Err(e) = proxy_throughput(&mut g, bin, throughput_rounds) {
            println!("  docker-proxy throughput: skipped ({e:#})");
        }
    }
    Ok(())
}

/// iperf3 from the sandbox's host side to a server in a namespace behind a
/// bridge: straight to its address, and through one docker-proxy (what
/// berth's "via published port" figure does with DNAT).
fn proxy_throughput(g: &mut Guard, bin: &Path, rounds: usize) -> Result<()> {
    if Command::new("iperf3").arg("--version").stdout(Stdio::null()).status().is_err() {
        bail!("iperf3 not installed");
    }
    g.links.push("bthpdp0".into());
    sh("ip link add bthpdp0 type bridge && ip addr add 10.94.0.1/24 dev bthpdp0 && ip link set bthpdp0 up")?;
    g.netns_add("bpdp")?;
    sh("ip link add bthpdpv type veth peer name bthpdpc && ip link set bthpdpc netns bpdp && ip -n bpdp link set bthpdpc name eth0 && \
        ip -n bpdp addr add 10.94.0.2/24 dev eth0 && ip -n bpdp link set eth0 up && ip -n bpdp link set lo up && \
        ip -n bpdp route add default via 10.94.0.1 && ip link set bthpdpv master bthpdp0 up")?;
    let server = Command::new("ip").args(["netns", "exec", "bpdp", "taskset", "-c", "1", "iperf3", "-s", "-p", "5201"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    g.children.push(server);
    let (proxy, _) = start_proxy(bin, 15201, "10.94.0.2", 5201)?;
    g.children.push(proxy);
    std::thread::sleep(Duration::from_millis(300));
    let mut direct = || crate::bench::iperf("10.94.0.2 -p 5201");
    let mut proxied = || crate::bench::iperf("10.94.0.1 -p 15201");
    let r = &crate::bench::interleaved(rounds, &mut direct, &mut [&mut proxied])?[0];
    println!("  throughput (iperf3, {rounds} rounds of 1 s runs ordered direct, proxy, direct, proxy, direct; host -> container): direct {:>6.2} Gbit/s   via docker-proxy {:>6.2} Gbit/s   {}", r.base, r.this, r.ratio_text());
    Ok(())
}
