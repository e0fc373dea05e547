//! A fast path for the queries containers send nearly always — one question,
//! class IN, maybe an EDNS OPT record — parsed and answered straight from
//! the packet bytes without allocating a full message. Anything else goes
//! through hickory-proto. Pure and total: any input yields `None` or a
//! well-formed answer (fuzzed in `fuzz/`, tested below).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A query the fast path understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simple {
    pub id: u16,
    /// Lowercase, dotted, no trailing dot.
    pub name: String,
    pub qtype: u16,
    /// Bytes of header + question (copied into the answer).
    pub question_end: usize,
    /// EDNS OPT present: the client's UDP payload size.
    pub edns: Option<u16>,
    pub rd: bool,
}

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_ANY: u16 = 255;

/// Parses a plain query, or None when the general path must handle it.
pub fn parse(p: &[u8]) -> Option<Simple> {
    if p.len() < 17 || p.len() > 512 + 11 + 64 {
        return None;
    }
    let flags = u16::from_be_bytes([p[2], p[3]]);
    // QR=0, opcode QUERY, no TC; one question, no answers or authority, at most one additional.
    if flags & 0xfa00 != 0 || p[4..8] != [0, 1, 0, 0] || p[8..10] != [0, 0] || u16::from_be_bytes([p[10], p[11]]) > 1 {
        return None;
    }
    let mut i = 12;
    let mut name = String::new();
    loop {
        let len = *p.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len > 63 || name.len() + len > 253 {
            return None;
        }
        let label = p.get(i + 1..i + 1 + len)?;
        if !label.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_') {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
        i += 1 + len;
    }
    if name.is_empty() {
        return None;
    }
    let qtype = u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*p.get(i + 2)?, *p.get(i + 3)?]);
    if qclass != 1 {
        return None;
    }
    let question_end = i + 4;
    let edns = if p[11] == 1 {
        // The additional record must be exactly a root-named OPT.
        let r = p.get(question_end..)?;
        if r.len() < 11 || r[0] != 0 || u16::from_be_bytes([r[1], r[2]]) != 41 {
            return None;
        }
        let rdlen = u16::from_be_bytes([r[9], r[10]]) as usize;
        if r.len() != 11 + rdlen {
            return None;
        }
        Some(u16::from_be_bytes([r[3], r[4]]))
    } else {
        if p.len() != question_end {
            return None;
        }
        None
    };
    Some(Simple { id: u16::from_be_bytes([p[0], p[1]]), name, qtype, question_end, edns, rd: flags & 0x0100 != 0 })
}

/// The records of `ips` that answer a query of type `qtype` (A: IPv4,
/// AAAA: IPv6, ANY: both; anything else: none, i.e. NODATA).
pub fn address_records(qtype: u16, ips: &[IpAddr]) -> Vec<Rr<'static>> {
    ips.iter()
        .filter_map(|ip| match (qtype, ip) {
            (TYPE_A | TYPE_ANY, IpAddr::V4(a)) => Some(Rr::A(*a)),
            (TYPE_AAAA | TYPE_ANY, IpAddr::V6(a)) => Some(Rr::Aaaa(*a)),
            _ => None,
        })
        .collect()
}

/// Records the fast path writes.
pub enum Rr<'a> {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ptr(&'a str),
}

/// RCODEs used here.
pub const NOERROR: u8 = 0;
pub const NXDOMAIN: u8 = 3;

