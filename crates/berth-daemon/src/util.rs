//! Small helpers: random ids and time.

use std::time::{SystemTime, UNIX_EPOCH};

/// A 64-hex-digit random id from the kernel's CSPRNG.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    let mut filled = 0;
    while filled < b.len() {
        // SAFETY: getrandom writes at most the given length into the buffer.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr() as *mut libc::c_void, b.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        }
    }
    berth_core::names::id_from_bytes(&b)
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What makes this host's defaults its own (the ULA pool): the machine id
/// (systemd's, or D-Bus's), else the hostname.
pub fn machine_id() -> Vec<u8> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id", "/proc/sys/kernel/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
        .unwrap_or_default()
        .into_bytes()
}
