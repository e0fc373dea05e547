//! The daemon's configuration: command-line flags or the same keys in a JSON
//! file (`--config`), named as in dockerd's `daemon.json`.
//!
//! As with dockerd, a setting given both as a flag and in the file is an
//! error rather than a silent precedence rule.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::subnets::{parse_cidr_any, parse_subnet, AddressPool};
use crate::{CoreError, Result};

/// Every setting is optional here; [`DaemonConfig::resolve`] fills defaults.
/// Used both for the JSON file and for the flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    #[serde(alias = "data-root")]
    pub root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub bridge: Option<String>,
    pub bip: Option<String>,
    pub fixed_cidr: Option<String>,
    pub ipv6: Option<bool>,
    pub fixed_cidr_v6: Option<String>,
    pub mtu: Option<u32>,
    pub icc: Option<bool>,
    pub ip_forward: Option<bool>,
    pub socket_translation: Option<bool>,
    pub default_address_pools: Option<Vec<PoolEntry>>,
    /// `etcd://HOST:PORT[,HOST:PORT...]`: join the cluster kept there.
    pub cluster_store: Option<String>,
    /// This host's address (or interface) other hosts reach it at.
    pub cluster_advertise: Option<String>,
    /// `kv.cacertfile`, `kv.certfile`, `kv.keyfile`, `discovery.ttl`, `blocks.grace`.
    pub cluster_store_opts: Option<BTreeMap<String, String>>,
    /// This host's name in the cluster [default: the hostname].
    pub node_name: Option<String>,
    /// Serve Docker's network and IPAM plugin API on this socket
    /// (`/run/docker/plugins/berth.sock` is where dockerd looks).
    pub docker_plugin: Option<PathBuf>,
    /// dockerd's API (`unix:///var/run/docker.sock`), asked for container
    /// names: dockerd never tells a plugin a container's name.
    pub docker_host: Option<String>,
    /// Add accepts for berth's bridges to Docker's `DOCKER-USER` chain.
    pub docker_user_accept: Option<bool>,
}

/// `{"base": "172.80.0.0/16", "size": 24}` as in daemon.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    pub base: String,
    pub size: u8,
}

/// The resolved configuration the daemon runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonConfig {
    pub root: PathBuf,
    pub exec_root: PathBuf,
    pub socket: PathBuf,
    /// Bridge device of the default network; `none` disables the default network.
    pub bridge: String,
    /// Gateway address and prefix of the default network (`--bip 172.30.0.1/16`).
    pub bip: Option<IpNet>,
    pub fixed_cidr: Option<IpNet>,
    /// The default network has IPv6 too (`--ipv6`).
    pub ipv6: bool,
    /// The default network's IPv6 subnet (`--fixed-cidr-v6`); from the
    /// pools when `ipv6` is on and this is not given.
    pub fixed_cidr_v6: Option<IpNet>,
    pub mtu: u32,
    pub icc: bool,
    pub ip_forward: bool,
    /// Translate host connections to published TCP ports in `connect()`
    /// (cgroup BPF) rather than per packet (see berth_linux::bpf).
    pub socket_translation: bool,
    /// Pools the user gave (both families); the daemon adds the defaults
    /// of a family that has none (`subnets::with_default_pools`).
    pub pools: Vec<AddressPool>,
    /// Set when the host is part of a cluster.
    pub cluster: Option<ClusterConfig>,
    /// Docker's plugin API, when it is served.
    #[serde(default)]
    pub docker: Option<DockerConfig>,
}

/// `--docker-plugin` and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerConfig {
    /// The plugin socket.
    pub socket: PathBuf,
    /// dockerd's API socket (a path).
    pub docker_host: PathBuf,
    /// Accepts for berth's bridges in iptables' `DOCKER-USER` chain.
    pub user_accept: bool,
}

