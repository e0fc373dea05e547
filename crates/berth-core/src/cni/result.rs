//! The Success result: one type (1.1.0's, the superset), read from any
//! version a previous plugin or the runtime's cache wrote, and written in
//! the version the configuration asked for (what libcni's converters do:
//! 0.3.x/0.4.0 add `ips[].version` and know no `mtu`, `socketPath`,
//! `pciID` nor the 1.1 route fields; 1.0.0 has no 1.1 fields either).

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use super::Version;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    /// The netns path for interfaces in the container; None on the host.
    pub sandbox: Option<String>,
    pub socket_path: Option<String>,
    pub pci_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Address with its prefix, e.g. 10.1.0.5/24.
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u32>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

fn opt_str(m: &Map<String, Value>, k: &str) -> Result<Option<String>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("{k} must be a string, not {v}")),
    }
}

fn opt_u32(m: &Map<String, Value>, k: &str) -> Result<Option<u32>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(|| format!("{k} must be a non-negative number, not {v}")),
    }
}

fn list<'a>(m: &'a Map<String, Value>, k: &str) -> Result<&'a [Value], String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(format!("{k} must be a list, not {v}")),
    }
}

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("{what} must be an object, not {v}"))
}

fn strings(m: &Map<String, Value>, k: &str) -> Result<Vec<String>, String> {
    list(m, k)?.iter().map(|x| x.as_str().map(str::to_string).ok_or_else(|| format!("dns.{k} must be a list of strings"))).collect()
}

