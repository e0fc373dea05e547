//! Docker's `com.docker.network.portmap` and
//! `com.docker.network.endpoint.exposedports` as berth's `-p` and
//! `--expose` specs. dockerd expands a range to one entry per port and
//! sends `HostPort: 0` where the driver picks (`-P`, `IP::PORT`);
//! consecutive entries are joined back into one range so a 1,000-port
//! range stays one spec (one host-port check, not a thousand).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::{CoreError, Result};

pub const PORTMAP: &str = "com.docker.network.portmap";
pub const EXPOSED: &str = "com.docker.network.endpoint.exposedports";

/// One entry of the portmap (libnetwork's `types.PortBinding`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortBinding {
    #[serde(rename = "Proto")]
    pub proto: u8,
    #[serde(rename = "Port")]
    pub port: u16,
    #[serde(rename = "HostIP", default)]
    pub host_ip: String,
    #[serde(rename = "HostPort", default)]
    pub host_port: u16,
    #[serde(rename = "HostPortEnd", default)]
    pub host_port_end: u16,
}

/// One exposed port (`types.TransportPort`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TransportPort {
    #[serde(rename = "Proto")]
    pub proto: u8,
    #[serde(rename = "Port")]
    pub port: u16,
}

/// IANA protocol numbers dockerd uses.
fn proto_name(p: u8) -> Result<&'static str> {
    match p {
        6 => Ok("tcp"),
        17 => Ok("udp"),
        132 => Err(CoreError::DockerRequest("sctp ports are not supported by berth (tcp and udp are)".into())),
        other => Err(CoreError::DockerRequest(format!("unknown port protocol number {other}"))),
    }
}

fn list<T: for<'de> Deserialize<'de>>(opts: Option<&BTreeMap<String, Value>>, key: &str) -> Result<Vec<T>> {
    match opts.and_then(|o| o.get(key)) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| CoreError::DockerRequest(format!("{key}: {e}"))),
    }
}

fn host_ip_text(ip: &str) -> Result<String> {
    if ip.is_empty() {
        return Ok(String::new());
    }
    let a: std::net::IpAddr = ip.parse().map_err(|_| CoreError::DockerRequest(format!("portmap: HostIP {ip:?} is not an address")))?;
    Ok(match a {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:"),
        v4 => format!("{v4}:"),
    })
}

/// A run of bindings that differ only by one in both ports.
struct Run {
    ip: String,
    proto: &'static str,
    cport: (u16, u16),
    /// None: the driver picks.
    hport: Option<(u16, u16)>,
}

impl Run {
    fn spec(&self) -> String {
        let range = |(a, b): (u16, u16)| if a == b { a.to_string() } else { format!("{a}-{b}") };
        match self.hport {
            Some(h) => format!("{}{}:{}/{}", self.ip, range(h), range(self.cport), self.proto),
            None if self.ip.is_empty() => format!("{}/{}", range(self.cport), self.proto),
            None => format!("{}:{}/{}", self.ip, range(self.cport), self.proto),
        }
    }
}

/// The `-p` specs of an endpoint's options, in dockerd's order, with
/// consecutive single-port entries joined into ranges. `HostIP::PORT`
/// (`HostPort: 0`) gets a host port berth picks, as Docker's `-P` does.
pub fn publish_specs(opts: Option<&BTreeMap<String, Value>>) -> Result<Vec<String>> {
    let mut bindings: Vec<PortBinding> = list(opts, PORTMAP)?;
    bindings.sort_by(|a, b| (a.proto, &a.host_ip, a.host_port == 0, a.port).cmp(&(b.proto, &b.host_ip, b.host_port == 0, b.port)));
    let mut runs: Vec<Run> = Vec::new();
    for b in &bindings {
        if b.port == 0 {
            return Err(CoreError::DockerRequest("portmap: container port 0".into()));
        }
        let proto = proto_name(b.proto)?;
        let ip = host_ip_text(&b.host_ip)?;
        let hport = match (b.host_port, b.host_port_end) {
            (0, _) => None,
            (h, e) if e == 0 || e == h => Some((h, h)),
            (h, e) if e > h => return Err(CoreError::DockerRequest(format!("portmap: host range {h}-{e} for one container port {}: dockerd expands ranges; berth takes one host port per entry", b.port))),
            (h, e) => return Err(CoreError::DockerRequest(format!("portmap: host range {h}-{e} ends before it starts"))),
        };
        if let Some(last) = runs.last_mut() {
            let next_c = last.cport.1.checked_add(1) == Some(b.port);
            let joins = last.ip == ip
                && last.proto == proto
                && next_c
                && match (last.hport, hport) {
                    (None, None) => true,
                    (Some(l), Some(h)) => l.1.checked_add(1) == Some(h.0),
                    _ => false,
                };
            if joins {
                last.cport.1 = b.port;
                if let (Some(l), Some(h)) = (last.hport.as_mut(), hport) {
                    l.1 = h.1;
                }
                continue;
            }
        }
        runs.push(Run { ip, proto, cport: (b.port, b.port), hport });
    }
    Ok(runs.iter().map(Run::spec).collect())
}

/// The `--expose` specs (`PORT/PROTO`) of an endpoint's options.
pub fn expose_specs(opts: Option<&BTreeMap<String, Value>>) -> Result<Vec<String>> {
    let ports: Vec<TransportPort> = list(opts, EXPOSED)?;
    let mut out: Vec<String> = ports.iter().map(|p| Ok(format!("{}/{}", p.port, proto_name(p.proto)?))).collect::<Result<_>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}
