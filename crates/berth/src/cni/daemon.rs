//! The plugin's line to the daemon of the caller's network namespace
//! (`crate::autostart` finds its socket). The first request is sent
//! straight away — no probe first, so an ADD or a DEL is one request —
//! and only when nothing answers is the daemon started (detached) and the
//! request sent again.
//!
//! Requests are plain blocking HTTP/1.1 on the Unix socket: a plugin makes
//! one request and exits, and a tokio runtime and hyper connection would
//! cost more than the request itself takes the daemon. Only the start of a
//! daemon (`autostart`, async) gets a runtime.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use berth_core::cni::{code, CniError};
use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::autostart::{self, Target};
use crate::client::Reply;

pub struct Daemon {
    pub target: Target,
}

/// A daemon's error answer as a CNI error: a full store is transient
/// (507: try again later), everything else is the daemon refusing.
pub fn refused(r: &Reply, what: &str) -> CniError {
    let c = if r.status.as_u16() == 507 { code::TRY_AGAIN } else { code::DAEMON_REFUSED };
    let msg = message(r);
    CniError::new(c, format!("berth daemon: {what} failed"), if msg.is_empty() { String::from_utf8_lossy(&r.body).into_owned() } else { msg })
}

/// The daemon's message of an error answer.
pub fn message(r: &Reply) -> String {
    serde_json::from_slice::<Value>(&r.body).ok().and_then(|v| v["message"].as_str().map(str::to_string)).unwrap_or_default()
}

fn unreachable(e: impl std::fmt::Display) -> CniError {
    CniError::new(code::TRY_AGAIN, "the berth daemon cannot be reached", e.to_string())
}

fn bad_answer(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unexpected answer from the daemon: {what}"))
}

/// A chunked body, decoded.
fn dechunk(mut b: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").ok_or_else(|| bad_answer("chunk size"))?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap_or("").split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad_answer("chunk size"))?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or_else(|| bad_answer("short chunk"))?);
        b = b.get(size + 2..).ok_or_else(|| bad_answer("short chunk"))?;
    }
}

/// One request on a fresh connection, `Connection: close`, read to the end.
fn call(socket: &Path, method: &Method, path: &str, body: Option<&[u8]>) -> std::io::Result<Reply> {
    let mut s = UnixStream::connect(socket)?;
    let body = body.unwrap_or_default();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    s.write_all(&[head.as_bytes(), body].concat())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad_answer("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| bad_answer("status line"))?;
    let rest = &raw[end + 4..];
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Ok(Reply { status: StatusCode::from_u16(status).map_err(|_| bad_answer("status"))?, headers: Default::default(), body: body.into() })
}

impl Daemon {
    pub fn new() -> Result<Daemon, CniError> {
        let target = autostart::target().map_err(|e| CniError::new(code::INTERNAL, "finding the berth daemon", format!("{e:#}")))?;
        Ok(Daemon { target })
    }

    /// Whether a daemon of this namespace ever kept state (its store exists):
    /// DEL and GC have nothing to release otherwise, and start no daemon.
    pub fn has_state(&self) -> bool {
        self.target.root.join("berth.db").exists()
    }

    /// One request; when nothing answers, starts the daemon and sends it again.
    pub fn request(&mut self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply, CniError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        match call(&self.target.socket, &method, path, bytes.as_deref()) {
            Ok(r) => Ok(r),
            Err(_) => {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(unreachable)?;
                rt.block_on(autostart::connect_or_start(&self.target)).map_err(|e| unreachable(format!("{e:#}")))?;
                call(&self.target.socket, &method, path, bytes.as_deref()).map_err(unreachable)
            }
        }
    }

    /// One request, or None when no daemon answers (none is started).
    pub fn request_if_running(&self, method: Method, path: &str, body: Option<&Value>) -> Option<Reply> {
        call(&self.target.socket, &method, path, body.map(|b| b.to_string().into_bytes()).as_deref()).ok()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunked_bodies() {
        assert_eq!(super::dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n").unwrap(), b"Wikipedia");
        assert!(super::dechunk(b"9\r\nWiki\r\n").is_err());
        assert!(super::dechunk(b"zz\r\n").is_err());
    }
}
