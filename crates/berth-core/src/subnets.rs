//! Subnets: parsing CIDRs, address pools, and choosing a free subnet.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// Parses `ADDR/PREFIX` and insists it is a network address (no host bits).
pub fn parse_subnet(s: &str) -> Result<IpNet> {
    let net = parse_cidr_any(s)?;
    if net.addr() != net.network() {
        return Err(CoreError::SubnetNotCanonical(net, net.trunc()));
    }
    Ok(net)
}

/// Parses `ADDR/PREFIX`, host bits allowed (e.g. `--bip 172.30.0.1/16`).
pub fn parse_cidr_any(s: &str) -> Result<IpNet> {
    s.trim().parse::<IpNet>().map_err(|_| CoreError::InvalidCidr(s.to_string()))
}

pub fn parse_ip(s: &str) -> Result<IpAddr> {
    s.trim().parse::<IpAddr>().map_err(|_| CoreError::InvalidIp(s.to_string()))
}

pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A pool of subnets: `base` split into blocks of prefix length `size`
/// (`--default-address-pool base=172.80.0.0/16,size=24`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    pub base: IpNet,
    pub size: u8,
}

impl AddressPool {
    /// Parses `base=CIDR,size=N` (keys in any order).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || CoreError::InvalidPool(s.to_string());
        let (mut base, mut size) = (None, None);
        for part in s.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            match k.trim() {
                "base" => base = Some(parse_subnet(v).map_err(|_| bad())?),
                "size" => size = Some(v.trim().parse::<u8>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        let pool = AddressPool { base: base.ok_or_else(bad)?, size: size.ok_or_else(bad)? };
        pool.check().map_err(|_| bad())?;
        Ok(pool)
    }

    pub fn check(&self) -> Result<()> {
        let max = if self.base.addr().is_ipv4() { 30 } else { 126 };
        if self.size < self.base.prefix_len() || self.size > max || self.base.addr() != self.base.network() {
            return Err(CoreError::InvalidPool(format!("base={},size={}", self.base, self.size)));
        }
        Ok(())
    }

    /// The pool's blocks in address order. Lazy: a /8 split into /24s is 65,536
    /// candidates and we usually need the first few.
    pub fn blocks(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.base.subnets(self.size).into_iter().flatten()
    }
}

/// Docker's default IPv4 pools: 172.17–172.31 as /16s, then 192.168.0.0/16 as /20s.
pub fn default_pools() -> Vec<AddressPool> {
    let mut v: Vec<AddressPool> = (17..=31)
        .map(|b| AddressPool { base: format!("172.{b}.0.0/16").parse().unwrap(), size: 16 })
        .collect();
    v.push(AddressPool { base: "192.168.0.0/16".parse().unwrap(), size: 20 });
    v
}

/// The default IPv6 pool: a unique local /48 (RFC 4193, `fdXX:XXXX:XXXX::/48`)
/// split into /64s. Its 40-bit global id is derived from `seed` (the
/// machine id), so a host keeps its pool across restarts and two hosts
/// almost never share one.
pub fn default_ula_pool(seed: &[u8]) -> AddressPool {
    // FNV-1a, 64 bits: stable across releases (unlike std's hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let id = h & 0xff_ffff_ffff;
    let base = (0xfdu128 << 120) | ((id as u128) << 80);
    AddressPool { base: IpNet::new(IpAddr::V6(base.into()), 48).unwrap(), size: 64 }
}

/// `pools` with defaults filled in per family: a family the user gave no
/// pool for gets the default pools (Docker's IPv4 ones, the ULA pool).
pub fn with_default_pools(mut pools: Vec<AddressPool>, ula_seed: &[u8]) -> Vec<AddressPool> {
    if !pools.iter().any(|p| p.base.addr().is_ipv4()) {
        pools.extend(default_pools());
    }
    if !pools.iter().any(|p| p.base.addr().is_ipv6()) {
        pools.push(default_ula_pool(ula_seed));
    }
    pools
}

/// The first block of the pools of one family (`v6`) that overlaps neither
/// a berth network nor a host address or route. `host` must not include
/// default routes.
pub fn choose_subnet(pools: &[AddressPool], v6: bool, networks: &[IpNet], host: &[IpNet]) -> Result<IpNet> {
    pools
        .iter()
        .filter(|p| p.base.addr().is_ipv6() == v6)
        .flat_map(|p| p.blocks())
        .find(|cand| !networks.iter().chain(host).any(|n| overlaps(cand, n)))
        .ok_or(CoreError::PoolsExhausted(if v6 { "IPv6" } else { "IPv4" }))
}

/// Refuses ranges no container address may come from: loopback,
/// multicast, link-local (IPv6) and the unspecified address.
pub fn check_usable(subnet: &IpNet) -> Result<()> {
    let kind = match subnet.addr() {
        IpAddr::V4(a) if a.is_loopback() => Some("loopback"),
        IpAddr::V4(a) if a.is_multicast() => Some("multicast"),
        IpAddr::V4(a) if a.is_unspecified() => Some("unspecified"),
        IpAddr::V6(a) if a.is_loopback() => Some("loopback"),
        IpAddr::V6(a) if a.is_multicast() => Some("multicast"),
        IpAddr::V6(a) if a.is_unspecified() => Some("unspecified"),
        IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80 => Some("link-local"),
        _ => None,
    };
    match kind {
        Some(kind) => Err(CoreError::SubnetUnusable { subnet: *subnet, kind }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn canonical_subnets_only() {
        assert_eq!(parse_subnet("10.0.0.0/8").unwrap(), n("10.0.0.0/8"));
        assert_eq!(parse_subnet("10.0.0.1/8"), Err(CoreError::SubnetNotCanonical(n("10.0.0.1/8"), n("10.0.0.0/8"))));
        assert_eq!(parse_subnet("10.0.0/8"), Err(CoreError::InvalidCidr("10.0.0/8".into())));
        assert!(parse_subnet("300.0.0.0/8").is_err());
        assert!(parse_subnet("10.0.0.0/33").is_err());
    }

    #[test]
    fn pools_parse() {
        assert_eq!(AddressPool::parse("base=10.10.0.0/16,size=24").unwrap(), AddressPool { base: n("10.10.0.0/16"), size: 24 });
        assert_eq!(AddressPool::parse("size=24,base=10.10.0.0/16").unwrap().size, 24);
        for bad in ["base=10.10.0.0/16", "size=24", "base=10.10.0.0/16,size=8", "base=x,size=24", "base=10.10.0.0/16,size=24,x=1", ""] {
            assert!(AddressPool::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn choice_avoids_networks_and_routes() {
        let pools = default_pools();
        assert_eq!(choose_subnet(&pools, false, &[], &[]).unwrap(), n("172.17.0.0/16"));
        assert_eq!(choose_subnet(&pools, false, &[n("172.17.0.0/16")], &[]).unwrap(), n("172.18.0.0/16"));
        assert_eq!(choose_subnet(&pools, false, &[n("172.17.0.0/16")], &[n("172.18.5.0/24")]).unwrap(), n("172.19.0.0/16"));
        let all: Vec<IpNet> = vec![n("172.16.0.0/12")];
        assert_eq!(choose_subnet(&pools, false, &all, &[n("192.168.0.0/20")]).unwrap(), n("192.168.16.0/20"));
        assert_eq!(choose_subnet(&pools, false, &all, &[n("192.168.0.0/16")]), Err(CoreError::PoolsExhausted("IPv4")));
        assert_eq!(choose_subnet(&pools, true, &[], &[]), Err(CoreError::PoolsExhausted("IPv6")), "no IPv6 pool given");
    }

    #[test]
    fn ipv6_pools() {
        let ula = default_ula_pool(b"0123456789abcdef");
        assert_eq!(ula, default_ula_pool(b"0123456789abcdef"), "stable for a machine");
        assert_ne!(ula, default_ula_pool(b"fedcba9876543210"));
        assert!(ula.base.to_string().starts_with("fd") && ula.base.prefix_len() == 48 && ula.size == 64, "{ula:?}");
        let pools = with_default_pools(vec![], b"x");
        let first = choose_subnet(&pools, true, &[], &[]).unwrap();
        assert_eq!((first.prefix_len(), first.network()), (64, ula_of(&pools)));
        let second = choose_subnet(&pools, true, &[first], &[]).unwrap();
        assert!(second != first && second.prefix_len() == 64);
        let mine = AddressPool::parse("base=fd12:3456:789a::/48,size=64").unwrap();
        let pools = with_default_pools(vec![mine.clone()], b"x");
        assert_eq!(pools.iter().filter(|p| p.base.addr().is_ipv6()).collect::<Vec<_>>(), vec![&mine], "a user IPv6 pool replaces the ULA");
        assert!(pools.iter().any(|p| p.base == n("172.17.0.0/16")), "and leaves the IPv4 defaults");
    }

    fn ula_of(pools: &[AddressPool]) -> std::net::IpAddr {
        pools.iter().find(|p| p.base.addr().is_ipv6()).unwrap().base.network()
    }

    #[test]
    fn unusable_ranges() {
        for bad in ["127.0.0.0/8", "224.0.0.0/24", "fe80::/64", "ff02::/64", "::1/128"] {
            assert!(matches!(check_usable(&n(bad)), Err(CoreError::SubnetUnusable { .. })), "{bad}");
        }
        for good in ["10.0.0.0/8", "fd00::/64", "2001:db8::/64"] {
            check_usable(&n(good)).unwrap();
        }
    }

    proptest! {
        #[test]
        fn chosen_subnet_never_overlaps(taken in proptest::collection::vec((17u8..=31, 0u8..=255, 16u8..=24), 0..20)) {
            let nets: Vec<IpNet> = taken.iter().map(|(b, c, p)| IpNet::new(format!("172.{b}.{c}.0").parse().unwrap(), *p).unwrap().trunc()).collect();
            if let Ok(s) = choose_subnet(&default_pools(), false, &nets, &[]) {
                prop_assert!(nets.iter().all(|t| !overlaps(&s, t)));
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse_subnet(&s);
            let _ = AddressPool::parse(&s);
        }
    }
}
