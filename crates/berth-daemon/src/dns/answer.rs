//! Building responses: local answers, errors, truncation.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Names berth answers live for no time: a container started or removed is
/// seen by the next query.
pub const TTL: u32 = 0;

/// Largest UDP answer without EDNS (RFC 1035); with EDNS, what the client
/// offers, capped at the 1232 bytes recommended against fragmentation.
pub fn udp_limit(q: &Message) -> usize {
    match &q.edns {
        Some(e) => (e.max_payload() as usize).clamp(512, 1232),
        None => 512,
    }
}

/// A response skeleton for a query: same id, opcode, question and RD.
pub fn response_to(q: &Message, code: ResponseCode) -> Message {
    let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.metadata.response_code = code;
    r.add_queries(q.queries.iter().cloned());
    if let Some(e) = &q.edns {
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(e.max_payload().clamp(512, 1232));
        r.set_edns(edns);
    }
    r
}

/// An answer with the addresses of the asked family (A: IPv4, AAAA: IPv6,
/// ANY: both; other types get NODATA).
pub fn addresses(q: &Message, name: &Name, qtype: RecordType, ips: &[IpAddr]) -> Message {
    let mut r = response_to(q, ResponseCode::NoError);
    r.metadata.authoritative = true;
    for ip in ips {
        let data = match (qtype, ip) {
            (RecordType::A | RecordType::ANY, IpAddr::V4(a)) => RData::A(A(*a)),
            (RecordType::AAAA | RecordType::ANY, IpAddr::V6(a)) => RData::AAAA(AAAA(*a)),
            _ => continue,
        };
        r.add_answer(Record::from_rdata(name.clone(), TTL, data));
    }
    r
}

pub fn names(q: &Message, name: &Name, qtype: RecordType, targets: &[String]) -> Message {
    let mut r = response_to(q, ResponseCode::NoError);
    r.metadata.authoritative = true;
    if qtype == RecordType::PTR || qtype == RecordType::ANY {
        for t in targets {
            if let Ok(n) = Name::from_ascii(format!("{t}.")) {
                r.add_answer(Record::from_rdata(name.clone(), TTL, RData::PTR(PTR(n))));
            }
        }
    }
    r
}

/// FORMERR for a packet we could not parse but whose header we can read.
pub fn format_error(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None; // too short, or a response: never answer those
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr).to_vec().ok()
}

/// Serializes for UDP: too large answers are truncated (TC set) so the
/// client retries over TCP.
pub fn to_udp(r: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = r.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    r.truncate().to_vec().ok()
}