/// How this host joins a cluster (dockerd's `--cluster-store`,
/// `--cluster-advertise`, `--cluster-store-opt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// etcd endpoints, `HOST:PORT`.
    pub endpoints: Vec<String>,
    /// An address of this host or the name of its interface (a `:PORT`
    /// suffix, which dockerd took, is ignored).
    pub advertise: String,
    /// TLS to etcd: the CA that signed its certificate, and our client
    /// certificate and key (both or neither).
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Seconds the store keeps a host alive without hearing from it.
    pub ttl: u64,
    /// Seconds a dead host's address blocks stay its own.
    pub grace: u64,
    pub node_name: Option<String>,
}

/// Default liveness TTL: a dead host's tunnels are gone within 15 s.
pub const DEFAULT_TTL: u64 = 15;
/// Default grace of a dead host's address blocks: one hour.
pub const DEFAULT_GRACE: u64 = 3600;

/// `15`, `15s`, `2m`, `1h` as seconds.
pub fn parse_seconds(key: &str, v: &str) -> Result<u64> {
    let bad = || CoreError::InvalidConfig(format!("cluster-store-opt {key}={v}: expected seconds such as 15, 15s, 2m or 1h"));
    let (num, mult) = match v.as_bytes().last() {
        Some(b's') => (&v[..v.len() - 1], 1),
        Some(b'm') => (&v[..v.len() - 1], 60),
        Some(b'h') => (&v[..v.len() - 1], 3600),
        _ => (v, 1),
    };
    num.parse::<u64>().map_err(|_| bad())?.checked_mul(mult).ok_or_else(bad)
}

impl ClusterConfig {
    fn resolve(store: &str, advertise: Option<&str>, opts: &BTreeMap<String, String>, node_name: Option<&str>) -> Result<ClusterConfig> {
        let bad = |m: String| CoreError::InvalidConfig(m);
        let Some(list) = store.strip_prefix("etcd://") else {
            return Err(bad(format!("cluster-store {store:?}: berth's cluster store is etcd: etcd://HOST:PORT[,HOST:PORT...]")));
        };
        let endpoints: Vec<String> = list.split(',').map(|e| e.trim().trim_end_matches('/').to_string()).collect();
        for e in &endpoints {
            let ok = e.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(bad(format!("cluster-store {store:?}: {e:?} is not HOST:PORT")));
            }
        }
        let Some(adv) = advertise else {
            return Err(bad("cluster-store needs cluster-advertise: the address (or interface) other hosts reach this one at".into()));
        };
        // dockerd took IP:PORT or IFACE:PORT; the port was its API's. An
        // IPv6 address has colons of its own and is taken whole.
        let adv = match adv.rsplit_once(':') {
            Some((a, p)) if p.parse::<u16>().is_ok() && !a.contains(':') => a,
            _ => adv,
        };
        if adv.is_empty() {
            return Err(bad("cluster-advertise is empty".into()));
        }
        if adv.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(bad(format!("cluster-advertise {adv}: tunnels between hosts run over IPv4 in this release; give an IPv4 address or interface")));
        }
        let mut c = ClusterConfig {
            endpoints,
            advertise: adv.to_string(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            ttl: DEFAULT_TTL,
            grace: DEFAULT_GRACE,
            node_name: node_name.map(str::to_string),
        };
        for (k, v) in opts {
            match k.as_str() {
                "kv.cacertfile" => c.ca_file = Some(v.into()),
                "kv.certfile" => c.cert_file = Some(v.into()),
                "kv.keyfile" => c.key_file = Some(v.into()),
                "discovery.ttl" => c.ttl = parse_seconds(k, v)?,
                "blocks.grace" => c.grace = parse_seconds(k, v)?,
                _ => {
                    return Err(bad(format!(
                        "cluster-store-opt {k}: unknown (known: kv.cacertfile, kv.certfile, kv.keyfile, discovery.ttl, blocks.grace)"
                    )))
                }
            }
        }
        if c.cert_file.is_some() != c.key_file.is_some() {
            return Err(bad("cluster-store-opt: kv.certfile and kv.keyfile go together".into()));
        }
        if !(2..=3600).contains(&c.ttl) {
            return Err(bad(format!("cluster-store-opt discovery.ttl={}: between 2 s (etcd's shortest lease) and 1 h", c.ttl)));
        }
        if c.grace < c.ttl {
            return Err(bad(format!("cluster-store-opt blocks.grace={}: at least discovery.ttl ({})", c.grace, c.ttl)));
        }
        if let Some(n) = &c.node_name {
            crate::names::validate_name(n).map_err(|_| bad(format!("node-name {n:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,62}}")))?;
        }
        Ok(c)
    }

    /// Whether etcd is spoken to over TLS.
    pub fn tls(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some()
    }
}

