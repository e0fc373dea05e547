//! The daemon's configuration: command-line flags or the same keys in a JSON
//! file (`--config`), named as in dockerd's `daemon.json`.
//!
//! As with dockerd, a setting given both as a flag and in the file is an
//! error rather than a silent precedence rule.

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
        merge_fields!(flags, file, out, root, exec_root, socket, bridge, bip, fixed_cidr, ipv6, fixed_cidr_v6, mtu, icc, ip_forward, socket_translation, default_address_pools);
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
        Ok(DaemonConfig {
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
