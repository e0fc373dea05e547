//! berth as Docker's IPAM driver, pure side. dockerd asks for a pool
//! (RequestPool) and the gateway's address before the network exists, and
//! each endpoint's address before CreateEndpoint, so the plugin hands out
//! addresses itself and the endpoint is then attached with that address
//! as a static one (berth's own allocator never races it: the plugin's
//! held addresses are counted as used).
//!
//! A pool id carries its pool: `berth/SUBNET` or `berth/SUBNET@RANGE`
//! (`--ip-range`), so a pool is understood from its id alone, after any
//! restart of berth or of dockerd.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{RequestAddress, RequestPool, GLOBAL_SPACE, LOCAL_SPACE};
use crate::model::IpamConfig;
use crate::subnets::{check_usable, overlaps, parse_ip, parse_subnet};
use crate::{CoreError, Result};

/// A pool as its id names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pool {
    pub subnet: IpNet,
    pub range: Option<IpNet>,
}

impl Pool {
    pub fn id(&self) -> String {
        match self.range {
            Some(r) => format!("berth/{}@{r}", self.subnet),
            None => format!("berth/{}", self.subnet),
        }
    }

    pub fn parse_id(id: &str) -> Result<Pool> {
        let bad = || CoreError::DockerRequest(format!("pool id {id:?} is not one berth gave (berth/SUBNET[@RANGE])"));
        let rest = id.strip_prefix("berth/").ok_or_else(bad)?;
        let (s, r) = match rest.split_once('@') {
            Some((s, r)) => (s, Some(r)),
            None => (rest, None),
        };
        let subnet = parse_subnet(s).map_err(|_| bad())?;
        let range = r.map(parse_subnet).transpose().map_err(|_| bad())?;
        Ok(Pool { subnet, range })
    }

    /// The gateway when none is asked for: the subnet's first address.
    pub fn default_gateway(&self) -> IpAddr {
        crate::ipam::from_u128(crate::ipam::to_u128(self.subnet.network()) + 1, self.subnet.addr())
    }

    /// The address with the subnet's prefix, as dockerd wants it back.
    pub fn cidr(&self, ip: IpAddr) -> String {
        format!("{ip}/{}", self.subnet.prefix_len())
    }
}

/// Checks a RequestPool and gives the pool: the one asked for, or (no
/// `Pool`) `choose()`'s free subnet of the family. `taken` are the subnets
/// of berth's networks and the pools handed out already: with a plugin's
/// IPAM dockerd checks no overlap itself, so berth refuses it here.
pub fn request_pool(req: &RequestPool, taken: &[IpNet], choose: &dyn Fn(bool) -> Result<IpNet>) -> Result<Pool> {
    let bad = |r: String| CoreError::DockerRequest(format!("RequestPool: {r}"));
    if !req.address_space.is_empty() && req.address_space != LOCAL_SPACE && req.address_space != GLOBAL_SPACE {
        return Err(bad(format!("address space {:?} is not berth's ({LOCAL_SPACE})", req.address_space)));
    }
    let subnet = if req.pool.is_empty() {
        if !req.sub_pool.is_empty() {
            return Err(bad("--ip-range needs --subnet".into()));
        }
        choose(req.v6)?
    } else {
        let s = parse_subnet(&req.pool)?;
        check_usable(&s)?;
        s
    };
    if subnet.addr().is_ipv6() != req.v6 {
        return Err(bad(format!("subnet {subnet} is not of the family asked (V6: {})", req.v6)));
    }
    if let Some(other) = taken.iter().find(|t| overlaps(t, &subnet)) {
        return Err(CoreError::DockerRequest(format!("Pool overlaps with other one on this address space: {subnet} overlaps {other}, which is in use")));
    }
    let range = if req.sub_pool.is_empty() {
        None
    } else {
        let r = parse_subnet(&req.sub_pool)?;
        if !(subnet.contains(&r.network()) && subnet.contains(&r.broadcast())) {
            return Err(CoreError::RangeOutsideSubnet { range: r, subnet });
        }
        Some(r)
    };
    Ok(Pool { subnet, range })
}

/// The address a RequestAddress gets. `gateway` is the pool's gateway
/// once handed out (None while it is the gateway that is asked for);
/// `used` are the addresses berth and the plugin hold in the pool.
pub fn request_address(req: &RequestAddress, pool: &Pool, gateway: Option<IpAddr>, used: &BTreeSet<IpAddr>) -> Result<IpAddr> {
    let want = if req.address.is_empty() { None } else { Some(parse_ip(&req.address)?) };
    let gw = gateway.unwrap_or_else(|| pool.default_gateway());
    let cfg = IpamConfig { subnet: pool.subnet, gateway: gw, ip_range: pool.range, user_subnet: true };
    let name = pool.subnet.to_string();
    if req.is_gateway() {
        let ip = want.unwrap_or(gw);
        if !pool.subnet.contains(&ip) {
            return Err(CoreError::GatewayOutsideSubnet { gateway: ip, subnet: pool.subnet });
        }
        if crate::ipam::reserved(&IpamConfig { gateway: pool.subnet.network(), ..cfg.clone() }).contains(&crate::ipam::to_u128(ip)) {
            return Err(CoreError::GatewayReserved(ip));
        }
        return Ok(ip);
    }
    match want {
        Some(ip) => {
            crate::ipam::check_static(&cfg, ip, used, &name)?;
            Ok(ip)
        }
        None => crate::ipam::allocate(&cfg, used, None, &name),
    }
}
