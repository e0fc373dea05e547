//! The execution configuration a runtime writes on the plugin's stdin:
//! the plugin object of the conflist with `cniVersion`, `name`,
//! `runtimeConfig` and `prevResult` inserted (spec section 3).
//!
//! Parsed by hand from a `serde_json::Value` rather than with
//! `deny_unknown_fields`, so an unknown key is reported as the spec wants
//! (code 2, key and value in the message) and a wrongly typed one names the
//! key. berth's own keys are refused when unknown; the runtime's sections
//! (`runtimeConfig`, `args`, `cni.dev/...`) keep what berth does not use,
//! as the conventions ask.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::result::CniResult;
use super::{CniError, Version, SUPPORTED_VERSIONS};

/// `ipam` with a `type`: delegated to that plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipam {
    pub plugin: String,
}

/// The well-known `dns` key (result shape) or the `dns` capability
/// (`servers`/`searches`/`options`), normalised to the result's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConf {
    pub nameservers: Vec<IpAddr>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// One `portMappings` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
}

/// One range of an `ipRanges` range set (host-local's shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRange {
    pub subnet: IpNet,
    pub range_start: Option<IpAddr>,
    pub range_end: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

/// The capability arguments berth honours (CONVENTIONS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub port_mappings: Vec<PortMapping>,
    pub ips: Vec<IpAddr>,
    pub mac: Option<String>,
    pub dns: Option<DnsConf>,
    /// Range sets: the first range of each gives the network's block of that family.
    pub ip_ranges: Vec<Vec<IpRange>>,
    /// `{"network": ["alias", ...]}`: this network's entry.
    pub aliases: Vec<String>,
}

/// A parsed berth plugin configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginConfig {
    pub version: Option<Version>,
    /// The configuration's `cniVersion` as written (errors are labelled with it).
    pub version_label: String,
    /// The CNI network name (`name`).
    pub name: String,
    /// The berth network to join (`network`, default `name`).
    pub network: String,
    pub subnets: Vec<IpNet>,
    pub gateways: Vec<IpAddr>,
    pub ip_ranges: Vec<IpNet>,
    pub bridge: Option<String>,
    pub mtu: Option<u32>,
    pub icc: Option<bool>,
    pub ip_masq: Option<bool>,
    pub internal: bool,
    pub ipv6: bool,
    pub ipam: Option<Ipam>,
    pub dns: Option<DnsConf>,
    pub runtime: RuntimeConfig,
    /// `args.cni.ips` (conventions).
    pub arg_ips: Vec<IpAddr>,
    /// `args.cni.labels` (conventions).
    pub arg_labels: Vec<(String, String)>,
    pub prev_result: Option<CniResult>,
    /// `cni.dev/valid-attachments` (or the 1.1.0 text's `cni.dev/attachments`):
    /// (containerID, ifname). None when absent, which GC must not read as "none valid".
    pub valid_attachments: Option<Vec<(String, String)>>,
    /// The whole input, for delegated plugins (they get it unchanged).
    pub raw: Value,
}

fn want_str<'a>(k: &str, v: &'a Value) -> Result<&'a str, CniError> {
    v.as_str().ok_or_else(|| CniError::config(format!("{k:?} must be a string, not {v}")))
}

fn want_bool(k: &str, v: &Value) -> Result<bool, CniError> {
    v.as_bool().ok_or_else(|| CniError::config(format!("{k:?} must be true or false, not {v}")))
}

fn want_obj<'a>(k: &str, v: &'a Value) -> Result<&'a Map<String, Value>, CniError> {
    v.as_object().ok_or_else(|| CniError::config(format!("{k:?} must be an object, not {v}")))
}

/// A string or a list of strings (`"subnet": "10.1.0.0/24"` or `["10.1.0.0/24", "fd00:1::/64"]`).
fn str_list(k: &str, v: &Value) -> Result<Vec<String>, CniError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| want_str(k, x).map(str::to_string)).collect(),
        _ => Err(CniError::config(format!("{k:?} must be a string or a list of strings, not {v}"))),
    }
}

fn parse_ip(k: &str, s: &str) -> Result<IpAddr, CniError> {
    // `ips` and `args.cni.ips` may carry a prefix ("10.1.0.5/24").
    let bare = s.split_once('/').map_or(s, |(a, _)| a);
    bare.parse().map_err(|_| CniError::config(format!("{k:?}: {s:?} is not an IP address")))
}

