//! Applying set-element changes in-process over nfnetlink: one atomic batch
//! per request, no `nft` process. Equivalent to
//! `nft 'delete element inet berth SET { ... }; add element inet berth SET { ... }'`.

use std::collections::BTreeSet;
use std::io;

use berth_core::nft::{Element, TABLE};
use netlink_sys::Socket;

use super::wire::{encode_batch, WireElement};
use crate::nfnl;
use crate::error::{LinuxError, Result};

/// Add or delete one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementOp {
    Add(Element),
    Delete(Element),
}

fn wire(e: &Element) -> WireElement<'_> {
    WireElement { set: e.set(), key: e.key(), key_end: e.key_end(), data: e.data() }
}

/// Sends one batch: every deletion and addition commits together or not at
/// all. An empty change sends nothing.
pub fn apply_elements(del: &BTreeSet<Element>, add: &BTreeSet<Element>) -> Result<()> {
    if del.is_empty() && add.is_empty() {
        return Ok(());
    }
    let what = || describe(del, add);
    let del_w: Vec<WireElement> = del.iter().map(wire).collect();
    let add_w: Vec<WireElement> = add.iter().map(wire).collect();
    let (bytes, seqs) = encode_batch(TABLE, &del_w, &add_w, 1);

    let sock = nfnl::open().map_err(|e| LinuxError::kernel(what(), e))?;
    set_bufs(&sock, bytes.len());
    sock.send(&bytes, 0).map_err(|e| LinuxError::kernel(what(), e))?;

    // The kernel has processed the whole batch when send returns; collect one
    // ack per element message, or the first error (which aborts the batch).
    let mut pending: BTreeSet<u32> = seqs.into_iter().collect();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while !pending.is_empty() {
        buf.clear();
        let n = sock.recv(&mut buf, 0).map_err(|e| LinuxError::kernel(what(), e))?;
        for m in nfnl::messages(&buf[..n]) {
            match m.error() {
                Some(0) => {
                    pending.remove(&m.seq);
                }
                Some(code) => return Err(LinuxError::kernel(what(), io::Error::from_raw_os_error(-code))),
                None => {}
            }
        }
    }
    Ok(())
}

/// Lets one send carry a large batch (10,000 elements is ~700 KB).
fn set_bufs(sock: &Socket, len: usize) {
    use std::os::fd::AsRawFd;
    let size = (len + 64 * 1024) as libc::c_int;
    for opt in [libc::SO_SNDBUFFORCE, libc::SO_RCVBUFFORCE] {
        // SAFETY: setsockopt with a pointer to a local int of the right size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The change in nft syntax, for error messages and logs (first few elements).
pub fn describe(del: &BTreeSet<Element>, add: &BTreeSet<Element>) -> String {
    let mut parts = Vec::new();
    for (verb, set) in [("delete", del), ("add", add)] {
        for e in set.iter().take(3) {
            parts.push(format!("{verb} element inet {TABLE} {} {{ {} }}", e.set(), e.text()));
        }
        if set.len() > 3 {
            parts.push(format!("... {} more", set.len() - 3));
        }
    }
    format!("nft '{}'", parts.join("; "))
}
