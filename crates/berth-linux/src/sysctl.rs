//! sysctls under /proc/sys, e.g. `sysctl -w net.ipv4.ip_forward=1`.
//! They apply to the network namespace of the calling process.

use crate::error::{Context, Result};

/// `net.ipv4.ip_forward` or, for keys naming a device (whose name may
/// contain dots, like `eth0.100`), `net/ipv4/conf/DEV/route_localnet`.
fn path(key: &str) -> String {
    if key.contains('/') {
        format!("/proc/sys/{key}")
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

/// `sysctl KEY`
pub fn read(key: &str) -> Result<String> {
    std::fs::read_to_string(path(key)).map(|s| s.trim().to_string()).ctx(|| format!("sysctl {key}"))
}

/// `sysctl -w KEY=VALUE`, skipped when it already has that value.
pub fn write(key: &str, value: &str) -> Result<bool> {
    if read(key).ok().as_deref() == Some(value) {
        return Ok(false);
    }
    std::fs::write(path(key), value).ctx(|| format!("sysctl -w {key}={value}"))?;
    Ok(true)
}