fn parse_net(k: &str, s: &str) -> Result<IpNet, CniError> {
    let n: IpNet = s.parse().map_err(|_| CniError::config(format!("{k:?}: {s:?} is not a CIDR such as 10.88.7.0/24")))?;
    if n.network() != n.addr() {
        return Err(CniError::config(format!("{k:?}: {s} is not a network address (did you mean {}?)", n.trunc())));
    }
    Ok(n)
}

/// A valid CNI network name (spec: alphanumeric first, then alphanumerics, `_`, `.`, `-`).
fn check_name(k: &str, s: &str, max: usize) -> Result<(), CniError> {
    let ok = !s.is_empty() && s.len() <= max && s.as_bytes()[0].is_ascii_alphanumeric() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::config(format!("{k:?}: {s:?} is not a valid name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {max} characters)")))
    }
}

fn parse_dns(k: &str, v: &Value, capability: bool) -> Result<DnsConf, CniError> {
    let o = want_obj(k, v)?;
    let mut d = DnsConf::default();
    let (ns_key, search_key) = if capability { ("servers", "searches") } else { ("nameservers", "search") };
    for (key, val) in o {
        let list = |val: &Value| -> Result<Vec<String>, CniError> {
            match val {
                Value::Null => Ok(vec![]),
                _ => val.as_array().ok_or_else(|| CniError::config(format!("\"{k}.{key}\" must be a list of strings")))?.iter().map(|x| want_str(key, x).map(str::to_string)).collect(),
            }
        };
        match key.as_str() {
            x if x == ns_key => d.nameservers = list(val)?.iter().map(|s| parse_ip(key, s)).collect::<Result<_, _>>()?,
            x if x == search_key => d.search = list(val)?,
            "options" => d.options = list(val)?,
            "domain" if !capability => d.domain = Some(want_str(key, val)?.to_string()).filter(|s| !s.is_empty()),
            // The capability's other fields belong to other plugins; the
            // well-known key is berth's to refuse.
            _ if capability => {}
            _ => return Err(CniError::unsupported(&format!("dns.{key}"), val)),
        }
    }
    Ok(d)
}

fn parse_port_mappings(v: &Value) -> Result<Vec<PortMapping>, CniError> {
    let k = "runtimeConfig.portMappings";
    let arr = v.as_array().ok_or_else(|| CniError::config(format!("{k} must be a list")))?;
    let port = |m: &Map<String, Value>, f: &str| -> Result<u16, CniError> {
        let n = m.get(f).and_then(Value::as_u64).ok_or_else(|| CniError::config(format!("{k}: every entry needs a numeric {f}")))?;
        u16::try_from(n).ok().filter(|p| *p > 0).ok_or_else(|| CniError::config(format!("{k}: {f} {n} is not a port (1-65535)")))
    };
    arr.iter()
        .map(|e| {
            let m = want_obj(k, e)?;
            let protocol = match m.get("protocol") {
                None | Some(Value::Null) => "tcp".to_string(),
                Some(p) => want_str("protocol", p)?.to_ascii_lowercase(),
            };
            if !matches!(protocol.as_str(), "tcp" | "udp") {
                return Err(CniError::config(format!("{k}: protocol {protocol:?} is not supported (berth publishes tcp and udp)")));
            }
            let host_ip = match m.get("hostIP").and_then(Value::as_str) {
                None | Some("") => None,
                Some(s) => Some(parse_ip("hostIP", s)?),
            };
            Ok(PortMapping { host_port: port(m, "hostPort")?, container_port: port(m, "containerPort")?, protocol, host_ip })
        })
        .collect()
}

fn parse_ip_ranges(v: &Value) -> Result<Vec<Vec<IpRange>>, CniError> {
    let k = "runtimeConfig.ipRanges";
    let sets = v.as_array().ok_or_else(|| CniError::config(format!("{k} must be a list of range sets")))?;
    sets.iter()
        .map(|set| {
            let set = set.as_array().ok_or_else(|| CniError::config(format!("{k}: each range set is a list")))?;
            set.iter()
                .map(|r| {
                    let m = want_obj(k, r)?;
                    let ip = |f: &str| -> Result<Option<IpAddr>, CniError> { m.get(f).and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| parse_ip(f, s)).transpose() };
                    let subnet = m.get("subnet").and_then(Value::as_str).ok_or_else(|| CniError::config(format!("{k}: every range needs a subnet")))?;
                    // host-local accepts a host address with its prefix here.
                    let subnet: IpNet = subnet.parse().map(|n: IpNet| n.trunc()).map_err(|_| CniError::config(format!("{k}: {subnet:?} is not a CIDR")))?;
                    Ok(IpRange { subnet, range_start: ip("rangeStart")?, range_end: ip("rangeEnd")?, gateway: ip("gateway")? })
                })
                .collect()
        })
        .collect()
}

