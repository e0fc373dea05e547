//! The bits of nfnetlink framing shared by the set-element batches
//! (`nft::elements`) and the conntrack flush (`conntrack`): constants, a
//! socket, and iterating over the messages of a reply buffer.

use std::io;

use netlink_sys::{Socket, SocketAddr};

pub const NETLINK_NETFILTER: isize = 12;
pub const NLM_F_REQUEST: u16 = 1;
pub const NLM_F_ACK: u16 = 4;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLA_F_NESTED: u16 = 1 << 15;

/// A connected NETLINK_NETFILTER socket.
pub fn open() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_NETFILTER)?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    Ok(s)
}

/// One message of a reply: header fields and the bytes after the header.
pub struct Msg<'a> {
    pub ty: u16,
    pub seq: u32,
    pub body: &'a [u8],
}

impl Msg<'_> {
    /// The error code of an NLMSG_ERROR (0 for an ack).
    pub fn error(&self) -> Option<i32> {
        (self.ty == NLMSG_ERROR && self.body.len() >= 4).then(|| i32::from_ne_bytes(self.body[..4].try_into().unwrap()))
    }
}

/// The messages in `buf`; stops at the first malformed length.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Msg<'_>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 16 > buf.len() {
            return None;
        }
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        if len < 16 || off + len > buf.len() {
            return None;
        }
        let m = Msg {
            ty: u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap()),
            seq: u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap()),
            body: &buf[off + 16..off + len],
        };
        off += (len + 3) & !3;
        Some(m)
    })
}