/// The answer: header and question from the query, `rrs` (TTL `ttl`)
/// pointing at the question name, an OPT record if the query had one.
/// Returns None if it would not fit `limit` (the general path truncates).
pub fn answer(p: &[u8], q: &Simple, rcode: u8, rrs: &[Rr], ttl: u32, limit: usize) -> Option<Vec<u8>> {
    let mut r = Vec::with_capacity(q.question_end + 16 * rrs.len() + 11);
    r.extend_from_slice(&p[..q.question_end]);
    r[2] = 0x80 | 0x04 | if q.rd { 0x01 } else { 0 }; // QR, AA, RD echoed
    r[3] = 0x80 | (rcode & 0x0f); // RA
    r[6..8].copy_from_slice(&(rrs.len() as u16).to_be_bytes());
    r[8..12].copy_from_slice(&[0, 0, 0, if q.edns.is_some() { 1 } else { 0 }]);
    for rr in rrs {
        r.extend_from_slice(&[0xc0, 0x0c]);
        match rr {
            Rr::Aaaa(ip) => {
                r.extend_from_slice(&[0, 28, 0, 1]);
                r.extend_from_slice(&ttl.to_be_bytes());
                r.extend_from_slice(&[0, 16]);
                r.extend_from_slice(&ip.octets());
            }
            Rr::A(ip) => {
                r.extend_from_slice(&[0, 1, 0, 1]);
                r.extend_from_slice(&ttl.to_be_bytes());
                r.extend_from_slice(&[0, 4]);
                r.extend_from_slice(&ip.octets());
            }
            Rr::Ptr(target) => {
                let mut rd = Vec::new();
                for label in target.split('.').filter(|l| !l.is_empty()) {
                    if label.len() > 63 {
                        return None;
                    }
                    rd.push(label.len() as u8);
                    rd.extend_from_slice(label.as_bytes());
                }
                rd.push(0);
                r.extend_from_slice(&[0, 12, 0, 1]);
                r.extend_from_slice(&ttl.to_be_bytes());
                r.extend_from_slice(&(rd.len() as u16).to_be_bytes());
                r.extend_from_slice(&rd);
            }
        }
    }
    if q.edns.is_some() {
        // OPT: root name, type 41, our UDP size 1232, no extended flags, no options.
        r.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    (r.len() <= limit).then_some(r)
}

/// Fuzz entry (`fuzz/fuzz_targets/dns_packet.rs` and the corpus replay
/// test): any bytes through the fast path and hickory-proto's parser.
pub fn fuzz_entry(data: &[u8]) {
    if let Some(s) = parse(data) {
        let a = answer(data, &s, NOERROR, &[Rr::A(Ipv4Addr::new(10, 0, 0, 1)), Rr::Aaaa(Ipv6Addr::LOCALHOST), Rr::Ptr("a.b")], 0, 65535)
            .expect("a 64 KiB limit always fits");
        assert!(hickory_proto::op::Message::from_vec(&a).is_ok(), "the fast path wrote an unparsable answer");
    }
    if let Ok(m) = hickory_proto::op::Message::from_vec(data) {
        let _ = super::answer::to_udp(&super::answer::response_to(&m, hickory_proto::op::ResponseCode::NoError), 512);
    }
    let _ = super::answer::format_error(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};
    use proptest::prelude::*;

    fn q(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn parses_and_answers_like_hickory_reads_it() {
        for edns in [false, true] {
            let p = q("Web.App.", RecordType::A, edns);
            let s = parse(&p).unwrap();
            assert_eq!((s.name.as_str(), s.qtype, s.edns.is_some()), ("web.app", TYPE_A, edns));
            let a = answer(&p, &s, NOERROR, &[Rr::A("10.0.0.2".parse().unwrap()), Rr::A("10.0.0.3".parse().unwrap())], 0, 512).unwrap();
            let m = Message::from_vec(&a).unwrap();
            assert_eq!(m.metadata.id, s.id);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.metadata.authoritative && m.metadata.recursion_available && m.metadata.recursion_desired);
            assert_eq!(m.answers.len(), 2);
            assert_eq!(m.answers[0].name.to_ascii(), "Web.App.");
            assert_eq!(m.edns.is_some(), edns);
        }
        let p = q("Web.App.", RecordType::AAAA, false);
        let s = parse(&p).unwrap();
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let a = answer(&p, &s, NOERROR, &address_records(s.qtype, &ips), 0, 512).unwrap();
        let m = Message::from_vec(&a).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data.to_string(), "fd00::2");
        let p = q("2.0.0.10.in-addr.arpa.", RecordType::PTR, false);
        let s = parse(&p).unwrap();
        let a = answer(&p, &s, NOERROR, &[Rr::Ptr("db.app")], 0, 512).unwrap();
        let m = Message::from_vec(&a).unwrap();
        assert_eq!(m.answers[0].data.to_string(), "db.app.");
        let a = answer(&p, &s, NXDOMAIN, &[], 0, 512).unwrap();
        assert_eq!(Message::from_vec(&a).unwrap().metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn leaves_the_rest_to_the_general_path() {
        assert!(parse(&[0; 11]).is_none());
        let mut p = q("a.b.", RecordType::A, false);
        p[2] |= 0x80; // a response
        assert!(parse(&p).is_none());
        let mut p = q("a.b.", RecordType::A, false);
        p.push(0); // trailing byte
        assert!(parse(&p).is_none());
        let mut p = q("ab.c.", RecordType::A, false);
        p[14] = b' '; // "a b" in the first label
        assert!(parse(&p).is_none());
    }

    proptest! {
        /// Any bytes: no panic, and whatever the fast path accepts it answers
        /// with a message hickory parses, with the same id.
        #[test]
        fn total_and_well_formed(p in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Some(s) = parse(&p) {
                let a = answer(&p, &s, NOERROR, &[Rr::A(Ipv4Addr::new(10, 0, 0, 1)), Rr::Ptr("x.y")], 0, 4096).unwrap();
                let m = Message::from_vec(&a);
                prop_assert!(m.is_ok());
                prop_assert_eq!(m.unwrap().metadata.id, s.id);
            }
        }

        #[test]
        fn valid_queries_take_the_fast_path(name in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9]{0,10}){0,3}", edns in any::<bool>()) {
            let p = q(&format!("{name}."), RecordType::A, edns);
            let s = parse(&p).unwrap();
            prop_assert_eq!(s.name, name);
        }
    }
}
