//! Address allocation inside one network's pool.
//!
//! Pure functions over the set of addresses already taken. Allocation walks
//! forward from just after the last address handed out (wrapping at the end of
//! the pool), as Docker's IPAM does, so an address freed a moment ago is not
//! immediately given to someone else while neighbours may still have it in
//! their ARP caches. The daemon keeps the set and the cursor; the store keeps
//! the set durable, so an address is never given twice across restarts.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::model::IpamConfig;
use crate::{CoreError, Result};

/// An address as an integer, so both families share one allocator.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_u128`] for the family of `like`.
pub fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// First and last address of a block, as integers.
pub fn bounds(net: &IpNet) -> (u128, u128) {
    (to_u128(net.network()), to_u128(net.broadcast()))
}

/// Addresses of the subnet no container may have: the gateway, the network
/// address and (IPv4) the broadcast address.
pub fn reserved(cfg: &IpamConfig) -> [u128; 3] {
    let (lo, hi) = bounds(&cfg.subnet);
    let bcast = if cfg.subnet.addr().is_ipv4() { hi } else { lo };
    [lo, bcast, to_u128(cfg.gateway)]
}

/// Checks an address the user asked for with `--ip`.
pub fn check_static(cfg: &IpamConfig, ip: IpAddr, used: &BTreeSet<IpAddr>, network: &str) -> Result<()> {
    if !cfg.subnet.contains(&ip) {
        return Err(CoreError::IpOutsideSubnet { ip, subnet: cfg.subnet, network: network.to_string() });
    }
    if ip == cfg.gateway {
        return Err(CoreError::IpIsGateway { ip, network: network.to_string() });
    }
    if reserved(cfg).contains(&to_u128(ip)) {
        return Err(CoreError::IpReserved { ip, network: network.to_string() });
    }
    if used.contains(&ip) {
        return Err(CoreError::IpInUse { ip, network: network.to_string() });
    }
    Ok(())
}

/// Picks the next free address of the pool after `cursor`.
pub fn allocate(
    cfg: &IpamConfig,
    used: &BTreeSet<IpAddr>,
    cursor: Option<IpAddr>,
    network: &str,
) -> Result<IpAddr> {
    let (lo, hi) = bounds(&cfg.pool());
    let like = cfg.subnet.addr();
    let used: BTreeSet<u128> = used.iter().filter(|a| a.is_ipv4() == like.is_ipv4()).map(|a| to_u128(*a)).collect();
    let res = reserved(cfg);
    let start = cursor
        .map(to_u128)
        .and_then(|c| c.checked_add(1))
        .filter(|c| (lo..=hi).contains(c))
        .unwrap_or(lo);
    let found = first_free(start, hi, &used, &res)
        .or_else(|| if start > lo { first_free(lo, start - 1, &used, &res) } else { None });
    found
        .map(|v| from_u128(v, like))
        .ok_or_else(|| CoreError::AddressPoolExhausted { network: network.to_string(), family: if like.is_ipv6() { "IPv6" } else { "IPv4" } })
}

