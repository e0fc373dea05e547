//! berth's embedded DNS: on every user-defined network, containers resolve
//! each other by name, alias and `NAME.NETWORK`, and everything else is
//! forwarded upstream. See `lookup` for what a name means to whom.

pub mod answer;
pub mod forward;
pub mod lookup;
pub mod server;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use berth_core::model::Network;
use tracing::{info, warn};

use crate::daemon::Daemon;

/// The resolvers of a daemon.
#[derive(Default)]
pub struct Dns {
    pub upstreams: forward::HostUpstreams,
    pub limits: server::Limits,
    running: Mutex<HashMap<String, Vec<tokio::task::AbortHandle>>>,
}

/// Binds UDP and TCP on ADDR:53, with IP_FREEBIND (IPV6_FREEBIND for
/// IPv6) set before the bind, so the resolver comes up even while the
/// bridge address is momentarily absent (reconcile restores it), and
/// IPv6 sockets IPv6-only (each family has its own address).
fn bind(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let make = |ty: Type, proto: Protocol| -> std::io::Result<Socket> {
        let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
            s.set_freebind_v6(true)?;
        } else {
            s.set_freebind_v4(true)?;
        }
        s.set_reuse_address(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        Ok(s)
    };
    let udp = make(Type::DGRAM, Protocol::UDP)?;
    let tcp = make(Type::STREAM, Protocol::TCP)?;
    tcp.listen(128)?;
    Ok((udp.into(), tcp.into()))
}

impl Daemon {
    /// The resolver addresses of a network: its gateways (a user-defined
    /// network's; the default network has no names).
    pub fn dns_addresses(net: &Network) -> Vec<IpAddr> {
        // A macvlan network's gateway is the LAN's router, not this host
        // (which its containers cannot reach anyway).
        if net.predefined || !net.has_bridge() {
            return vec![];
        }
        net.ipam.iter().map(|c| c.gateway).collect()
    }

    /// Starts the resolver of a user-defined network on each of its
    /// gateways (idempotent).
    pub fn dns_start(&self, net: &Network) {
        let (Some(rt), Some(me)) = (self.rt.clone(), self.me.get().and_then(|w| w.upgrade())) else {
            return;
        };
        let addrs = Self::dns_addresses(net);
        let mut running = self.dns.running.lock().unwrap();
        if addrs.is_empty() || running.contains_key(&net.id) {
            return;
        }
        let _guard = rt.enter();
        let mut tasks = Vec::new();
        for ip in addrs {
            let addr = SocketAddr::new(ip, 53);
            let socks = bind(addr).and_then(|(u, t)| Ok((tokio::net::UdpSocket::from_std(u)?, tokio::net::TcpListener::from_std(t)?)));
            let (udp, tcp) = match socks {
                Ok(s) => s,
                Err(e) => {
                    warn!("DNS for network {} on {addr}: {e}; containers there will not resolve names through it", net.name);
                    continue;
                }
            };
            tasks.push(rt.spawn(server::serve_udp(me.clone(), net.id.clone(), Arc::new(udp))).abort_handle());
            tasks.push(rt.spawn(server::serve_tcp(me.clone(), net.id.clone(), tcp)).abort_handle());
            info!("DNS for network {} on {addr}", net.name);
        }
        running.insert(net.id.clone(), tasks);
    }

    pub fn dns_stop(&self, net_id: &str) {
        if let Some(tasks) = self.dns.running.lock().unwrap().remove(net_id) {
            for t in tasks {
                t.abort();
            }
        }
    }
}
