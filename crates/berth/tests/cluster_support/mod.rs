//! Several hosts in one test: network namespaces on a shared "LAN" bridge
//! in the test's sandbox, each with its own daemon (own root, exec root,
//! socket, and mount namespace through `ip netns exec`), and one etcd from
//! Debian's etcd-server on the LAN, started and stopped by the test.
//!
//! Layout: the sandbox's own namespace is the LAN's switch and the etcd
//! machine (bridge `lan`, 10.90.0.254/24, etcd on 10.90.0.254:2379); host
//! `i` is namespace `hI` with `eth0` 10.90.0.(i+1)/24, default route via
//! 10.90.0.254, and a daemon named `host-I`.
#![allow(dead_code)]

use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::{sh, sh_out, Bg, Sandbox};

pub const ETCD: &str = "10.90.0.254:2379";
pub const LAN: &str = "10.90.0.254";

pub struct Cluster {
    /// Dropped first: containers removed, daemons stopped.
    pub hosts: Vec<Sandbox>,
    etcd: Option<Bg>,
    /// The test's sandbox: namespaces, mounts and files go with it.
    pub sb: Sandbox,
    /// Liveness TTL the daemons run with (seconds).
    pub ttl: u64,
}

/// How the daemons of a cluster run.
#[derive(Clone)]
pub struct Opts {
    pub hosts: usize,
    pub ttl: u64,
    pub grace: u64,
    /// More daemon flags for every host.
    pub extra: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts { hosts: 3, ttl: 3, grace: 120, extra: vec![] }
    }
}

impl Cluster {
    /// A LAN, etcd, and `n` hosts with running daemons; None when not root.
    pub fn new(n: usize) -> Option<Cluster> {
        Self::with(Opts { hosts: n, ..Default::default() })
    }

    pub fn with(o: Opts) -> Option<Cluster> {
        let sb = Sandbox::bare()?;
        sh("ip link set lo up && ip link add lan type bridge && ip addr add 10.90.0.254/24 dev lan && ip link set lan up");
        // Names nobody in the cluster has are forwarded to the LAN machine,
        // which refuses them at once: nothing leaves the sandbox, and a
        // lookup of a gone name fails now rather than after dig's timeout.
        let resolv = sb.dir.join("resolv.conf");
        std::fs::write(&resolv, format!("nameserver {LAN}\n")).unwrap();
        sh(&format!("mount --bind {} /etc/resolv.conf", resolv.display()));
        let mut c = Cluster { hosts: vec![], etcd: None, sb, ttl: o.ttl };
        c.start_etcd();
        for i in 0..o.hosts {
            c.add_host(i, &o);
        }
        for h in c.hosts.iter_mut() {
            h.start_daemon();
        }
        c.eventually("every host alive in the store", |c| c.hosts.iter().all(|h| h.connected()) && c.etcd_keys("/berth/v1/nodes/").len() == o.hosts);
        Some(c)
    }

    /// Host `i`'s namespace, its LAN link and its (not yet started) daemon.
    pub fn add_host(&mut self, i: usize, o: &Opts) {
        let ns = format!("h{i}");
        sh(&format!("ip netns add {ns} && ip link add lan{i} type veth peer name eth0 netns {ns} && ip link set lan{i} master lan up"));
        sh(&format!(
            "ip -n {ns} addr add 10.90.0.{}/24 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up && ip -n {ns} route add default via {LAN}",
            i + 1
        ));
        let mut extra: Vec<String> = vec![
            "--cluster-store".into(),
            format!("etcd://{ETCD}"),
            "--cluster-advertise".into(),
            "eth0".into(),
            "--node-name".into(),
            format!("host-{i}"),
            "--cluster-store-opt".into(),
            format!("discovery.ttl={}s,blocks.grace={}s", o.ttl, o.grace),
        ];
        extra.extend(o.extra.iter().cloned());
        let h = Sandbox::host(self.sb.dir.join(format!("host-{i}")), &ns, &extra);
        if i < self.hosts.len() {
            self.hosts[i] = h;
        } else {
            self.hosts.push(h);
        }
    }

    pub fn h(&self, i: usize) -> &Sandbox {
        &self.hosts[i]
    }

