//! Forwarding what is not ours to upstream servers, from the daemon's (the
//! host's) namespace — so a resolver on host loopback such as
//! systemd-resolved's 127.0.0.53 works. Upstreams are the container's
//! `--dns` servers, its network's (`-o dns_servers`), or the host's `/etc/resolv.conf` nameservers (re-read when
//! the file changes). Each upstream gets a bounded time before the next one
//! is tried.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// How long one upstream gets before the next is tried.
pub const PER_UPSTREAM: Duration = Duration::from_millis(1500);

/// The host's nameservers, cached until /etc/resolv.conf changes.
pub struct HostUpstreams {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<SocketAddr>)>,
}

impl Default for HostUpstreams {
    fn default() -> Self {
        HostUpstreams { path: PathBuf::from("/etc/resolv.conf"), cache: Mutex::new((None, vec![])) }
    }
}

/// `nameserver` lines of a resolv.conf (at most 3, as the libc resolver).
pub fn parse_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.split('%').next().and_then(|a| a.parse::<IpAddr>().ok()))
        .map(|ip| SocketAddr::new(ip, 53))
        .take(3)
        .collect()
}

impl HostUpstreams {
    pub fn get(&self) -> Vec<SocketAddr> {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut c = self.cache.lock().unwrap();
        if c.0 != mtime || mtime.is_none() {
            c.1 = std::fs::read_to_string(&self.path).map(|t| parse_nameservers(&t)).unwrap_or_default();
            c.0 = mtime;
        }
        c.1.clone()
    }
}

fn tc(resp: &[u8]) -> bool {
    resp.len() > 2 && resp[2] & 0x02 != 0
}

fn same_id(q: &[u8], r: &[u8]) -> bool {
    q.len() >= 2 && r.len() >= 12 && q[..2] == r[..2] && r[2] & 0x80 != 0
}

/// One UDP exchange with one upstream (fresh socket, so a random port).
async fn udp_once(query: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = if up.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let sock = UdpSocket::bind(bind).await.ok()?;
    sock.send_to(query, up).await.ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await.ok()?;
        if from == up && same_id(query, &buf[..n]) {
            buf.truncate(n);
            return Some(buf);
        }
    }
}

async fn tcp_once(query: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(up).await.ok()?;
    let mut msg = (query.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(query);
    s.write_all(&msg).await.ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.ok()?;
    same_id(query, &buf).then_some(buf)
}

/// Asks each upstream in turn; a truncated UDP answer is retried over TCP.
pub async fn forward(query: &[u8], upstreams: &[SocketAddr], over_tcp: bool) -> Option<Vec<u8>> {
    for up in upstreams {
        let r = if over_tcp {
            timeout(PER_UPSTREAM, tcp_once(query, *up)).await.ok().flatten()
        } else {
            match timeout(PER_UPSTREAM, udp_once(query, *up)).await.ok().flatten() {
                Some(r) if tc(&r) => timeout(PER_UPSTREAM, tcp_once(query, *up)).await.ok().flatten().or(Some(r)),
                other => other,
            }
        };
        if let Some(r) = r {
            return Some(r);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers() {
        let t = "# x\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch a\nnameserver 127.0.0.53\nnameserver 1.1.1.1\n";
        let v = parse_nameservers(t);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], "10.0.0.2:53".parse().unwrap());
        assert_eq!(v[2], "127.0.0.53:53".parse().unwrap());
    }
}
