//! Forgetting connection-tracking entries of a removed port mapping, over
//! ctnetlink in-process: `conntrack -D -p PROTO --orig-port-dst PORT`.
//! Without this a UDP flow (or a re-published port) would keep using the old
//! translation until its entry times out.

use crate::error::{LinuxError, Result};
use crate::nfnl::{self, NLA_F_NESTED, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_STATUS: u16 = 3;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_DST: u16 = 4;
/// IPS_DST_NAT: the entry's destination was translated (DNAT).
const IPS_DST_NAT: u32 = 1 << 5;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;

/// Attributes of one nested level: (type without flags, payload).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & !(NLA_F_NESTED | 0x4000);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

fn find(b: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(b).into_iter().find(|(t, _)| *t == ty).map(|(_, p)| p)
}

/// The netlink and nfgenmsg headers; `family` AF_UNSPEC dumps both.
fn header(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8) {
    out.extend_from_slice(&[0u8; 16]);
    out[4..6].copy_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | ty).to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&[family, 0, 0, 0]);
}

fn finish(out: &mut [u8]) {
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
}

/// Which entries of the given ports to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// Every entry (a mapping went away: no flow may keep its translation).
    All,
    /// Entries that were not translated and went to one of these (the
    /// host's own) addresses: flows that reached the host before a port
    /// was published. A client that keeps sending from one source port
    /// would otherwise never reach the new mapping, as its entry is
    /// refreshed by every datagram.
    UntranslatedTo(std::collections::HashSet<std::net::IpAddr>),
}

/// The original destination address of an entry's tuple.
fn orig_dst(orig: &[u8]) -> Option<std::net::IpAddr> {
    let ip = find(orig, CTA_TUPLE_IP)?;
    if let Some(v) = find(ip, CTA_IP_V4_DST).and_then(|v| <[u8; 4]>::try_from(v).ok()) {
        return Some(std::net::IpAddr::from(v));
    }
    find(ip, CTA_IP_V6_DST).and_then(|v| <[u8; 16]>::try_from(v).ok()).map(std::net::IpAddr::from)
}

/// Whether this namespace tracks no connection at all (its own count, in
/// /proc/sys/net/netfilter): a dump walks every bucket of the kernel's
/// table, whichever namespace they belong to — 10-20 ms with the default
/// 262,144 buckets — to find nothing.
fn table_empty() -> bool {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count").is_ok_and(|s| s.trim() == "0")
}

/// Deletes every entry (IPv4 and IPv6) whose original direction has one of
/// the given (protocol, destination port) pairs, as `which` says. One dump of the
/// table, whatever the number of ports (a 10,000-port mapping is one pass,
/// not 10,000).
pub fn delete_by_orig_dport(ports: &std::collections::HashSet<(u8, u16)>, which: &Which) -> Result<()> {
    if ports.is_empty() || table_empty() {
        return Ok(());
    }
    let what = || format!("conntrack -D --orig-port-dst ({} ports)", ports.len());
    let sock = nfnl::open().map_err(|e| LinuxError::kernel(what(), e))?;
    let mut req = Vec::new();
    header(&mut req, IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, libc::AF_UNSPEC as u8);
    finish(&mut req);
    sock.send(&req, 0).map_err(|e| LinuxError::kernel(what(), e))?;
    // Collect the original tuples to delete (with their family), then delete each.
    let mut victims: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    'dump: loop {
        buf.clear();
        let n = sock.recv(&mut buf, 0).map_err(|e| LinuxError::kernel(what(), e))?;
        for m in nfnl::messages(&buf[..n]) {
            if m.ty == NLMSG_DONE || m.ty == NLMSG_ERROR {
                break 'dump;
            }
            // After the 4-byte nfgenmsg come the attributes.
            let Some(body) = m.body.get(4..) else { continue };
            if let Some(orig) = find(body, CTA_TUPLE_ORIG) {
                let p = find(orig, CTA_TUPLE_PROTO);
                let num = p.and_then(|p| find(p, CTA_PROTO_NUM)).and_then(|v| v.first().copied());
                let dport = p.and_then(|p| find(p, CTA_PROTO_DST_PORT)).filter(|v| v.len() >= 2).map(|v| u16::from_be_bytes([v[0], v[1]]));
                let mut hit = matches!((num, dport), (Some(p), Some(d)) if ports.contains(&(p, d)));
                if let (true, Which::UntranslatedTo(local)) = (hit, which) {
                    let status = find(body, CTA_STATUS).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(u32::from_be_bytes).unwrap_or(0);
                    hit = status & IPS_DST_NAT == 0 && orig_dst(orig).is_some_and(|d| d.is_loopback() || local.contains(&d));
                }
                if hit {
                    if let Some(dst) = orig_dst(orig) {
                        let family = if dst.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET } as u8;
                        victims.push((family, orig.to_vec()));
                    }
                }
            }
        }
    }
    for (i, (family, orig)) in victims.iter().enumerate() {
        let mut m = Vec::new();
        header(&mut m, IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, 2 + i as u32, *family);
        let nla_len = (4 + orig.len()) as u16;
        m.extend_from_slice(&nla_len.to_ne_bytes());
        m.extend_from_slice(&(CTA_TUPLE_ORIG | NLA_F_NESTED).to_ne_bytes());
        m.extend_from_slice(orig);
        finish(&mut m);
        sock.send(&m, 0).map_err(|e| LinuxError::kernel(what(), e))?;
        buf.clear();
        // ENOENT (the entry expired meanwhile) is fine.
        let _ = sock.recv(&mut buf, 0);
    }
    Ok(())
}
