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

/// Turns IPv6 off on one link: `sysctl -w net.ipv6.conf.DEV.disable_ipv6=1`.
///
/// For the host end of an endpoint, before it comes up. A bridge port needs
/// no layer-3 address, and with IPv6 on, every port adds its own `ff00::/8`
/// multicast route to the host's table (`ip -6 route show table local`), all
/// on one node of the kernel's IPv6 routing tree: each further port's
/// route insertion, and every link state change's walk over that table,
/// then costs time proportional to the number of containers. Bridged IPv6
/// between containers is layer 2 and unaffected. A host booted without IPv6
/// (`ipv6.disable=1`) has no such keys at all: nothing to do there.
pub fn disable_ipv6(dev: &str) -> Result<()> {
    match std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"), "1") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !std::path::Path::new("/proc/sys/net/ipv6/conf").exists() => Ok(()),
        r => r.ctx(|| format!("sysctl -w net.ipv6.conf.{dev}.disable_ipv6=1")),
    }
}

/// `disable_ipv6`, but read first and written only when it is not set
/// yet (true when it changed), so that making sure of it on an existing
/// link changes nothing. For a long-lived device (an overlay's tunnel)
/// rather than a fresh veth end.
pub fn ensure_ipv6_disabled(dev: &str) -> Result<bool> {
    if !std::path::Path::new("/proc/sys/net/ipv6/conf").exists() {
        return Ok(false);
    }
    write(&format!("net/ipv6/conf/{dev}/disable_ipv6"), "1")
}

/// The bridge of an overlay answers ARP for the addresses routed into
/// its tunnel: `sysctl -w net.ipv4.conf.BRIDGE.proxy_arp=1
/// net.ipv4.neigh.BRIDGE.proxy_delay=0`.
///
/// A container has the whole subnet's prefix, so it asks by ARP for a
/// container on another host as if it were on its own segment; the host
/// answers with the bridge's MAC because its route to that address leaves
/// through another device (the tunnel), then routes the packets. Without
/// `proxy_delay=0` each answer waits a random time of up to 0.8 s (the
/// default `proxy_delay` of 80 ticks), which the first packet of every
/// new neighbour would wait for. Returns whether anything changed.
pub fn proxy_arp(bridge: &str) -> Result<bool> {
    let a = write(&format!("net/ipv4/conf/{bridge}/proxy_arp"), "1")?;
    let b = write(&format!("net/ipv4/neigh/{bridge}/proxy_delay"), "0")?;
    Ok(a || b)
}

/// No duplicate address detection on one link:
/// `sysctl -w net.ipv6.conf.DEV.accept_dad=0`, before it comes up.
///
/// For bridges. A new bridge's IPv6 link-local address would otherwise be
/// "tentative" for a second or two, and until then the host sends no
/// neighbour solicitation from the bridge for a packet it forwards (those
/// are sourced from the link-local address): the first IPv6 packets routed
/// to a container — a reply from outside, a published port — would wait
/// or be lost. The bridge's addresses are berth's to choose, so checking
/// them for duplicates protects nothing.
pub fn no_dad(dev: &str) -> Result<()> {
    match std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/accept_dad"), "0") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !std::path::Path::new("/proc/sys/net/ipv6/conf").exists() => Ok(()),
        r => r.ctx(|| format!("sysctl -w net.ipv6.conf.{dev}.accept_dad=0")),
    }
}