    /// etcd on the LAN address, its data under the test's directory;
    /// returns once it answers.
    pub fn start_etcd(&mut self) {
        let dir = self.sb.dir.join("etcd");
        let cmd = format!(
            "etcd --name e --data-dir {d} --listen-client-urls http://{ETCD} --advertise-client-urls http://{ETCD} \
             --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
             --initial-cluster e=http://127.0.0.1:2380 >>{log} 2>&1",
            d = dir.display(),
            log = self.sb.dir.join("etcd.log").display()
        );
        self.etcd = Some(Bg::spawn(&cmd));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.etcdctl_out(&["endpoint", "health"]).status.success() {
            assert!(Instant::now() < deadline, "etcd did not come up: {}", std::fs::read_to_string(self.sb.dir.join("etcd.log")).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops etcd (SIGKILL to its process group; its data stays).
    pub fn stop_etcd(&mut self) {
        self.etcd = None;
    }

    pub fn etcdctl_out(&self, args: &[&str]) -> Output {
        let mut c = std::process::Command::new("etcdctl");
        c.env("ETCDCTL_API", "3").arg("--endpoints").arg(format!("http://{ETCD}")).arg("--command-timeout=3s").args(args);
        c.output().expect("etcdctl")
    }

    pub fn etcdctl(&self, args: &[&str]) -> String {
        let o = self.etcdctl_out(args);
        assert!(o.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Keys under a prefix.
    pub fn etcd_keys(&self, prefix: &str) -> Vec<String> {
        let o = self.etcdctl_out(&["get", "--prefix", "--keys-only", prefix]);
        String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    /// The store's current revision.
    pub fn revision(&self) -> i64 {
        let out = self.etcdctl(&["get", "/", "--prefix", "--keys-only", "--limit=1", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("etcdctl json");
        v["header"]["revision"].as_i64().expect("revision")
    }

    /// Waits (bounded) until `f` holds.
    pub fn eventually(&self, what: &str, f: impl Fn(&Cluster) -> bool) {
        self.within(Duration::from_secs(15), what, f);
    }

    /// Waits at most `limit` until `f` holds; returns how long it took.
    pub fn within(&self, limit: Duration, what: &str, f: impl Fn(&Cluster) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if f(self) {
                return start.elapsed();
            }
            if start.elapsed() > limit {
                let logs: Vec<String> = self.hosts.iter().map(|h| format!("--- {} ---\n{}", h.dir.display(), tail(&h.daemon_log(), 40))).collect();
                panic!("timed out after {limit:?} waiting for: {what}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Cuts host `i` off etcd (connections refused), or restores it.
    pub fn cut_off(&self, i: usize, cut: bool) {
        let ns = format!("h{i}");
        if cut {
            sh(&format!(
                "ip netns exec {ns} nft add table inet cut && ip netns exec {ns} nft 'add chain inet cut out {{ type filter hook output priority 0; }}' \
                 && ip netns exec {ns} nft add rule inet cut out ip daddr {LAN} tcp dport 2379 reject with tcp reset"
            ));
        } else {
            sh(&format!("ip netns exec {ns} nft delete table inet cut"));
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Sandbox {
    /// Whether this host's daemon is talking to the cluster store now.
    pub fn connected(&self) -> bool {
        let o = self.berth(&["info"]);
        o.status.success() && String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("Cluster:") && l.ends_with(", connected"))
    }

    /// `dig` from a container: the answers (empty when none).
    pub fn dig(&self, from: &str, args: &str) -> Vec<String> {
        let o = self.exec(from, &format!("dig +short +tries=1 +time=2 {args}"));
        String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.starts_with(';')).map(str::to_string).collect()
    }

    /// The container's address on a network (no prefix).
    pub fn addr(&self, name: &str, net: &str) -> String {
        self.ip(name, net)
    }

    /// Routes berth made for an overlay's other hosts (protocol 183).
    pub fn tunnel_routes(&self) -> Vec<String> {
        let ns = self.netns.clone().expect("a host");
        sh(&format!("ip -n {ns} route show proto 183")).lines().map(str::to_string).collect()
    }

    /// The host's namespace name.
    pub fn ns(&self) -> String {
        self.netns.clone().expect("a host")
    }
}

/// Runs `cmd` in host `i`'s namespace.
pub fn in_host(i: usize, cmd: &str) -> Output {
    sh_out(&format!("ip netns exec h{i} {cmd}"))
}
