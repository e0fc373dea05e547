//! The resolver's sockets: UDP and TCP on each user-defined network's
//! gateway address, port 53, in the daemon's namespace. Bounded: a fixed
//! receive buffer, at most `MAX_FORWARDS` forwards in flight (beyond that,
//! SERVFAIL at once) and `MAX_TCP` TCP clients, each with an idle timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::DNSClass;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::{answer, wire};
use super::lookup::{lookup, Outcome};
use crate::daemon::Daemon;

pub const MAX_FORWARDS: usize = 256;
pub const MAX_TCP: usize = 64;
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Shared limits of all resolvers of a daemon.
pub struct Limits {
    pub forwards: Arc<Semaphore>,
    pub tcp: Arc<Semaphore>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { forwards: Arc::new(Semaphore::new(MAX_FORWARDS)), tcp: Arc::new(Semaphore::new(MAX_TCP)) }
    }
}

/// What to do with one packet.
pub enum Reply {
    Now(Vec<u8>),
    Forward { query: Vec<u8>, upstreams: Vec<SocketAddr>, limit: usize },
    Drop,
}

/// Answers one query from `peer` on network `net_id`. Never panics on any
/// input. Plain queries are read and answered straight from the bytes
/// (`wire`); everything else, and answers too large for the fast path, go
/// through hickory-proto. Only the network's own containers get an answer:
/// anyone else (a neighbour routing the subnet at the host, the host
/// itself) gets nothing, as Docker's resolver, which lives in each
/// container's namespace, cannot be asked from outside. The firewall drops
/// such queries before they arrive (`resolver` chain); this holds even
/// without it.
pub fn handle(d: &Daemon, net_id: &str, packet: &[u8], peer: IpAddr, over_tcp: bool) -> Reply {
    if let Some(s) = wire::parse(packet) {
        let limit = if over_tcp { 65535 } else { s.edns.map_or(512, |e| (e as usize).clamp(512, 1232)) };
        let Some((outcome, internal, custom)) = decide(d, net_id, peer, &s.name, true) else { return Reply::Drop };
        let fast = match &outcome {
            Outcome::Addresses(ips) => {
                let rrs = wire::address_records(s.qtype, ips);
                wire::answer(packet, &s, wire::NOERROR, &rrs, answer::TTL, limit)
            }
            Outcome::Names(n) => {
                let rrs: Vec<wire::Rr> = if matches!(s.qtype, wire::TYPE_PTR | wire::TYPE_ANY) { n.iter().map(|t| wire::Rr::Ptr(t)).collect() } else { vec![] };
                wire::answer(packet, &s, wire::NOERROR, &rrs, answer::TTL, limit)
            }
            Outcome::NxDomain => wire::answer(packet, &s, wire::NXDOMAIN, &[], answer::TTL, limit),
            Outcome::Foreign => None,
        };
        if let Some(bytes) = fast {
            return Reply::Now(bytes);
        }
        if matches!(outcome, Outcome::Foreign) && !internal {
            return forward_or_fail(d, packet, custom, limit, || None);
        }
    }
    general(d, net_id, packet, peer, over_tcp)
}

/// The lookup and the facts forwarding needs, under the state lock; None
/// when the asker is not a container of the network.
fn decide(d: &Daemon, net_id: &str, peer: IpAddr, name: &str, class_in: bool) -> Option<(Outcome, bool, Vec<IpAddr>)> {
    let st = d.st();
    let net = st.networks.get(net_id)?;
    let asker = st.containers.by_ip(net_id, peer)?;
    let outcome = if class_in { lookup(&st, net_id, peer, name) } else { Outcome::Foreign };
    // The asker's own servers, else its network's, else (empty) the host's.
    let upstreams = if asker.dns.is_empty() { net.dns_servers() } else { asker.dns.clone() };
    Some((outcome, net.internal, upstreams))
}

/// Whether `peer` is a container of the network (TCP clients are checked
/// once, when they connect).
fn is_member(d: &Daemon, net_id: &str, peer: IpAddr) -> bool {
    d.st().containers.by_ip(net_id, peer).is_some()
}

fn forward_or_fail(d: &Daemon, packet: &[u8], custom: Vec<IpAddr>, limit: usize, fail: impl FnOnce() -> Option<Vec<u8>>) -> Reply {
    let upstreams: Vec<SocketAddr> = if custom.is_empty() { d.dns.upstreams.get() } else { custom.iter().map(|ip| SocketAddr::new(*ip, 53)).collect() };
    if upstreams.is_empty() {
        return fail().or_else(|| servfail(packet)).map_or(Reply::Drop, Reply::Now);
    }
    Reply::Forward { query: packet.to_vec(), upstreams, limit }
}

