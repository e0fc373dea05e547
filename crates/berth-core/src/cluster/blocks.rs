//! Address blocks of global networks: which one a host takes next. Hosts
//! claim blocks in the store with a compare-and-create, so two hosts that
//! pick the same block at the same moment cannot both get it: the loser
//! picks again with the winner's block taken.

use ipnet::IpNet;

/// The default block size for a pool of prefix `pool`: /24 blocks (254
/// containers per host before it needs a second) when that leaves at
/// least 16 blocks, else 16 blocks; never smaller than /30.
pub fn default_prefix(pool: u8) -> u8 {
    (pool + 4).clamp(24, 30)
}

/// Whether hosts can lease `prefix` blocks of `pool`.
pub fn check_prefix(pool: &IpNet, prefix: u8) -> Result<(), String> {
    if pool.addr().is_ipv6() {
        return Err("host blocks are IPv4 only".into());
    }
    if prefix < pool.prefix_len() || prefix > 30 {
        return Err(format!("host_block {prefix} must be between the subnet's prefix /{} and /30", pool.prefix_len()));
    }
    Ok(())
}

/// The lowest `prefix` block of `pool` that overlaps none of `taken`;
/// None when every block is taken.
pub fn free_block(pool: &IpNet, prefix: u8, taken: &[IpNet]) -> Option<IpNet> {
    let overlaps = |b: &IpNet| taken.iter().any(|t| t.contains(&b.network()) || b.contains(&t.network()));
    pool.subnets(prefix).ok()?.find(|b| !overlaps(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn defaults() {
        assert_eq!(default_prefix(16), 24);
        assert_eq!(default_prefix(24), 28);
        assert_eq!(default_prefix(28), 30);
        assert!(check_prefix(&n("10.0.0.0/16"), 24).is_ok());
        assert!(check_prefix(&n("10.0.0.0/16"), 8).is_err());
        assert!(check_prefix(&n("10.0.0.0/16"), 31).is_err());
    }

    #[test]
    fn lowest_free_block() {
        let pool = n("10.0.0.0/16");
        assert_eq!(free_block(&pool, 24, &[]), Some(n("10.0.0.0/24")));
        assert_eq!(free_block(&pool, 24, &[n("10.0.0.0/24"), n("10.0.1.0/24")]), Some(n("10.0.2.0/24")));
        assert_eq!(free_block(&n("10.0.0.0/30"), 30, &[n("10.0.0.0/30")]), None);
    }

    proptest! {
        /// Whatever is taken, a free block lies in the pool, has the
        /// prefix, and overlaps nothing taken; and None means none exists.
        #[test]
        fn free_blocks_never_overlap(taken in proptest::collection::vec((0u32..256, 22u8..=26), 0..40), prefix in 24u8..=26) {
            let pool = n("10.0.0.0/16");
            let taken: Vec<IpNet> = taken.iter().map(|(i, p)| IpNet::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), *p).unwrap().trunc()).collect();
            match free_block(&pool, prefix, &taken) {
                Some(b) => {
                    prop_assert_eq!(b.prefix_len(), prefix);
                    prop_assert!(pool.contains(&b.network()) && pool.contains(&b.broadcast()));
                    prop_assert!(taken.iter().all(|t| !t.contains(&b.network()) && !b.contains(&t.network())));
                }
                None => {
                    let all: Vec<IpNet> = pool.subnets(prefix).unwrap().collect();
                    prop_assert!(all.iter().all(|b| taken.iter().any(|t| t.contains(&b.network()) || b.contains(&t.network()))));
                }
            }
        }
    }
}