impl CniResult {
    /// Reads a result of any version berth speaks (0.3.x/0.4.0 with
    /// `ips[].version`, 1.x without), and the abbreviated result of an IPAM
    /// plugin (no `interfaces`). Unknown fields are kept out, not refused:
    /// other plugins may add their own.
    pub fn parse(v: &Value) -> Result<CniResult, String> {
        let m = obj(v, "result")?;
        if m.contains_key("ip4") || m.contains_key("ip6") {
            return Err("0.1.0/0.2.0 results (ip4/ip6) are not supported".into());
        }
        let mut r = CniResult::default();
        for i in list(m, "interfaces")? {
            let i = obj(i, "interfaces[]")?;
            let name = opt_str(i, "name")?.ok_or("interfaces[] needs a name")?;
            r.interfaces.push(Interface {
                name,
                mac: opt_str(i, "mac")?,
                mtu: opt_u32(i, "mtu")?,
                sandbox: opt_str(i, "sandbox")?,
                socket_path: opt_str(i, "socketPath")?,
                pci_id: opt_str(i, "pciID")?,
            });
        }
        for ip in list(m, "ips")? {
            let ip = obj(ip, "ips[]")?;
            let a = opt_str(ip, "address")?.ok_or("ips[] needs an address")?;
            let address: IpNet = a.parse().map_err(|_| format!("ips[].address {a:?} is not ADDRESS/PREFIX"))?;
            let gateway = opt_str(ip, "gateway")?.map(|g| g.parse::<IpAddr>().map_err(|_| format!("ips[].gateway {g:?} is not an address"))).transpose()?;
            let interface = match ip.get("interface") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().map(|n| n as usize).ok_or_else(|| format!("ips[].interface must be an index, not {v}"))?),
            };
            if let Some(ix) = interface {
                if ix >= r.interfaces.len() {
                    return Err(format!("ips[].interface {ix} is not an index into interfaces ({} of them)", r.interfaces.len()));
                }
            }
            if let Some(ver) = opt_str(ip, "version")? {
                let want = if address.addr().is_ipv6() { "6" } else { "4" };
                if ver != want {
                    return Err(format!("ips[]: version {ver:?} does not match address {address}"));
                }
            }
            r.ips.push(IpConfig { address, gateway, interface });
        }
        for rt in list(m, "routes")? {
            let rt = obj(rt, "routes[]")?;
            let d = opt_str(rt, "dst")?.ok_or("routes[] needs a dst")?;
            let dst: IpNet = d.parse().map_err(|_| format!("routes[].dst {d:?} is not a CIDR"))?;
            let gw = opt_str(rt, "gw")?.map(|g| g.parse::<IpAddr>().map_err(|_| format!("routes[].gw {g:?} is not an address"))).transpose()?;
            r.routes.push(Route { dst, gw, mtu: opt_u32(rt, "mtu")?, advmss: opt_u32(rt, "advmss")?, priority: opt_u32(rt, "priority")?, table: opt_u32(rt, "table")?, scope: opt_u32(rt, "scope")? });
        }
        if let Some(d) = m.get("dns").filter(|d| !d.is_null()) {
            let d = obj(d, "dns")?;
            r.dns = Dns { nameservers: strings(d, "nameservers")?, domain: opt_str(d, "domain")?, search: strings(d, "search")?, options: strings(d, "options")? };
        }
        Ok(r)
    }

    /// The result as `version` has it.
    pub fn render(&self, version: Version) -> Value {
        let v11 = version == Version::V110;
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = json!({"name": i.name});
                let mut put = |k: &str, v: &Option<String>| {
                    if let Some(s) = v {
                        o[k] = json!(s);
                    }
                };
                put("mac", &i.mac);
                put("sandbox", &i.sandbox);
                if v11 {
                    put("socketPath", &i.socket_path);
                    put("pciID", &i.pci_id);
                    if let Some(m) = i.mtu {
                        o["mtu"] = json!(m);
                    }
                }
                o
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = json!({"address": ip.address.to_string()});
                if version.is_0x() {
                    o["version"] = json!(if ip.address.addr().is_ipv6() { "6" } else { "4" });
                }
                if let Some(g) = ip.gateway {
                    o["gateway"] = json!(g.to_string());
                }
                if let Some(i) = ip.interface {
                    o["interface"] = json!(i);
                }
                o
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut o = json!({"dst": r.dst.to_string()});
                if let Some(g) = r.gw {
                    o["gw"] = json!(g.to_string());
                }
                if v11 {
                    for (k, v) in [("mtu", r.mtu), ("advmss", r.advmss), ("priority", r.priority), ("table", r.table), ("scope", r.scope)] {
                        if let Some(n) = v {
                            o[k] = json!(n);
                        }
                    }
                }
                o
            })
            .collect();
        let mut dns = Map::new();
        if !self.dns.nameservers.is_empty() {
            dns.insert("nameservers".into(), json!(self.dns.nameservers));
        }
        if let Some(d) = &self.dns.domain {
            dns.insert("domain".into(), json!(d));
        }
        if !self.dns.search.is_empty() {
            dns.insert("search".into(), json!(self.dns.search));
        }
        if !self.dns.options.is_empty() {
            dns.insert("options".into(), json!(self.dns.options));
        }
        let mut out = json!({"cniVersion": version.as_str(), "interfaces": interfaces, "ips": ips, "dns": dns});
        if !routes.is_empty() {
            out["routes"] = json!(routes);
        }
        out
    }

    /// `self` with `ours` appended: what a plugin that got a `prevResult`
    /// returns (the spec: pass it through, with its own additions). Our
    /// `interface` indexes are shifted past the previous interfaces.
    pub fn merged(&self, ours: &CniResult) -> CniResult {
        let mut r = self.clone();
        let base = r.interfaces.len();
        r.interfaces.extend(ours.interfaces.iter().cloned());
        r.ips.extend(ours.ips.iter().map(|ip| IpConfig { interface: ip.interface.map(|i| i + base), ..ip.clone() }));
        r.routes.extend(ours.routes.iter().filter(|x| !self.routes.contains(x)).cloned());
        if r.dns.nameservers.is_empty() && r.dns.search.is_empty() && r.dns.domain.is_none() {
            r.dns = ours.dns.clone();
        }
        r
    }
}