fn parse_runtime(v: &Value, network: &str, name: &str) -> Result<RuntimeConfig, CniError> {
    let o = want_obj("runtimeConfig", v)?;
    let mut r = RuntimeConfig::default();
    for (k, val) in o {
        match k.as_str() {
            "portMappings" => r.port_mappings = parse_port_mappings(val)?,
            "ips" => r.ips = str_list("runtimeConfig.ips", val)?.iter().map(|s| parse_ip("runtimeConfig.ips", s)).collect::<Result<_, _>>()?,
            "mac" => r.mac = Some(want_str("runtimeConfig.mac", val)?.to_string()).filter(|m| !m.is_empty()),
            "dns" => r.dns = Some(parse_dns("runtimeConfig.dns", val, true)?),
            "ipRanges" => r.ip_ranges = parse_ip_ranges(val)?,
            "aliases" => {
                // Keyed by the runtime's network name: the CNI name (podman), or berth's.
                let m = want_obj("runtimeConfig.aliases", val)?;
                if let Some(list) = m.get(name).or_else(|| m.get(network)) {
                    r.aliases = str_list("runtimeConfig.aliases", list)?;
                }
            }
            // Capabilities of other plugins (bandwidth, deviceID, ...).
            _ => {}
        }
    }
    Ok(r)
}

fn parse_args(v: &Value, c: &mut PluginConfig) -> Result<(), CniError> {
    let Some(cni) = want_obj("args", v)?.get("cni") else { return Ok(()) };
    let cni = want_obj("args.cni", cni)?;
    if let Some(ips) = cni.get("ips") {
        c.arg_ips = str_list("args.cni.ips", ips)?.iter().map(|s| parse_ip("args.cni.ips", s)).collect::<Result<_, _>>()?;
    }
    if let Some(labels) = cni.get("labels") {
        let arr = labels.as_array().ok_or_else(|| CniError::config("args.cni.labels must be a list of {key, value}"))?;
        for l in arr {
            let (k, v) = (l.get("key").and_then(Value::as_str), l.get("value").and_then(Value::as_str));
            match (k, v) {
                (Some(k), Some(v)) if !k.is_empty() => c.arg_labels.push((k.to_string(), v.to_string())),
                _ => return Err(CniError::config(format!("args.cni.labels: {l} is not {{\"key\": ..., \"value\": ...}}"))),
            }
        }
    }
    Ok(())
}

fn parse_attachments(v: &Value) -> Result<Vec<(String, String)>, CniError> {
    let arr = v.as_array().ok_or_else(|| CniError::config("cni.dev/valid-attachments must be a list"))?;
    arr.iter()
        .map(|a| match (a.get("containerID").and_then(Value::as_str), a.get("ifname").and_then(Value::as_str)) {
            (Some(id), Some(ifn)) => Ok((id.to_string(), ifn.to_string())),
            _ => Err(CniError::config(format!("cni.dev/valid-attachments: {a} lacks containerID or ifname"))),
        })
        .collect()
}

