//! Host port allocation for `-p`/`-P`, under the state lock so two requests
//! never get the same port. A port is free when no berth mapping of the same
//! protocol holds it on an overlapping address and a host process could bind
//! it (checked by binding and letting go).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use berth_core::model::{Container, PortMapping, PortProto, Proto};
use berth_core::ports::PublishSpec;
use berth_core::CoreError;

use crate::error::{DaemonError, Result};
use berth_linux::kernel::Kernel;
use crate::state::State;

/// Host ports berth mappings hold: (proto, port) → bound addresses (None = all).
pub fn held(st: &State, except: &str) -> HashMap<(Proto, u16), Vec<Option<IpAddr>>> {
    let mut m: HashMap<(Proto, u16), Vec<Option<IpAddr>>> = HashMap::new();
    for c in st.containers.values().filter(|c| c.id != except && c.state.status.is_live()) {
        for p in &c.ports {
            m.entry((p.container.proto, p.host_port)).or_default().push(p.host_ip);
        }
    }
    m
}

fn clash(held: &HashMap<(Proto, u16), Vec<Option<IpAddr>>>, proto: Proto, ip: Option<IpAddr>, port: u16) -> bool {
    held.get(&(proto, port)).is_some_and(|v| v.iter().any(|h| h.is_none() || ip.is_none() || *h == ip))
}

fn bind_text(ip: Option<IpAddr>, port: u16) -> String {
    match ip {
        None => format!("0.0.0.0:{port}"),
        Some(IpAddr::V6(a)) => format!("[{a}]:{port}"),
        Some(a) => format!("{a}:{port}"),
    }
}

/// Host processes' ports: test-bound one by one for a few ports, or read
/// from the socket tables once for many.
enum HostPorts<'a> {
    Probe(&'a dyn Kernel),
    Table(HashMap<(Proto, u16), Vec<Option<IpAddr>>>),
    /// The runtime holds them itself (`Container::ports_reserved`).
    Reserved,
}

impl HostPorts<'_> {
    fn held(&self, proto: Proto, ip: Option<IpAddr>, port: u16) -> bool {
        match self {
            HostPorts::Probe(k) => k.port_bindable(proto == Proto::Udp, ip, port).is_err(),
            HostPorts::Table(t) => clash(t, proto, ip, port),
            HostPorts::Reserved => false,
        }
    }
}

/// Above this many ports, reading the socket tables once beats binding each.
const PROBE_LIMIT: u32 = 64;

struct Allocator<'a> {
    held: HashMap<(Proto, u16), Vec<Option<IpAddr>>>,
    host: HostPorts<'a>,
    range: (u16, u16),
    next: u16,
}

impl Allocator<'_> {
    fn take(&mut self, proto: Proto, ip: Option<IpAddr>, port: u16) {
        self.held.entry((proto, port)).or_default().push(ip);
    }

    fn usable(&self, proto: Proto, ip: Option<IpAddr>, port: u16) -> bool {
        !clash(&self.held, proto, ip, port) && !self.host.held(proto, ip, port)
    }

    /// A specific port: the two Docker error texts on conflict.
    fn exact(&mut self, proto: Proto, ip: Option<IpAddr>, port: u16) -> Result<()> {
        if clash(&self.held, proto, ip, port) {
            return Err(DaemonError::Conflict(format!("Bind for {} failed: port is already allocated", bind_text(ip, port))));
        }
        if self.host.held(proto, ip, port) {
            return Err(DaemonError::Conflict(format!(
                "failed to bind host port for {}/{proto}: address already in use",
                bind_text(ip, port)
            )));
        }
        self.take(proto, ip, port);
        Ok(())
    }

    /// Any free port of `[lo, hi]`, walking on from the last one given.
    fn any(&mut self, proto: Proto, ip: Option<IpAddr>, lo: u16, hi: u16) -> Result<u16> {
        let span = (hi - lo) as u32 + 1;
        let start = if (lo..=hi).contains(&self.next) { self.next } else { lo };
        for i in 0..span {
            let port = lo + (((start - lo) as u32 + i) % span) as u16;
            if self.usable(proto, ip, port) {
                self.take(proto, ip, port);
                self.next = port.wrapping_add(1);
                return Ok(port);
            }
        }
        Err(DaemonError::Conflict(format!("no free host port in {lo}-{hi} for {}/{proto}", bind_text(ip, 0).trim_end_matches(":0"))))
    }
}

