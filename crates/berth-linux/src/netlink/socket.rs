//! A blocking NETLINK_ROUTE socket with request/ack and dump helpers.

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{LinuxError, Result};

pub struct RtSocket {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl RtSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let what = || "socket(AF_NETLINK, NETLINK_ROUTE)".to_string();
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| LinuxError::kernel(what(), e))?;
        sock.bind_auto().map_err(|e| LinuxError::kernel(what(), e))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(|e| LinuxError::kernel(what(), e))?;
        let _ = sock.set_ext_ack(true);
        Ok(RtSocket { sock, seq: 1, buf: Vec::with_capacity(64 * 1024) })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.sock.send(&out, 0).map_err(|e| LinuxError::kernel("netlink send", e))?;
        Ok(self.seq)
    }

    /// Sends one request and waits for its acknowledgement. `what` is the
    /// equivalent `ip` command, used in the error.
    pub fn request(&mut self, msg: RouteNetlinkMessage, extra_flags: u16, what: impl Fn() -> String) -> Result<()> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags)?;
        self.collect(seq, &what).map(|_| ())
    }

    /// Sends a dump request and returns every message of the reply.
    pub fn dump(&mut self, msg: RouteNetlinkMessage, what: impl Fn() -> String) -> Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        self.collect(seq, &what)
    }

    /// Reads replies for `seq` until its ack (error code 0), an error, or the
    /// end of a dump.
    fn collect(&mut self, seq: u32, what: &dyn Fn() -> String) -> Result<Vec<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        loop {
            self.buf.clear();
            let n = self.sock.recv(&mut self.buf, 0).map_err(|e| LinuxError::kernel(what(), e))?;
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                    .map_err(|e| LinuxError::Decode(format!("{}: {e}", what())))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(LinuxError::Decode(format!("{}: zero-length message", what())));
                }
                off += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(LinuxError::kernel(what(), io::Error::from_raw_os_error(-code.get()))),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }
}

impl RtSocket {
    /// Turns the kernel's strict checking of GET/dump requests on or off
    /// (`NETLINK_GET_STRICT_CHK`). With it on, the kernel honours filters
    /// in dump requests (a neighbour or FDB dump of one device, a route
    /// dump of one table, protocol and output device) and sends only what
    /// matches, so reading one tunnel's entries costs what it holds, not
    /// what the whole host holds. Kernels before 4.20 lack the option:
    /// callers filter the replies themselves as well, so an error here is
    /// only reported, never fatal to them.
    pub fn set_strict(&mut self, on: bool) -> Result<()> {
        self.sock.set_netlink_get_strict_chk(on).map_err(|e| LinuxError::kernel("setsockopt(NETLINK_GET_STRICT_CHK)", e))
    }

    /// Sends a GET for one object (not a dump) and returns the reply.
    pub fn dump_one(&mut self, msg: RouteNetlinkMessage, what: impl Fn() -> String) -> Result<Option<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK)?;
        Ok(self.collect(seq, &what)?.into_iter().next())
    }
}
