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

/// Binds UDP and TCP on ADDR:53. IP_FREEBIND lets the resolver come up even
/// if the bridge address is momentarily absent (reconcile restores it).
fn bind(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    use std::os::fd::AsRawFd;
    let freebind = |fd: i32| {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a pointer to a local int.
        unsafe {
            libc::setsockopt(fd, libc::SOL_IP, libc::IP_FREEBIND, &one as *const _ as *const libc::c_void, 4);
        }
    };
    let udp = std::net::UdpSocket::bind(addr)?;
    freebind(udp.as_raw_fd());
    udp.set_nonblocking(true)?;
    let tcp = std::net::TcpListener::bind(addr)?;
    freebind(tcp.as_raw_fd());
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

impl Daemon {
    /// The resolver address of a network (its gateway), if it has one.
    pub fn dns_address(net: &Network) -> Option<IpAddr> {
        (!net.predefined).then(|| net.ipv4().map(|c| c.gateway)).flatten()
    }

    /// Starts the resolver of a user-defined network (idempotent).
    pub fn dns_start(&self, net: &Network) {
        let (Some(rt), Some(me), Some(ip)) = (self.rt.clone(), self.me.get().and_then(|w| w.upgrade()), Self::dns_address(net)) else {
            return;
        };
        let mut running = self.dns.running.lock().unwrap();
        if running.contains_key(&net.id) {
            return;
        }
        let addr = SocketAddr::new(ip, 53);
        let (udp, tcp) = match bind(addr) {
            Ok(s) => s,
            Err(e) => {
                warn!("DNS for network {} on {addr}: {e}; containers there will not resolve names", net.name);
                return;
            }
        };
        let _guard = rt.enter();
        let (Ok(udp), Ok(tcp)) = (tokio::net::UdpSocket::from_std(udp), tokio::net::TcpListener::from_std(tcp)) else {
            return;
        };
        let u = rt.spawn(server::serve_udp(me.clone(), net.id.clone(), Arc::new(udp))).abort_handle();
        let t = rt.spawn(server::serve_tcp(me, net.id.clone(), tcp)).abort_handle();
        running.insert(net.id.clone(), vec![u, t]);
        info!("DNS for network {} on {addr}", net.name);
    }

    pub fn dns_stop(&self, net_id: &str) {
        if let Some(tasks) = self.dns.running.lock().unwrap().remove(net_id) {
            for t in tasks {
                t.abort();
            }
        }
    }
}