pub const DEFAULT_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

macro_rules! merge_fields {
    ($flags:expr, $file:expr, $out:expr, $($f:ident),*) => {
        $(
            if $flags.$f.is_some() && $file.$f.is_some() {
                return Err(CoreError::InvalidConfig(format!(
                    "the following directive is specified both as a flag and in the configuration file: {}",
                    stringify!($f).replace('_', "-")
                )));
            }
            $out.$f = $flags.$f.clone().or_else(|| $file.$f.clone());
        )*
    };
}

impl ConfigFile {
    pub fn parse_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| CoreError::InvalidConfig(format!("config file: {e}")))
    }

    /// Combines flags and file; the same key in both is an error.
    pub fn merge(flags: &ConfigFile, file: &ConfigFile) -> Result<ConfigFile> {
        let mut out = ConfigFile::default();
        merge_fields!(
            flags,
            file,
            out,
            root,
            exec_root,
            socket,
            bridge,
            bip,
            fixed_cidr,
            ipv6,
            fixed_cidr_v6,
            mtu,
            icc,
            ip_forward,
            socket_translation,
            default_address_pools,
            cluster_store,
            cluster_advertise,
            cluster_store_opts,
            node_name,
            docker_plugin,
            docker_host,
            docker_user_accept
        );
        Ok(out)
    }
}

