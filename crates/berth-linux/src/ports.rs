//! Host ports: which ones host processes hold, and the kernel's ephemeral range.
//!
//! Two ways to learn whether a host process holds a port: test-bind it (a
//! few syscalls; right for a handful of ports), or read the socket tables
//! in /proc/net once (each read walks the kernel's whole connection hash, a
//! few ms here, independent of the number of ports: right for a 10,000-port
//! range, wrong for one port).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

/// Tries to bind `ip:port` (every address when `ip` is None) and lets go at
/// once. `Err` carries the kernel's reason (e.g. "address already in use").
pub fn check_bindable(udp: bool, ip: Option<IpAddr>, port: u16) -> std::io::Result<()> {
    let addr = SocketAddr::new(ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port);
    if udp {
        UdpSocket::bind(addr).map(drop)
    } else {
        // std sets SO_REUSEADDR, so only a listener (not TIME_WAIT) conflicts.
        TcpListener::bind(addr).map(drop)
    }
}

/// Parses one /proc/net/{tcp,udp}[6] table into (address, port) of sockets
/// in `state` (0A = TCP LISTEN, 07 = UDP bound), or every socket if None.
pub fn parse_proc_net(text: &str, state: Option<&str>) -> Vec<(IpAddr, u16)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || state.is_some_and(|s| f[3] != s) {
            continue;
        }
        let Some((addr, port)) = f[1].split_once(':') else { continue };
        let Ok(port) = u16::from_str_radix(port, 16) else { continue };
        let ip = match addr.len() {
            8 => u32::from_str_radix(addr, 16).ok().map(|v| IpAddr::V4(Ipv4Addr::from(u32::from_be(v)))),
            32 => {
                let mut b = [0u8; 16];
                let mut ok = true;
                for i in 0..4 {
                    match u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16) {
                        Ok(w) => b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes()),
                        Err(_) => ok = false,
                    }
                }
                ok.then(|| IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => None,
        };
        if let Some(ip) = ip {
            out.push((ip, port));
        }
    }
    out
}

/// Sockets host processes hold for `udp` or TCP, IPv4 and IPv6.
pub fn host_listeners(udp: bool) -> Vec<(IpAddr, u16)> {
    if !udp {
        if let Some(v) = tcp_listeners_diag() {
            return v;
        }
    }
    listeners_in("/proc/net", udp)
}

/// TCP listeners through sock_diag (`ss -ltn`): for a LISTEN-only request
/// the kernel walks just its listening hash, where each read of
/// /proc/net/tcp walks the whole connection hash (~2 ms a read here, 8 ms
/// for both families: most of the cost of publishing a port range).
/// None when sock_diag is not available (the caller reads /proc then).
fn tcp_listeners_diag() -> Option<Vec<(IpAddr, u16)>> {
    const NETLINK_SOCK_DIAG: isize = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const TCPF_LISTEN: u32 = 1 << 10;
    let mut s = netlink_sys::Socket::new(NETLINK_SOCK_DIAG).ok()?;
    s.bind_auto().ok()?;
    s.connect(&netlink_sys::SocketAddr::new(0, 0)).ok()?;
    let mut out = Vec::new();
    for (seq, family) in [(1u32, libc::AF_INET as u8), (2, libc::AF_INET6 as u8)] {
        // nlmsghdr, then inet_diag_req_v2 (family, protocol, ext, pad,
        // states, and a zeroed inet_diag_sockid: no filter).
        let mut m = vec![0u8; 16 + 56];
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m[6..8].copy_from_slice(&(crate::nfnl::NLM_F_REQUEST | crate::nfnl::NLM_F_DUMP).to_ne_bytes());
        m[8..12].copy_from_slice(&seq.to_ne_bytes());
        m[16] = family;
        m[17] = libc::IPPROTO_TCP as u8;
        m[20..24].copy_from_slice(&TCPF_LISTEN.to_ne_bytes());
        s.send(&m, 0).ok()?;
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        'dump: loop {
            buf.clear();
            let n = s.recv(&mut buf, 0).ok()?;
            for msg in crate::nfnl::messages(&buf[..n]) {
                match msg.ty {
                    crate::nfnl::NLMSG_DONE => break 'dump,
                    crate::nfnl::NLMSG_ERROR => return None,
                    _ => {}
                }
                // inet_diag_msg: family, state, timer, retrans, then the
                // sockid: sport, dport (big endian), src[16], dst[16], ...
                let b = msg.body;
                if b.len() < 24 {
                    continue;
                }
                let port = u16::from_be_bytes([b[4], b[5]]);
                let ip = if b[0] == libc::AF_INET as u8 {
                    IpAddr::V4(Ipv4Addr::new(b[8], b[9], b[10], b[11]))
                } else {
                    IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&b[8..24]).ok()?))
                };
                out.push((ip, port));
            }
        }
    }
    Some(out)
}

/// TCP listeners or bound UDP sockets in the network namespace whose
/// `/proc/.../net` directory this is (`/proc/PID/net` shows the namespace
/// of process PID).
fn listeners_in(dir: &str, udp: bool) -> Vec<(IpAddr, u16)> {
    let (files, state) = if udp { (["udp", "udp6"], "07") } else { (["tcp", "tcp6"], "0A") };
    files
        .iter()
        .filter_map(|f| read_whole(&format!("{dir}/{f}")))
        .flat_map(|t| parse_proc_net(&t, Some(state)))
        .collect()
}

/// Whether a process in the network namespace of `pid` listens on TCP
/// `port` (or, `udp`, has bound it), on any address: `ss -ltn 'sport = :PORT'`
/// in that namespace, without starting a process. For waiting until a
/// server just started is ready.
pub fn listening_in(pid: u32, udp: bool, port: u16) -> bool {
    listeners_in(&format!("/proc/{pid}/net"), udp).iter().any(|(_, p)| *p == port)
}

/// One large read: every read() of these files walks the kernel's table again.
fn read_whole(path: &str) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Some(String::from_utf8_lossy(&buf).into_owned()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
    }
}

/// `sysctl net.ipv4.ip_local_port_range`: where random host ports come from.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n   1: 00000000:0016 00000000:0000 0A 0\n   2: 0100007F:9C40 0100007F:1F90 01 0\n";
        assert_eq!(parse_proc_net(t, Some("0A")), vec![("127.0.0.1".parse().unwrap(), 8080), ("0.0.0.0".parse().unwrap(), 22)]);
        let t6 = "header\n   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(parse_proc_net(t6, Some("0A")), vec![("::1".parse().unwrap(), 80)]);
    }

    #[test]
    fn sees_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(host_listeners(false).iter().any(|(ip, p)| *p == port && ip.is_loopback()));
        let l6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let port6 = l6.local_addr().unwrap().port();
        // sock_diag and /proc/net see the same (other tests' sockets come and go).
        let diag = tcp_listeners_diag().expect("sock_diag");
        let proc = listeners_in("/proc/net", false);
        for want in [("127.0.0.1".parse().unwrap(), port), ("::1".parse().unwrap(), port6)] {
            assert!(diag.contains(&want) && proc.contains(&want), "{want:?}: {diag:?} / {proc:?}");
        }
    }
}