/// The lowest address in `[a, b]` that is neither used nor reserved. Runs in
/// time proportional to the run of taken addresses after `a`, not the pool size.
fn first_free(a: u128, b: u128, used: &BTreeSet<u128>, reserved: &[u128]) -> Option<u128> {
    let mut c = a;
    let mut taken = used.range(a..=b).peekable();
    loop {
        if c > b {
            return None;
        }
        if reserved.contains(&c) {
            c = c.checked_add(1)?;
            continue;
        }
        match taken.peek() {
            Some(&&u) if u < c => {
                taken.next();
            }
            Some(&&u) if u == c => {
                taken.next();
                c = c.checked_add(1)?;
            }
            _ => return Some(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(subnet: &str, gw: &str, range: Option<&str>) -> IpamConfig {
        IpamConfig {
            subnet: subnet.parse().unwrap(),
            gateway: gw.parse().unwrap(),
            ip_range: range.map(|r| r.parse().unwrap()),
            user_subnet: true,
        }
    }

    #[test]
    fn first_address_skips_network_and_gateway() {
        let c = cfg("172.17.0.0/16", "172.17.0.1", None);
        let ip = allocate(&c, &BTreeSet::new(), None, "n").unwrap();
        assert_eq!(ip, "172.17.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn walks_forward_from_cursor_and_wraps() {
        let c = cfg("10.0.0.0/29", "10.0.0.1", None);
        let mut used = BTreeSet::new();
        let mut cursor = None;
        let mut got = vec![];
        for _ in 0..5 {
            let ip = allocate(&c, &used, cursor, "n").unwrap();
            used.insert(ip);
            cursor = Some(ip);
            got.push(ip.to_string());
        }
        assert_eq!(got, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        assert_eq!(allocate(&c, &used, cursor, "n"), Err(CoreError::AddressPoolExhausted { network: "n".into(), family: "IPv4" }));
        used.remove(&"10.0.0.3".parse().unwrap());
        assert_eq!(allocate(&c, &used, cursor, "n").unwrap().to_string(), "10.0.0.3");
    }

    #[test]
    fn ip_range_limits_allocation() {
        let c = cfg("192.168.28.0/24", "192.168.28.1", Some("192.168.28.64/26"));
        let ip = allocate(&c, &BTreeSet::new(), None, "n").unwrap();
        assert_eq!(ip.to_string(), "192.168.28.64");
    }

    #[test]
    fn static_checks() {
        let c = cfg("10.1.0.0/24", "10.1.0.1", None);
        let mut used = BTreeSet::new();
        used.insert("10.1.0.9".parse().unwrap());
        assert!(matches!(check_static(&c, "10.2.0.5".parse().unwrap(), &used, "n"), Err(CoreError::IpOutsideSubnet { .. })));
        assert!(matches!(check_static(&c, "10.1.0.1".parse().unwrap(), &used, "n"), Err(CoreError::IpIsGateway { .. })));
        assert!(matches!(check_static(&c, "10.1.0.255".parse().unwrap(), &used, "n"), Err(CoreError::IpReserved { .. })));
        assert!(matches!(check_static(&c, "10.1.0.9".parse().unwrap(), &used, "n"), Err(CoreError::IpInUse { .. })));
        check_static(&c, "10.1.0.10".parse().unwrap(), &used, "n").unwrap();
    }

    #[test]
    fn ipv6_allocation() {
        let c = cfg("fd00:1::/64", "fd00:1::1", None);
        assert_eq!(allocate(&c, &BTreeSet::new(), None, "n").unwrap().to_string(), "fd00:1::2");
        // IPv4 addresses in use do not block IPv6 ones, and the last address is usable (no broadcast).
        let c = cfg("fd00:1::/126", "fd00:1::1", None);
        let used: BTreeSet<IpAddr> = ["fd00:1::2".parse().unwrap(), "0.0.0.3".parse().unwrap()].into();
        assert_eq!(allocate(&c, &used, None, "n").unwrap().to_string(), "fd00:1::3");
        let used: BTreeSet<IpAddr> = ["fd00:1::2".parse().unwrap(), "fd00:1::3".parse().unwrap()].into();
        assert!(matches!(allocate(&c, &used, None, "n"), Err(CoreError::AddressPoolExhausted { family: "IPv6", .. })));
        assert!(matches!(check_static(&c, "fd00:1::".parse().unwrap(), &BTreeSet::new(), "n"), Err(CoreError::IpReserved { .. })), "subnet-router anycast");
    }

    proptest! {
        /// Whatever the order of allocations and releases, an address is never
        /// handed out twice, never reserved, always inside the pool.
        #[test]
        fn never_twice_never_reserved(prefix in 26u8..=30, ops in proptest::collection::vec(any::<(bool, u8)>(), 1..200)) {
            let subnet: IpNet = format!("10.9.0.0/{prefix}").parse().unwrap();
            let c = IpamConfig { subnet, gateway: "10.9.0.1".parse().unwrap(), ip_range: None, user_subnet: true };
            let mut used: BTreeSet<IpAddr> = BTreeSet::new();
            let mut cursor = None;
            let capacity = (1u32 << (32 - prefix)) - 3;
            for (alloc, pick) in ops {
                if alloc || used.is_empty() {
                    match allocate(&c, &used, cursor, "n") {
                        Ok(ip) => {
                            prop_assert!(subnet.contains(&ip));
                            prop_assert!(!reserved(&c).contains(&to_u128(ip)));
                            prop_assert!(used.insert(ip), "{ip} given twice");
                            cursor = Some(ip);
                        }
                        Err(_) => prop_assert_eq!(used.len() as u32, capacity),
                    }
                } else {
                    let victim = *used.iter().nth(pick as usize % used.len()).unwrap();
                    used.remove(&victim);
                }
            }
        }
    }
}
