//! `berth bench-cni`: berth as a CNI plugin against the reference plugins
//! (bridge + host-local, + portmap for ports), in the same run and the same
//! private sandbox, each exec'd as a runtime execs it (CNI_* environment,
//! configuration on stdin; the reference chain is bridge, which execs
//! host-local, then portmap with bridge's result as prevResult). Times are
//! from spawn to exit of every process of the chain: what the runtime sees.
//! Samples alternate between the two so drift hits both alike.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::bench::{ms, sh, stats};
use crate::local::LocalDaemon;

#[derive(clap::Args)]
pub struct BenchCniArgs {
    /// Samples per operation and engine.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Port mappings in the many-ports ADD (one entry each, as runtimes send them).
    #[arg(long, default_value_t = 100)]
    ports: u16,
    /// Where the reference plugins are.
    #[arg(long, default_value = "/usr/lib/cni")]
    cni_dir: PathBuf,
}

pub fn run(a: &BenchCniArgs) -> ExitCode {
    crate::local::run_sandboxed("bench-cni", || async { bench(a).await.map(|()| 0) })
}

/// Execs one plugin; (ms from spawn to exit, stdout).
fn exec(bin: &Path, command: &str, id: &str, ns: &str, path: &Path, env: &[(&str, String)], conf: &Value) -> Result<(f64, Value)> {
    let mut c = Command::new(bin);
    c.env("CNI_COMMAND", command).env("CNI_CONTAINERID", id).env("CNI_NETNS", format!("/run/netns/{ns}")).env("CNI_IFNAME", "eth0").env("CNI_ARGS", "").env("CNI_PATH", path);
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str()))).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let input = serde_json::to_vec(conf)?;
    let t = Instant::now();
    let mut child = c.spawn().with_context(|| format!("starting {}", bin.display()))?;
    let _ = child.stdin.take().expect("piped").write_all(&input);
    let out = child.wait_with_output()?;
    let elapsed = ms(t);
    if !out.status.success() {
        bail!("{} {command} {id}: {} {}", bin.display(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok((elapsed, serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)))
}

fn mappings(n: u16, spread: bool) -> Value {
    // Consecutive host and container ports (runtimes expand a range like
    // this), or scattered ones that cannot be joined into a range.
    json!((0..n).map(|i| if spread { json!({"hostPort": 30000 + 2 * i, "containerPort": 1000 + 3 * i, "protocol": "tcp"}) } else { json!({"hostPort": 20000 + i, "containerPort": 20000 + i, "protocol": "tcp"}) }).collect::<Vec<_>>())
}

struct Engines {
    dir: PathBuf,
    cni: PathBuf,
    me: PathBuf,
    /// BERTH_HOST and BERTH_ROOT of the bench's daemon, as a plugin finds
    /// the default ones (the store's presence spares DEL a probe).
    host: Vec<(&'static str, String)>,
}

impl Engines {
    fn bridge(&self) -> Value {
        json!({"cniVersion": "1.0.0", "name": "refbench", "type": "bridge", "bridge": "bthcniref0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
               "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.91.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.dir.join("ipam")}})
    }

    fn portmap(ports: &Value, prev: &Value) -> Value {
        json!({"cniVersion": "1.0.0", "name": "refbench", "type": "portmap", "capabilities": {"portMappings": true}, "snat": true, "runtimeConfig": {"portMappings": ports}, "prevResult": prev})
    }

    fn berth_conf(ports: Option<&Value>) -> Value {
        let mut c = json!({"cniVersion": "1.0.0", "name": "berthbench", "type": "berth", "subnet": "10.92.0.0/16", "capabilities": {"portMappings": true}});
        if let Some(p) = ports {
            c["runtimeConfig"] = json!({"portMappings": p});
        }
        c
    }

    /// The reference chain's ADD: (total ms, bridge's result).
    fn ref_add(&self, ns: &str, ports: Option<&Value>) -> Result<(f64, Value)> {
        let (t, r) = exec(&self.cni.join("bridge"), "ADD", ns, ns, &self.cni, &[], &self.bridge())?;
        let mut total = t;
        if let Some(p) = ports {
            total += exec(&self.cni.join("portmap"), "ADD", ns, ns, &self.cni, &[], &Self::portmap(p, &r))?.0;
        }
        Ok((total, r))
    }

    fn ref_del(&self, ns: &str, ports: Option<&Value>, result: &Value) -> Result<f64> {
        let mut total = 0.0;
        if let Some(p) = ports {
            total += exec(&self.cni.join("portmap"), "DEL", ns, ns, &self.cni, &[], &Self::portmap(p, result))?.0;
        }
        Ok(total + exec(&self.cni.join("bridge"), "DEL", ns, ns, &self.cni, &[], &self.bridge())?.0)
    }

    fn berth(&self, command: &str, ns: &str, ports: Option<&Value>) -> Result<f64> {
        Ok(exec(&self.me, command, ns, ns, &self.cni, &self.host, &Self::berth_conf(ports))?.0)
    }
}

/// Waits (at most 20 s) until under 10% of the CPUs are busy over a
/// quarter of a second: creating the namespaces leaves the kernel busy for
/// a while, and what it defers would be billed to whichever engine runs first.
fn quiet() {
    let ticks = || -> (u64, u64) {
        let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = s.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        (v.iter().sum::<u64>() - idle, v.iter().sum())
    };
    let t = Instant::now();
    while t.elapsed().as_secs() < 20 {
        let (b0, t0) = ticks();
        std::thread::sleep(std::time::Duration::from_millis(250));
        let (b1, t1) = ticks();
        if t1 > t0 && ((b1 - b0) as f64) < 0.10 * (t1 - t0) as f64 {
            return;
        }
    }
    println!("(the machine did not get quiet within 20 s: other work is running, figures are noisier)");
}

fn line(label: &str, reference: &[f64], ours: &[f64], target: &str, ok: bool) {
    let (r, _) = stats(reference);
    let (b, bp) = stats(ours);
    let ratio = if reference.is_empty() { "-".to_string() } else { format!("{:.3}", b / r) };
    let rs = if reference.is_empty() { "-".to_string() } else { format!("{r:.2}") };
    println!("{label:<44} {:>4} {rs:>10} {b:>9.2} {bp:>9.2} {ratio:>7}  {target} {}", ours.len(), if ok { "met" } else { "MISSED" });
}

async fn bench(a: &BenchCniArgs) -> Result<()> {
    for p in ["bridge", "host-local", "portmap"] {
        if !a.cni_dir.join(p).exists() {
            bail!("{}/{p} not found: install containernetworking-plugins (or give --cni-dir)", a.cni_dir.display());
        }
    }
    let k = a.samples.max(1);
    let d = LocalDaemon::start(&["--log-level", "warn"]).await?;
    let e = Engines { dir: d.dir.clone(), cni: a.cni_dir.clone(), me: std::env::current_exe()?, host: vec![("BERTH_HOST", d.host_env()), ("BERTH_ROOT", d.dir.join("root").display().to_string())] };
    let version = Command::new("dpkg-query").args(["-W", "-f=${Version}", "containernetworking-plugins"]).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    println!("berth bench-cni: berth (\"type\": \"berth\") against bridge + host-local [+ portmap] {version} ({}), in a private network namespace; {} CPUs", a.cni_dir.display(), std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1));
    println!("(ms from spawn to exit of the plugin processes, as a runtime sees a call; samples alternate between the two)\n");
    let n = 3 * k + 4;
    let batch: String = (0..n).flat_map(|i| [format!("netns add br{i}\n"), format!("netns add bb{i}\n")]).collect();
    let mut p = Command::new("ip").args(["-batch", "-"]).stdin(Stdio::piped()).spawn()?;
    p.stdin.as_mut().unwrap().write_all(batch.as_bytes())?;
    p.wait()?;
    quiet();
    // First ADDs (bridge and network creation, iptables chains) are not measured.
    let anchor = e.ref_add("br0", None)?.1;
    e.berth("ADD", "bb0", None)?;
    let (mut r_add, mut b_add, mut r_port, mut b_port) = (vec![], vec![], vec![], vec![]);
    // DEL of plain attachments and of those with a port, each engine.
    let (mut r_del, mut b_del, mut r_delp, mut b_delp) = (vec![], vec![], vec![], vec![]);
    let mut ref_results = Vec::new();
    for i in 1..=k {
        let (t, r) = e.ref_add(&format!("br{i}"), None)?;
        r_add.push(t);
        ref_results.push((format!("br{i}"), None, r));
        b_add.push(e.berth("ADD", &format!("bb{i}"), None)?);
    }
    for j in 0..k {
        let i = k + 1 + j;
        let port = json!([{"hostPort": 40000 + j as u16, "containerPort": 80, "protocol": "tcp"}]);
        let (t, r) = e.ref_add(&format!("br{i}"), Some(&port))?;
        r_port.push(t);
        ref_results.push((format!("br{i}"), Some(port.clone()), r));
        b_port.push(e.berth("ADD", &format!("bb{i}"), Some(&port))?);
    }
    for (ns, ports, r) in &ref_results {
        let (rd, bd) = if ports.is_some() { (&mut r_delp, &mut b_delp) } else { (&mut r_del, &mut b_del) };
        rd.push(e.ref_del(ns, ports.as_ref(), r)?);
        bd.push(e.berth("DEL", &ns.replacen("br", "bb", 1), ports.as_ref())?);
    }
    // Many ports: consecutive (joined into one range by berth) and
    // scattered (one spec each); the reference once per kind (slow).
    let (mut r_many, mut b_many, mut b_spread) = (vec![], vec![], vec![]);
    for spread in [false, true] {
        let pm = mappings(a.ports, spread);
        let ns = format!("br{}", 2 * k + 1 + spread as usize);
        if !spread {
            let (t, r) = e.ref_add(&ns, Some(&pm))?;
            r_many.push(t);
            e.ref_del(&ns, Some(&pm), &r)?;
        }
        for s in 0..k.min(10) {
            let bns = format!("bb{}", 2 * k + 1 + s);
            let t = e.berth("ADD", &bns, Some(&pm))?;
            if spread {
                b_spread.push(t)
            } else {
                b_many.push(t)
            }
            e.berth("DEL", &bns, Some(&pm))?;
        }
    }
    e.ref_del("br0", None, &anchor)?;
    e.berth("DEL", "bb0", None)?;
    println!("{:<44} {:>4} {:>10} {:>9} {:>9} {:>7}  target", "operation", "n", "reference", "berth", "berth p95", "ratio");
    let ratio = |b: &[f64], r: &[f64]| stats(b).0 / stats(r).0;
    line("ADD (bridge+host-local / berth)", &r_add, &b_add, "<= 0.15x", ratio(&b_add, &r_add) <= 0.15);
    line("ADD with one port mapping (+portmap)", &r_port, &b_port, "<= 0.15x", ratio(&b_port, &r_port) <= 0.15);
    line("DEL (bridge+host-local / berth)", &r_del, &b_del, "<= 0.05x", ratio(&b_del, &r_del) <= 0.05);
    line("DEL with one port mapping (portmap first)", &r_delp, &b_delp, "<= 0.05x", ratio(&b_delp, &r_delp) <= 0.05);
    line(&format!("ADD with {} port mappings, consecutive", a.ports), &r_many, &b_many, "<= 10 ms", stats(&b_many).0 <= 10.0);
    line(&format!("ADD with {} port mappings, scattered", a.ports), &[], &b_spread, "<= 10 ms", stats(&b_spread).0 <= 10.0);
    if let Some(r) = r_many.first() {
        println!("  the reference's {}-mapping ADD: {:.0} ms = {:.2} ms per mapping (portmap adds iptables rules one by one)", a.ports, r, r / a.ports as f64);
    }
    d.shutdown().await;
    let _ = sh("for n in $(ip netns list | cut -d' ' -f1); do ip netns del $n; done; ip link del bthcniref0 2>/dev/null; true");
    Ok(())
}
