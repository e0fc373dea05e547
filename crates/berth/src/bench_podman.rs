//! `berth bench-podman`: what networking costs a podman user, with berth
//! as podman's network backend and with the netavark it replaces, in the
//! same run: `podman run --rm --network N --rootfs R true` minus the same
//! with `--network none` (the rest of podman's work), for each backend.
//!
//! Real podman (Debian's 4.3, runc, conmon) in the bench's sandbox
//! (`berth_linux::podman_sandbox`): private `/run` and `/dev/shm`, a cgroup2
//! subtree removed at the end, podman's state in a temporary directory,
//! one podman installation per backend. The backends: berth (this binary
//! as `netavark`, its daemon started here), Debian's netavark 1.4, and
//! netavark 2.x when one is installed (`cargo install netavark`), all
//! without aardvark-dns. Runs alternate between the backends and between
//! `none` and `N`, so drift of the machine is billed to none of them.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use berth_linux::podman_sandbox::{private_run, CgroupTree, Podman};

use crate::bench::{ms, stats};
use crate::local::LocalDaemon;

#[derive(clap::Args)]
pub struct BenchPodmanArgs {
    /// Runs per backend and network mode.
    #[arg(long, default_value_t = 12)]
    runs: usize,
}

/// Debian's netavark, and where a `cargo install netavark` (2.x) lands.
const NETAVARK_DEBIAN: &str = "/usr/lib/podman/netavark";
const NETAVARK_2: &[&str] = &["/root/.cargo/bin/netavark", "/usr/local/bin/netavark", "/opt/netavark/bin/netavark"];

/// A backend that does nothing: answers setup with a fixed StatusBlock
/// for `benchnet` (podman checks its shape, not the address), teardown
/// with nothing.
const NULL_BACKEND: &str = r#"#!/bin/sh
cat >/dev/null
case " $* " in
*" setup "*) echo '{"benchnet":{"dns_search_domains":[],"dns_server_ips":[],"interfaces":{"eth0":{"mac_address":"02:42:0a:59:00:02","subnets":[{"gateway":"10.89.0.1","ipnet":"10.89.0.2/24"}]}}}}' ;;
esac
"#;

struct Backend {
    label: String,
    podman: Podman,
    env: Vec<(String, String)>,
    none: Vec<f64>,
    net: Vec<f64>,
}

