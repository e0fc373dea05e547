//! The `CNI_*` environment: the command, the checks the spec puts on
//! `CNI_CONTAINERID` and `CNI_IFNAME`, and `CNI_ARGS`.

use std::net::IpAddr;

use super::CniError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Result<Command, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return Err(CniError::env(&["CNI_COMMAND"], &format!("unknown CNI_COMMAND {s:?}: ADD, DEL, CHECK, STATUS, GC or VERSION"))),
        })
    }
}

/// Spec: "Must start with an alphanumeric character, optionally followed by
/// any combination of one or more alphanumeric characters, underscore (_),
/// dot (.) or hyphen (-)."
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    let b = id.as_bytes();
    if !b.is_empty() && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')) {
        Ok(())
    } else if id.is_empty() {
        Err(CniError::env(&["CNI_CONTAINERID"], "CNI_CONTAINERID is empty"))
    } else {
        Err(CniError::env(&["CNI_CONTAINERID"], &format!("{id:?} is not a container id ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")))
    }
}

/// A Linux interface name: not empty, not `.`/`..`, under 16 bytes, no
/// `/`, `:` or whitespace (the spec's rule, as skel checks it).
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let bad = name.is_empty() || name == "." || name == ".." || name.len() > 15 || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        Err(CniError::env(&["CNI_IFNAME"], &format!("{name:?} is not a valid interface name")))
    } else {
        Ok(())
    }
}

/// What berth reads from `CNI_ARGS` (`IP=`, `MAC=`, `K8S_POD_*`); every
/// other key is ignored, whatever `IgnoreUnknown` says: the conventions
/// deprecate `CNI_ARGS`, and a runtime adding a key must not break ADD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub ips: Vec<IpAddr>,
    pub mac: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
}

/// `KEY=VALUE;KEY=VALUE`: split on `;`, then on the first `=`. Malformed
/// pairs are skipped; only a bad `IP=` is an error (it was meant for us).
pub fn parse_cni_args(s: &str) -> Result<CniArgs, CniError> {
    let mut a = CniArgs::default();
    for pair in s.split(';') {
        let Some((k, v)) = pair.split_once('=') else { continue };
        let v = v.trim();
        match k.trim() {
            "IP" => {
                for ip in v.split(',').filter(|x| !x.is_empty()) {
                    let bare = ip.split_once('/').map_or(ip, |(x, _)| x);
                    a.ips.push(bare.parse().map_err(|_| CniError::new(super::code::INVALID_CONFIG, "invalid CNI_ARGS", format!("IP={ip} is not an IP address")))?);
                }
            }
            "MAC" if !v.is_empty() => a.mac = Some(v.to_string()),
            "K8S_POD_NAME" if !v.is_empty() => a.pod_name = Some(v.to_string()),
            "K8S_POD_NAMESPACE" if !v.is_empty() => a.pod_namespace = Some(v.to_string()),
            _ => {}
        }
    }
    Ok(a)
}