/// Reads the version first: every later error is labelled with it, and an
/// unknown version is refused before anything else (code 1).
pub fn parse_config(bytes: &[u8]) -> Result<PluginConfig, CniError> {
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| CniError::decode(format!("network configuration on stdin: {e}")))?;
    let o = raw.as_object().ok_or_else(|| CniError::decode("network configuration on stdin is not a JSON object"))?;
    let mut c = PluginConfig { raw: raw.clone(), ..Default::default() };
    let label = match o.get("cniVersion") {
        Some(v) => want_str("cniVersion", v)?.to_string(),
        None => return Err(CniError::config("the configuration has no cniVersion")),
    };
    c.version = Version::parse(&label);
    c.version_label = label.clone();
    if c.version.is_none() {
        return Err(CniError::new(super::code::INCOMPATIBLE_VERSION, "incompatible CNI versions", format!("config is {label:?}, plugin supports {SUPPORTED_VERSIONS:?}")));
    }
    c.name = want_str("name", o.get("name").ok_or_else(|| CniError::config("the configuration has no name"))?)?.to_string();
    check_name("name", &c.name, 253)?;
    c.network = match o.get("network") {
        Some(v) => want_str("network", v)?.to_string(),
        None => c.name.clone(),
    };
    // A berth network name (stricter than CNI's: at most 63 characters).
    check_name("network", &c.network, 63)?;
    for (k, v) in o {
        match k.as_str() {
            "cniVersion" | "name" | "network" => {}
            "type" => {
                let t = want_str(k, v)?;
                if t.is_empty() || t.contains(['/', '\\']) {
                    return Err(CniError::config(format!("type {t:?} is not a plugin name")));
                }
            }
            // Runtime's and list-level keys that may reach a plugin.
            "cniVersions" | "disableCheck" | "disableGC" | "capabilities" => {}
            "runtimeConfig" => {}
            "args" => parse_args(v, &mut c)?,
            "prevResult" => c.prev_result = Some(CniResult::parse(v).map_err(|e| CniError::decode(format!("prevResult: {e}")))?),
            "cni.dev/valid-attachments" => c.valid_attachments = Some(parse_attachments(v)?),
            "cni.dev/attachments" => {
                if !o.contains_key("cni.dev/valid-attachments") {
                    c.valid_attachments = Some(parse_attachments(v)?);
                }
            }
            k if k.starts_with("cni.dev/") => {}
            "subnet" => c.subnets = str_list(k, v)?.iter().map(|s| parse_net(k, s)).collect::<Result<_, _>>()?,
            "gateway" => c.gateways = str_list(k, v)?.iter().map(|s| parse_ip(k, s)).collect::<Result<_, _>>()?,
            "ipRange" => c.ip_ranges = str_list(k, v)?.iter().map(|s| parse_net(k, s)).collect::<Result<_, _>>()?,
            "bridge" => {
                let b = want_str(k, v)?;
                crate::request::validate_ifname(b).map_err(|e| CniError::config(format!("bridge: {e}")))?;
                c.bridge = Some(b.to_string());
            }
            "mtu" => c.mtu = Some(v.as_u64().and_then(|m| u32::try_from(m).ok()).ok_or_else(|| CniError::config(format!("mtu must be a number, not {v}")))?),
            "icc" => c.icc = Some(want_bool(k, v)?),
            "ipMasq" => c.ip_masq = Some(want_bool(k, v)?),
            "internal" => c.internal = want_bool(k, v)?,
            "ipv6" => c.ipv6 = want_bool(k, v)?,
            "dns" => c.dns = Some(parse_dns(k, v, false)?),
            "ipam" => {
                let m = want_obj(k, v)?;
                match m.get("type") {
                    Some(t) => {
                        let t = want_str("ipam.type", t)?;
                        if t.is_empty() || t.contains(['/', '\\']) || t == "." || t == ".." {
                            return Err(CniError::config(format!("ipam.type {t:?} is not a plugin name")));
                        }
                        c.ipam = Some(Ipam { plugin: t.to_string() });
                    }
                    // Without a type there is nothing to delegate to, and berth's
                    // own IPAM takes no options here.
                    None => {
                        if let Some((key, val)) = m.iter().next() {
                            return Err(CniError::unsupported(&format!("ipam.{key}"), val));
                        }
                    }
                }
            }
            _ => return Err(CniError::unsupported(k, v)),
        }
    }
    if let Some(rc) = o.get("runtimeConfig") {
        c.runtime = parse_runtime(rc, &c.network, &c.name)?;
    }
    for (what, n) in [("subnet", c.subnets.len()), ("gateway", c.gateways.len()), ("ipRange", c.ip_ranges.len())] {
        let v6 = match what {
            "subnet" => c.subnets.iter().filter(|s| s.addr().is_ipv6()).count(),
            "gateway" => c.gateways.iter().filter(|s| s.is_ipv6()).count(),
            _ => c.ip_ranges.iter().filter(|s| s.addr().is_ipv6()).count(),
        };
        if v6 > 1 || n - v6 > 1 {
            return Err(CniError::config(format!("at most one {what} per address family")));
        }
    }
    Ok(c)
}