fn version(bin: &Path) -> String {
    Command::new(bin).arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

impl Backend {
    /// Backend number `idx` gets a bridge and a subnet of its own: all
    /// backends share this namespace, and podman would name every fresh
    /// state's first network `podman1` on the same subnet, so one backend's
    /// teardown would delete the bridge another one's network is on (and
    /// that backend would pay for making it again). Networks `pad1..idx`
    /// take the lower bridge numbers (podman 4.3 has no --interface-name).
    fn new(label: String, dir: &Path, bin: &Path, env: Vec<(String, String)>, idx: usize) -> Result<Backend> {
        let podman = Podman::new(dir, bin).with_context(|| format!("podman state in {}", dir.display()))?;
        let b = Backend { label, podman, env, none: vec![], net: vec![] };
        for i in 1..=idx {
            b.podman_ok(&["network", "create", "--subnet", &format!("10.87.{i}.0/24"), &format!("pad{i}")])?;
        }
        b.podman_ok(&["network", "create", "--subnet", &format!("10.89.{idx}.0/24"), "benchnet"])?;
        Ok(b)
    }

    fn podman_ok(&self, args: &[&str]) -> Result<()> {
        let mut c = self.podman.cmd(args);
        c.envs(self.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let o = c.output()?;
        if !o.status.success() {
            bail!("{}: podman {}: {}", self.label, args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
        }
        Ok(())
    }

    /// One `podman run --rm --network NET ... true`, in ms.
    fn run(&self, network: &str) -> Result<f64> {
        let args = self.podman.run_args(&["--rm", "--network", network], &["/bin/true"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = Instant::now();
        self.podman_ok(&args)?;
        Ok(ms(t))
    }
}

pub fn run(a: &BenchPodmanArgs) -> ExitCode {
    crate::local::run_sandboxed("bench-podman", || async { bench(a).await.map(|()| 0) })
}

async fn bench(a: &BenchPodmanArgs) -> Result<()> {
    for bin in ["podman", "runc", "conmon"] {
        if !Command::new("sh").arg("-c").arg(format!("command -v {bin}")).stdout(Stdio::null()).status()?.success() {
            bail!("{bin} is not installed (Debian: apt-get install podman runc conmon busybox-static)");
        }
    }
    private_run().context("private /run and /dev/shm")?;
    let d = LocalDaemon::start(&["--log-level", "warn"]).await?;
    // podman's cleanup processes call the backend without BERTH_HOST:
    // they find the daemon where autostart looks for this namespace's.
    let ns = std::fs::metadata("/proc/thread-self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m))?;
    let auto = PathBuf::from(format!("/run/berth/ns-{ns}"));
    std::fs::create_dir_all(&auto)?;
    std::os::unix::fs::symlink(d.dir.join("run/berth.sock"), auto.join("berth.sock"))?;
    let cg = CgroupTree::create(&format!("berth-bench-{}", std::process::id()), &d.dir).context("cgroup subtree")?;
    let r = measure(a, &d).await;
    if let Err(e) = cg.remove() {
        println!("(cgroup cleanup: {e})");
    }
    d.shutdown().await;
    r
}

async fn measure(a: &BenchPodmanArgs, d: &LocalDaemon) -> Result<()> {
    let me = std::fs::read_link("/proc/self/exe")?;
    let mut backends = vec![Backend::new(format!("berth {}", env!("CARGO_PKG_VERSION")), &d.dir.join("p-berth"), &me, vec![("BERTH_HOST".into(), d.host_env())], 0)?];
    if Path::new(NETAVARK_DEBIAN).exists() {
        backends.push(Backend::new(version(Path::new(NETAVARK_DEBIAN)), &d.dir.join("p-netavark"), Path::new(NETAVARK_DEBIAN), vec![], backends.len())?);
    } else {
        println!("netavark: not installed ({NETAVARK_DEBIAN}), skipped");
    }
    match NETAVARK_2.iter().map(Path::new).find(|p| p.exists() && version(p).starts_with("netavark 2")) {
        Some(p) => backends.push(Backend::new(format!("{} ({})", version(p), p.display()), &d.dir.join("p-netavark2"), p, vec![], backends.len())?),
        None => println!("netavark 2.x: not installed (cargo install netavark), skipped"),
    }
    // podman's own share: a backend that does nothing but answer.
    let null = d.dir.join("null-netavark");
    std::fs::write(&null, NULL_BACKEND)?;
    std::fs::set_permissions(&null, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    backends.push(Backend::new("nothing (sh script with a fixed answer)".into(), &d.dir.join("p-null"), &null, vec![], backends.len())?);
    println!(
        "berth bench-podman: podman run --rm --network N --rootfs R true, minus --network none; {} runs each; {} CPUs",
        a.runs,
        std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1)
    );
    for b in &backends {
        b.run("none")?;
        b.run("benchnet")?;
    }
    for i in 0..a.runs {
        for b in backends.iter_mut() {
            // Alternate the order too, so neither mode always runs first.
            let order: [&str; 2] = if i % 2 == 0 { ["none", "benchnet"] } else { ["benchnet", "none"] };
            for mode in order {
                let t = b.run(mode)?;
                if mode == "none" { b.none.push(t) } else { b.net.push(t) }
            }
        }
    }
    println!("\n{:<44} {:>12} {:>12} {:>14}", "backend (medians, ms)", "--network N", "none", "networking");
    let mut overheads = Vec::new();
    for b in &backends {
        let ((n, _), (z, _)) = (stats(&b.net), stats(&b.none));
        // The overhead of each alternating pair, then its median.
        let diffs: Vec<f64> = b.net.iter().zip(&b.none).map(|(x, y)| x - y).collect();
        let (o, _) = stats(&diffs);
        println!("{:<44} {n:>12.1} {z:>12.1} {o:>14.1}", b.label);
        overheads.push(o);
    }
    let own = *overheads.last().expect("the do-nothing backend");
    println!("(podman's own share, with the do-nothing backend: {own:.1} ms)");
    for (i, b) in backends.iter().enumerate().skip(1).take(backends.len().saturating_sub(2)) {
        let (ratio, net) = (overheads[0] / overheads[i], (overheads[0] - own) / (overheads[i] - own));
        let verdict = if ratio <= 0.10 { "met" } else { "MISSED" };
        println!("berth's networking overhead / {}'s = {ratio:.3} (target <= 0.10: {verdict}); without podman's share: {net:.3}", b.label);
    }
    for b in &backends {
        b.podman.clean();
    }
    Ok(())
}
