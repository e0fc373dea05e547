//! Encoding of nfnetlink batches that add or delete set elements
//! (NFT_MSG_NEWSETELEM / NFT_MSG_DELSETELEM between BATCH_BEGIN and
//! BATCH_END). Pure: tested without a kernel.
//!
//! Layout of one element message:
//! `nlmsghdr | nfgenmsg{family=inet, version=0, res_id=0} |
//!  NFTA_SET_ELEM_LIST_TABLE "berth" | NFTA_SET_ELEM_LIST_SET NAME |
//!  NFTA_SET_ELEM_LIST_ELEMENTS [ NFTA_LIST_ELEM [ KEY [VALUE], KEY_END [VALUE]?, DATA [VALUE]? ] ... ]`

use crate::nfnl::{NLA_F_NESTED, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;


const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;

/// An attribute's payload may not exceed 65,535 bytes (nla_len is 16 bits):
/// elements are split over several messages of one batch well below that.
const MAX_ELEMENTS_BYTES: usize = 48 * 1024;

/// One element on the wire.
pub struct WireElement<'a> {
    pub set: &'a str,
    pub key: Vec<u8>,
    pub key_end: Option<Vec<u8>>,
    pub data: Option<Vec<u8>>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn put_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

/// Starts a nested attribute; returns its offset for [`end_nest`].
fn begin_nest(buf: &mut Vec<u8>, ty: u16) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    at
}

fn end_nest(buf: &mut [u8], at: usize) {
    let len = (buf.len() - at) as u16;
    buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

fn put_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    put_attr(buf, ty, &v);
}

fn put_data(buf: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let at = begin_nest(buf, ty);
    put_attr(buf, NFTA_DATA_VALUE, value);
    end_nest(buf, at);
}

/// Appends one netlink message; `body` gets the bytes after the nfgenmsg.
fn message(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, res_id: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&[NFPROTO_INET, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    body(out);
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    out[start + 4..start + 6].copy_from_slice(&ty.to_ne_bytes());
    out[start + 6..start + 8].copy_from_slice(&flags.to_ne_bytes());
    out[start + 8..start + 12].copy_from_slice(&seq.to_ne_bytes());
    out.resize(align4(out.len()), 0);
}

fn element_bytes(e: &WireElement) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    let at = begin_nest(&mut b, NFTA_LIST_ELEM);
    put_data(&mut b, NFTA_SET_ELEM_KEY, &e.key);
    if let Some(end) = &e.key_end {
        put_data(&mut b, NFTA_SET_ELEM_KEY_END, end);
    }
    if let Some(d) = &e.data {
        put_data(&mut b, NFTA_SET_ELEM_DATA, d);
    }
    end_nest(&mut b, at);
    b
}

/// A whole transaction: deletions first, then additions, grouped by set,
/// chunked to fit attributes. Returns the bytes and the sequence numbers of
/// the element messages (each asks for an ack).
pub fn encode_batch(table: &str, del: &[WireElement], add: &[WireElement], first_seq: u32) -> (Vec<u8>, Vec<u32>) {
    let mut out = Vec::new();
    let mut seq = first_seq;
    let mut seqs = Vec::new();
    message(&mut out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, NFNL_SUBSYS_NFTABLES, |_| {});
    for (op, elems) in [(NFT_MSG_DELSETELEM, del), (NFT_MSG_NEWSETELEM, add)] {
        let mut i = 0;
        while i < elems.len() {
            let set = elems[i].set;
            // Gather a run of elements of the same set that fits one attribute.
            let mut chunk: Vec<Vec<u8>> = Vec::new();
            let mut size = 0;
            while i < elems.len() && elems[i].set == set {
                let b = element_bytes(&elems[i]);
                if size + b.len() > MAX_ELEMENTS_BYTES && !chunk.is_empty() {
                    break;
                }
                size += b.len();
                chunk.push(b);
                i += 1;
            }
            seq += 1;
            seqs.push(seq);
            let ty = (NFNL_SUBSYS_NFTABLES << 8) | op;
            let flags = NLM_F_REQUEST | NLM_F_ACK | if op == NFT_MSG_NEWSETELEM { NLM_F_CREATE } else { 0 };
            message(&mut out, ty, flags, seq, 0, |b| {
                put_str(b, NFTA_SET_ELEM_LIST_TABLE, table);
                put_str(b, NFTA_SET_ELEM_LIST_SET, set);
                let at = begin_nest(b, NFTA_SET_ELEM_LIST_ELEMENTS);
                for e in &chunk {
                    b.extend_from_slice(e);
                }
                end_nest(b, at);
            });
        }
    }
    seq += 1;
    message(&mut out, NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, NFNL_SUBSYS_NFTABLES, |_| {});
    (out, seqs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(b: &[u8]) -> Vec<(u16, u16, u32, usize)> {
        let mut v = vec![];
        let mut off = 0;
        while off < b.len() {
            let len = u32::from_ne_bytes(b[off..off + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(b[off + 4..off + 6].try_into().unwrap());
            let fl = u16::from_ne_bytes(b[off + 6..off + 8].try_into().unwrap());
            let seq = u32::from_ne_bytes(b[off + 8..off + 12].try_into().unwrap());
            v.push((ty, fl, seq, len));
            off += align4(len);
        }
        v
    }

    #[test]
    fn batch_frames_elements() {
        let add = vec![WireElement { set: "bridges", key: b"berth0\0\0\0\0\0\0\0\0\0\0".to_vec(), key_end: None, data: None }];
        let del = vec![WireElement { set: "ports_any4", key: vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0], key_end: None, data: Some(vec![172, 17, 0, 2, 0, 80, 0, 0]) }];
        let (b, seqs) = encode_batch("berth", &del, &add, 100);
        let m = msgs(&b);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].0, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(m[1].0, (10 << 8) | NFT_MSG_DELSETELEM);
        assert_eq!(m[2].0, (10 << 8) | NFT_MSG_NEWSETELEM);
        assert_eq!(m[2].1 & NLM_F_CREATE, NLM_F_CREATE);
        assert_eq!(m[3].0, NFNL_MSG_BATCH_END);
        assert_eq!(seqs, vec![101, 102]);
        // Batch begin carries the subsystem id in res_id (big endian).
        assert_eq!(&b[16..20], &[NFPROTO_INET, 0, 0, 10]);
    }

    #[test]
    fn large_batches_are_chunked_below_attribute_limit() {
        let add: Vec<WireElement> = (0..10_000u16)
            .map(|p| WireElement { set: "ports_any4", key: vec![6, 0, 0, 0, (p >> 8) as u8, p as u8, 0, 0], key_end: None, data: Some(vec![10, 0, 0, 2, 0, 80, 0, 0]) })
            .collect();
        let (b, seqs) = encode_batch("berth", &[], &add, 1);
        assert!(seqs.len() > 1);
        for (_, _, _, len) in msgs(&b) {
            assert!(len < 65535);
        }
    }
}
