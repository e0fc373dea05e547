//! `berth daemon`.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_core::config::{ConfigFile, DaemonConfig, PoolEntry};
use berth_core::subnets::AddressPool;
use clap::Args;

/// Flags mirror dockerd's; every one can also be given in the `--config` JSON
/// file under the same name (e.g. "fixed-cidr", "ip-forward",
/// "default-address-pools"). A setting in both places is an error.
#[derive(Args)]
pub struct DaemonArgs {
    /// JSON configuration file (keys as in dockerd's daemon.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// State directory (store, logs) [default: /var/lib/berth].
    #[arg(long, visible_alias = "data-root")]
    root: Option<PathBuf>,
    /// Runtime directory (socket, container files) [default: /run/berth].
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// API socket [default: EXEC_ROOT/berth.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Bridge device of the default network ("none": no default network) [default: berth0].
    #[arg(short = 'b', long)]
    bridge: Option<String>,
    /// Default bridge's address and prefix, e.g. 172.30.0.1/16.
    #[arg(long)]
    bip: Option<String>,
    /// Range of the default network containers get addresses from.
    #[arg(long)]
    fixed_cidr: Option<String>,
    /// IPv6 on the default network too (with --fixed-cidr-v6, or a /64 from the IPv6 pools).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    ipv6: Option<bool>,
    /// The default network's IPv6 subnet.
    #[arg(long)]
    fixed_cidr_v6: Option<String>,
    /// MTU of the default network [default: 1500].
    #[arg(long)]
    mtu: Option<u32>,
    /// Inter-container communication on the default network [default: true].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    icc: Option<bool>,
    /// Turn on net.ipv4.ip_forward when a network needs it [default: true].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    ip_forward: Option<bool>,
    /// Translate the host's own TCP connections to published ports once, in
    /// connect(), instead of in every packet (cgroup BPF; falls back to the
    /// nft rules where the kernel cannot) [default: true].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    socket_translation: Option<bool>,
    /// Pool for automatic subnets: base=CIDR,size=N (repeatable; IPv4 or
    /// IPv6; a family without one gets the defaults: Docker's IPv4 pools, a
    /// unique local /48 derived from the machine id split into /64s).
    #[arg(long = "default-address-pool", value_name = "base=CIDR,size=N")]
    pools: Vec<String>,
    /// Join the cluster kept in this etcd (etcd://HOST:PORT[,HOST:PORT...]):
    /// overlay networks, and macvlan networks shared by every host.
    #[arg(long, value_name = "etcd://HOST:PORT")]
    cluster_store: Option<String>,
    /// This host's address (or the interface holding it) other hosts send
    /// tunnel traffic to (a :PORT suffix, as dockerd took, is ignored).
    #[arg(long, value_name = "IP|IFACE")]
    cluster_advertise: Option<String>,
    /// KEY=VALUE (repeatable, or comma-separated): kv.cacertfile,
    /// kv.certfile, kv.keyfile (TLS to etcd), discovery.ttl (liveness,
    /// default 15s), blocks.grace (a dead host's address blocks, default 1h).
    #[arg(long = "cluster-store-opt", value_name = "KEY=VALUE", value_delimiter = ',')]
    cluster_store_opts: Vec<String>,
    /// This host's name in the cluster [default: the hostname, kept in ROOT/node.json].
    #[arg(long)]
    node_name: Option<String>,
    /// Serve Docker's network and IPAM plugin API (`docker network create
    /// -d berth --ipam-driver berth`) on this socket [default, with no
    /// PATH: /run/docker/plugins/berth.sock, where dockerd looks].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = berth_core::docker::DEFAULT_SOCKET, value_name = "PATH")]
    docker_plugin: Option<PathBuf>,
    /// dockerd's API, asked for container names [default: unix:///var/run/docker.sock].
    #[arg(long, value_name = "unix://PATH")]
    docker_host: Option<String>,
    /// Add accepts for berth's bridges to Docker's DOCKER-USER chain (so
    /// dockerd's FORWARD policy DROP does not drop berth's traffic).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    docker_user_accept: Option<bool>,
    /// Log filter (error, warn, info, debug).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn config(a: &DaemonArgs) -> Result<DaemonConfig, String> {
    let pools = a
        .pools
        .iter()
        .map(|p| AddressPool::parse(p).map(|p| PoolEntry { base: p.base.to_string(), size: p.size }))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut opts = std::collections::BTreeMap::new();
    for o in &a.cluster_store_opts {
        let (k, v) = o.split_once('=').ok_or_else(|| format!("--cluster-store-opt {o:?}: expected KEY=VALUE"))?;
        opts.insert(k.trim().to_string(), v.trim().to_string());
    }
    let flags = ConfigFile {
        root: a.root.clone(),
        exec_root: a.exec_root.clone(),
        socket: a.socket.clone(),
        bridge: a.bridge.clone(),
        bip: a.bip.clone(),
        fixed_cidr: a.fixed_cidr.clone(),
        ipv6: a.ipv6,
        fixed_cidr_v6: a.fixed_cidr_v6.clone(),
        mtu: a.mtu,
        icc: a.icc,
        ip_forward: a.ip_forward,
        socket_translation: a.socket_translation,
        default_address_pools: if pools.is_empty() { None } else { Some(pools) },
        cluster_store: a.cluster_store.clone(),
        cluster_advertise: a.cluster_advertise.clone(),
        cluster_store_opts: if opts.is_empty() { None } else { Some(opts) },
        node_name: a.node_name.clone(),
        docker_plugin: a.docker_plugin.clone(),
        docker_host: a.docker_host.clone(),
        docker_user_accept: a.docker_user_accept,
    };
    let file = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            ConfigFile::parse_json(&text).map_err(|e| e.to_string())?
        }
        None => ConfigFile::default(),
    };
    let merged = ConfigFile::merge(&flags, &file).map_err(|e| e.to_string())?;
    DaemonConfig::resolve(&merged).map_err(|e| e.to_string())
}

pub fn run(a: &DaemonArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(format!("berth={0},berth_daemon={0},berth_linux={0}", a.log_level)).unwrap_or_default())
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let cfg = match config(a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    match rt.block_on(berth_daemon::server::serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            ExitCode::from(1)
        }
    }
}