impl DaemonConfig {
    pub fn resolve(c: &ConfigFile) -> Result<DaemonConfig> {
        let exec_root = c.exec_root.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_EXEC_ROOT));
        let socket = c.socket.clone().unwrap_or_else(|| exec_root.join("berth.sock"));
        let bridge = c.bridge.clone().unwrap_or_else(|| crate::model::DEFAULT_NETWORK.to_string());
        if bridge != "none" {
            crate::request::validate_ifname(&bridge).map_err(|r| CoreError::InvalidConfig(format!("bridge: {r}")))?;
        }
        let bip = c.bip.as_deref().map(parse_cidr_any).transpose()?;
        if let Some(b) = bip {
            if b.addr() == b.network() || b.prefix_len() > 30 || b.addr().is_ipv6() {
                return Err(CoreError::InvalidConfig(format!(
                    "bip {b}: give the bridge's IPv4 address with its prefix, e.g. 172.30.0.1/16"
                )));
            }
        }
        let fixed_cidr = c.fixed_cidr.as_deref().map(parse_subnet).transpose()?;
        if let (Some(b), Some(f)) = (bip, fixed_cidr) {
            if !(b.trunc().contains(&f.network()) && b.trunc().contains(&f.broadcast())) {
                return Err(CoreError::RangeOutsideSubnet { range: f, subnet: b.trunc() });
            }
        }
        let fixed_cidr_v6 = c.fixed_cidr_v6.as_deref().map(parse_subnet).transpose()?;
        if let Some(f) = fixed_cidr_v6 {
            if f.addr().is_ipv4() {
                return Err(CoreError::InvalidConfig(format!("fixed-cidr-v6 {f}: give an IPv6 subnet, e.g. fd00:1::/64")));
            }
            crate::subnets::check_usable(&f)?;
        }
        if fixed_cidr.is_some_and(|f| f.addr().is_ipv6()) {
            return Err(CoreError::InvalidConfig("fixed-cidr takes an IPv4 range; use fixed-cidr-v6 for IPv6".into()));
        }
        if fixed_cidr_v6.is_some() && c.ipv6 != Some(true) {
            return Err(CoreError::InvalidConfig("fixed-cidr-v6 needs ipv6 (--ipv6)".into()));
        }
        let ipv6 = c.ipv6.unwrap_or(false);
        let mtu = crate::request::check_mtu(c.mtu.unwrap_or(1500), ipv6)?;
        let pools = c
            .default_address_pools
            .iter()
            .flatten()
            .map(|p| {
                let pool = AddressPool { base: parse_subnet(&p.base)?, size: p.size };
                pool.check()?;
                Ok(pool)
            })
            .collect::<Result<Vec<_>>>()?;
        let cluster = match &c.cluster_store {
            Some(store) => Some(ClusterConfig::resolve(
                store,
                c.cluster_advertise.as_deref(),
                c.cluster_store_opts.as_ref().unwrap_or(&BTreeMap::new()),
                c.node_name.as_deref(),
            )?),
            None if c.cluster_advertise.is_some() || c.cluster_store_opts.is_some() => {
                return Err(CoreError::InvalidConfig("cluster-advertise and cluster-store-opt need cluster-store".into()))
            }
            None => None,
        };
        let docker = match &c.docker_plugin {
            Some(socket) => {
                let host = c.docker_host.clone().unwrap_or_else(|| "unix:///var/run/docker.sock".into());
                let path = host.strip_prefix("unix://").ok_or_else(|| CoreError::InvalidConfig(format!("docker-host {host:?}: give unix:///PATH")))?;
                Some(DockerConfig { socket: socket.clone(), docker_host: PathBuf::from(path), user_accept: c.docker_user_accept.unwrap_or(false) })
            }
            None if c.docker_host.is_some() || c.docker_user_accept.is_some() => {
                return Err(CoreError::InvalidConfig("docker-host and docker-user-accept need docker-plugin".into()))
            }
            None => None,
        };
        Ok(DaemonConfig {
            docker,
            root: c.root.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)),
            exec_root,
            socket,
            bridge,
            bip,
            fixed_cidr,
            ipv6,
            fixed_cidr_v6,
            mtu,
            icc: c.icc.unwrap_or(true),
            ip_forward: c.ip_forward.unwrap_or(true),
            socket_translation: c.socket_translation.unwrap_or(true),
            pools,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_like_daemon_json() {
        let f = ConfigFile::parse_json(
            r#"{"data-root":"/x","bip":"172.30.0.1/16","fixed-cidr":"172.30.1.0/24","icc":false,"ip-forward":false,
                "default-address-pools":[{"base":"10.10.0.0/16","size":24}]}"#,
        )
        .unwrap();
        let c = DaemonConfig::resolve(&f).unwrap();
        assert_eq!(c.root, PathBuf::from("/x"));
        assert_eq!(c.bip.unwrap().to_string(), "172.30.0.1/16");
        assert!(!c.icc && !c.ip_forward);
        assert_eq!(c.pools.len(), 1);
        let c = DaemonConfig::resolve(&ConfigFile::parse_json(r#"{"ipv6":true,"fixed-cidr-v6":"fd00:17::/64"}"#).unwrap()).unwrap();
        assert!(c.ipv6 && c.fixed_cidr_v6.unwrap().to_string() == "fd00:17::/64");
        assert_eq!(c.socket, PathBuf::from("/run/berth/berth.sock"));
    }

    #[test]
    fn cluster_settings() {
        let f = ConfigFile::parse_json(
            r#"{"cluster-store":"etcd://10.90.0.254:2379,10.90.0.253:2379","cluster-advertise":"eth0:2376",
                "cluster-store-opts":{"discovery.ttl":"5s","blocks.grace":"2m","kv.cacertfile":"/ca.pem","kv.certfile":"/c.pem","kv.keyfile":"/k.pem"},
                "node-name":"host-a"}"#,
        )
        .unwrap();
        let c = DaemonConfig::resolve(&f).unwrap().cluster.unwrap();
        assert_eq!(c.endpoints, vec!["10.90.0.254:2379", "10.90.0.253:2379"]);
        assert_eq!((c.advertise.as_str(), c.ttl, c.grace, c.tls()), ("eth0", 5, 120, true));
        assert_eq!(c.node_name.as_deref(), Some("host-a"));
        for bad in [
            r#"{"cluster-store":"consul://10.0.0.1:8500","cluster-advertise":"eth0"}"#,
            r#"{"cluster-store":"etcd://10.0.0.1","cluster-advertise":"eth0"}"#,
            r#"{"cluster-store":"etcd://10.0.0.1:2379"}"#,
            r#"{"cluster-advertise":"eth0"}"#,
            r#"{"cluster-store":"etcd://10.0.0.1:2379","cluster-advertise":"fd00::1"}"#,
            r#"{"cluster-store":"etcd://10.0.0.1:2379","cluster-advertise":"eth0","cluster-store-opts":{"discovery.ttl":"1"}}"#,
            r#"{"cluster-store":"etcd://10.0.0.1:2379","cluster-advertise":"eth0","cluster-store-opts":{"blocks.grace":"1s"}}"#,
            r#"{"cluster-store":"etcd://10.0.0.1:2379","cluster-advertise":"eth0","cluster-store-opts":{"kv.certfile":"/c"}}"#,
            r#"{"cluster-store":"etcd://10.0.0.1:2379","cluster-advertise":"eth0","cluster-store-opts":{"other":"1"}}"#,
            r#"{"cluster-store":"etcd://10.0.0.1:2379","cluster-advertise":"eth0","node-name":"a/b"}"#,
        ] {
            let r = ConfigFile::parse_json(bad).and_then(|f| DaemonConfig::resolve(&f));
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn flag_and_file_conflict() {
        let flags = ConfigFile { icc: Some(true), ..Default::default() };
        let file = ConfigFile { icc: Some(false), mtu: Some(1400), ..Default::default() };
        assert!(ConfigFile::merge(&flags, &file).is_err());
        let flags = ConfigFile { bip: Some("10.1.0.1/24".into()), ..Default::default() };
        let m = ConfigFile::merge(&flags, &file).unwrap();
        assert_eq!((m.mtu, m.bip.as_deref()), (Some(1400), Some("10.1.0.1/24")));
    }

    #[test]
    fn bad_configs() {
        for bad in [
            r#"{"bip":"172.30.0.0/16"}"#,
            r#"{"bip":"nonsense"}"#,
            r#"{"mtu":20}"#,
            r#"{"bip":"172.30.0.1/16","fixed-cidr":"10.0.0.0/24"}"#,
            r#"{"default-address-pools":[{"base":"10.0.0.0/16","size":8}]}"#,
            r#"{"bridge":"a;b"}"#,
            r#"{"fixed-cidr-v6":"fd00::/64"}"#,
            r#"{"ipv6":true,"fixed-cidr-v6":"10.0.0.0/24"}"#,
            r#"{"ipv6":true,"fixed-cidr-v6":"fe80::/64"}"#,
            r#"{"ipv6":true,"mtu":1200}"#,
        ] {
            let r = ConfigFile::parse_json(bad).and_then(|f| DaemonConfig::resolve(&f));
            assert!(r.is_err(), "{bad}");
        }
        assert!(ConfigFile::parse_json(r#"{"unknown":1}"#).is_err());
        assert!(ConfigFile::parse_json(r#"{"icc":"yes"}"#).is_err());
    }
}