/// Resolves a container's `-p`/`-P` into concrete mappings.
pub fn allocate(st: &State, kernel: &dyn Kernel, c: &Container) -> Result<Vec<PortMapping>> {
    if c.publish.is_empty() && (!c.publish_all || c.expose.is_empty()) {
        return Ok(vec![]);
    }
    // A host address of one family can only lead to a container address of
    // the same family (nft cannot translate across families).
    for s in &c.publish {
        if let Some(ip) = s.host_ip {
            if c.publish_target(ip.is_ipv6()).is_none() {
                let (family, other) = if ip.is_ipv6() { ("IPv6", "127.0.0.1") } else { ("IPv4", "[::1]") };
                return Err(CoreError::PublishUnreachable {
                    spec: berth_core::model::host_port_text(ip, s.host_ports.map(|p| p.0).unwrap_or(0)),
                    reason: format!("the container has no {family} address (its network has no {family} subnet); publish on {other} or on every address instead"),
                }
                .into());
            }
        }
    }
    let range = kernel.ephemeral_range();
    if range.0 > range.1 {
        return Err(DaemonError::Internal("net.ipv4.ip_local_port_range is empty: no random host ports can be given".into()));
    }
    let seed = (crate::util::now() as u32).wrapping_mul(2654435761) ^ (c.id.len() as u32 * 7919);
    let next = range.0 + (seed % ((range.1 - range.0) as u32 + 1)) as u16;
    let count: u32 = c.publish.iter().map(|s| s.container_count()).sum::<u32>() + if c.publish_all { c.expose.len() as u32 } else { 0 };
    let host = if c.ports_reserved {
        HostPorts::Reserved
    } else if count <= PROBE_LIMIT {
        HostPorts::Probe(kernel)
    } else {
        let mut t: HashMap<(Proto, u16), Vec<Option<IpAddr>>> = HashMap::new();
        for proto in [Proto::Tcp, Proto::Udp] {
            for (ip, port) in kernel.host_listeners(proto == Proto::Udp) {
                t.entry((proto, port)).or_default().push(if ip.is_unspecified() { None } else { Some(ip) });
            }
        }
        HostPorts::Table(t)
    };
    let mut a = Allocator { held: held(st, &c.id), host, range, next };
    let mut out = Vec::new();
    let mut specs: Vec<PublishSpec> = c.publish.clone();
    if c.publish_all {
        let mut seen: HashSet<PortProto> = specs.iter().flat_map(|s| (s.container_ports.0..=s.container_ports.1).map(move |p| PortProto { port: p, proto: s.proto })).collect();
        for e in &c.expose {
            if seen.insert(*e) {
                specs.push(PublishSpec { host_ip: None, host_ports: None, container_ports: (e.port, e.port), proto: e.proto });
            }
        }
    }
    for s in &specs {
        let (c1, c2) = s.container_ports;
        match s.host_ports {
            None => {
                for cp in c1..=c2 {
                    let (lo, hi) = a.range;
                    let hp = a.any(s.proto, s.host_ip, lo, hi)?;
                    out.push(PortMapping { host_ip: s.host_ip, host_port: hp, container: PortProto { port: cp, proto: s.proto } });
                }
            }
            Some((h1, h2)) if c1 == c2 && h1 != h2 => {
                let hp = a.any(s.proto, s.host_ip, h1, h2)?;
                out.push(PortMapping { host_ip: s.host_ip, host_port: hp, container: PortProto { port: c1, proto: s.proto } });
            }
            Some((h1, _)) => {
                for (i, cp) in (c1..=c2).enumerate() {
                    let hp = h1 + i as u16;
                    a.exact(s.proto, s.host_ip, hp)?;
                    out.push(PortMapping { host_ip: s.host_ip, host_port: hp, container: PortProto { port: cp, proto: s.proto } });
                }
            }
        }
    }
    Ok(out)
}