fn general(d: &Daemon, net_id: &str, packet: &[u8], peer: IpAddr, over_tcp: bool) -> Reply {
    let q = match Message::from_vec(packet) {
        Ok(q) => q,
        Err(_) => return answer::format_error(packet).map_or(Reply::Drop, Reply::Now),
    };
    if q.metadata.message_type != hickory_proto::op::MessageType::Query {
        return Reply::Drop;
    }
    let limit = if over_tcp { 65535 } else { answer::udp_limit(&q) };
    let out = |m: Message| answer::to_udp(&m, limit).map_or(Reply::Drop, Reply::Now);
    if q.metadata.op_code != OpCode::Query {
        return out(answer::response_to(&q, ResponseCode::NotImp));
    }
    if q.queries.len() != 1 {
        return out(answer::response_to(&q, ResponseCode::FormErr));
    }
    let query = &q.queries[0];
    let qname = query.name().to_ascii();
    let Some(name) = berth_core::dns::normalize(&qname) else {
        return out(answer::response_to(&q, ResponseCode::FormErr));
    };
    let Some((outcome, internal, custom)) = decide(d, net_id, peer, &name, query.query_class() == DNSClass::IN) else { return Reply::Drop };
    match outcome {
        Outcome::Addresses(ips) => out(answer::addresses(&q, query.name(), query.query_type(), &ips)),
        Outcome::Names(n) => out(answer::names(&q, query.name(), query.query_type(), &n)),
        Outcome::NxDomain => {
            let mut r = answer::response_to(&q, ResponseCode::NXDomain);
            r.metadata.authoritative = true;
            out(r)
        }
        // An internal network has no way out, for names either.
        Outcome::Foreign if internal => out(answer::response_to(&q, ResponseCode::Refused)),
        Outcome::Foreign => forward_or_fail(d, packet, custom, limit, || answer::to_udp(&answer::response_to(&q, ResponseCode::ServFail), limit)),
    }
}

fn servfail(packet: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(packet).ok()?;
    answer::response_to(&q, ResponseCode::ServFail).to_vec().ok()
}

pub async fn serve_udp(d: Arc<Daemon>, net_id: String, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else { continue };
        match handle(&d, &net_id, &buf[..n], peer.ip(), false) {
            Reply::Now(bytes) => {
                let _ = sock.send_to(&bytes, peer).await;
            }
            Reply::Drop => {}
            Reply::Forward { query, upstreams, limit } => match d.dns.limits.forwards.clone().try_acquire_owned() {
                Ok(permit) => {
                    let sock = sock.clone();
                    tokio::spawn(async move {
                        let resp = super::forward::forward(&query, &upstreams, false).await.or_else(|| servfail(&query));
                        if let Some(mut r) = resp {
                            if r.len() > limit {
                                // Too big for this client over UDP: let it retry over TCP.
                                r = Message::from_vec(&r).ok().and_then(|m| m.truncate().to_vec().ok()).unwrap_or_default();
                            }
                            let _ = sock.send_to(&r, peer).await;
                        }
                        drop(permit);
                    });
                }
                Err(_) => {
                    if let Some(r) = servfail(&query) {
                        let _ = sock.send_to(&r, peer).await;
                    }
                }
            },
        }
    }
}

pub async fn serve_tcp(d: Arc<Daemon>, net_id: String, listener: TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        if !is_member(&d, &net_id, peer.ip()) {
            continue;
        }
        let Ok(permit) = d.dns.limits.tcp.clone().try_acquire_owned() else { continue };
        let (d, net_id) = (d.clone(), net_id.clone());
        tokio::spawn(async move {
            let _ = tcp_client(&d, &net_id, stream, peer.ip()).await;
            drop(permit);
        });
    }
}

async fn tcp_client(d: &Daemon, net_id: &str, mut s: TcpStream, peer: IpAddr) -> Option<()> {
    loop {
        let mut len = [0u8; 2];
        timeout(TCP_IDLE, s.read_exact(&mut len)).await.ok()?.ok()?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        timeout(TCP_IDLE, s.read_exact(&mut buf)).await.ok()?.ok()?;
        let resp = match handle(d, net_id, &buf, peer, true) {
            Reply::Now(b) => b,
            Reply::Drop => continue,
            Reply::Forward { query, upstreams, .. } => {
                let _permit = d.dns.limits.forwards.clone().try_acquire_owned().ok()?;
                super::forward::forward(&query, &upstreams, true).await.or_else(|| servfail(&query))?
            }
        };
        let mut msg = (resp.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(&resp);
        timeout(TCP_IDLE, s.write_all(&msg)).await.ok()?.ok()?;
    }
}
