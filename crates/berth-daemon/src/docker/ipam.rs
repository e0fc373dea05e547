//! `IpamDriver.*`: pools and addresses for dockerd. A pool must not
//! overlap a berth network or another pool (dockerd checks nothing when a
//! plugin does its IPAM); an address is free when neither berth nor the
//! plugin holds it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use berth_core::docker::ipam::{request_address, request_pool, Pool};
use berth_core::docker::network::BIND_OPTION;
use berth_core::docker::{ReleaseAddress, RequestAddress, RequestPool};
use berth_core::subnets::{choose_subnet, parse_ip};
use berth_core::CoreError;
use ipnet::IpNet;
use serde_json::{json, Value};

use super::{DockerPlugin, PoolState};
use crate::error::Result;

impl DockerPlugin {
    /// Subnets berth's networks have and pools handed out, except `except`.
    fn taken_subnets(&self, except: Option<&str>) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.d.st().networks.values().filter(|n| Some(n.id.as_str()) != except).flat_map(|n| n.ipam.iter().map(|c| c.subnet)).collect();
        out.extend(self.st().pools.keys().filter_map(|id| Pool::parse_id(id).ok()).map(|p| p.subnet));
        out
    }

    /// `--ipam-opt berth.network=NAME`: the pool is that network's block
    /// of the family (so a Docker network can stand for it).
    fn bound_pool(&self, req: &RequestPool, name: &str) -> Result<(Pool, String)> {
        let st = self.d.st();
        let net = st.network(name)?;
        let cfg = net.ipam.iter().find(|c| c.is_ipv6() == req.v6).ok_or_else(|| {
            CoreError::DockerRequest(format!("RequestPool: berth network {} has no {} subnet", net.name, if req.v6 { "IPv6" } else { "IPv4" }))
        })?;
        if !req.pool.is_empty() && req.pool != cfg.subnet.to_string() {
            return Err(CoreError::DockerRequest(format!("RequestPool: --subnet {} is not berth network {}'s subnet {}", req.pool, net.name, cfg.subnet)).into());
        }
        Ok((Pool { subnet: cfg.subnet, range: cfg.ip_range }, net.id.clone()))
    }

    pub(super) fn request_pool(&self, req: &RequestPool) -> Result<Value> {
        let bind = req.options.as_ref().and_then(|o| o.get(BIND_OPTION)).cloned();
        let pool = match &bind {
            Some(name) => self.bound_pool(req, name)?.0,
            None => {
                let taken = self.taken_subnets(None);
                let choose = |v6: bool| -> berth_core::Result<IpNet> {
                    let host = self.d.kernel.host_nets(&self.d.bridge_names()).map_err(|e| CoreError::DockerRequest(format!("RequestPool: reading host routes: {e}")))?;
                    choose_subnet(&self.d.pools, v6, &taken, &host)
                };
                request_pool(req, &taken, &choose)?
            }
        };
        let id = pool.id();
        self.update(|st| {
            if bind.is_none() && st.pools.contains_key(&id) {
                return Err(CoreError::DockerRequest(format!("Pool overlaps with other one on this address space: {} is in use", pool.subnet)).into());
            }
            st.pools.entry(id.clone()).or_default();
            Ok(())
        })?;
        Ok(json!({"PoolID": id, "Pool": pool.subnet.to_string(), "Data": {}}))
    }

    pub(super) fn release_pool(&self, id: &str) -> Result<Value> {
        self.update(|st| {
            st.pools.remove(id);
            Ok(())
        })?;
        Ok(json!({}))
    }

    /// Addresses berth's containers hold in the pool's subnet.
    fn berth_used(&self, pool: &Pool) -> BTreeSet<IpAddr> {
        let st = self.d.st();
        st.networks.values().filter(|n| n.ipam.iter().any(|c| c.subnet == pool.subnet)).flat_map(|n| st.used_addresses(&n.id)).collect()
    }

    pub(super) fn request_address(&self, req: &RequestAddress) -> Result<Value> {
        let pool = Pool::parse_id(&req.pool_id)?;
        let berth_used = self.berth_used(&pool);
        let ip = self.update(|st| {
            let ps: &mut PoolState = st.pools.entry(req.pool_id.clone()).or_default();
            if req.is_gateway() {
                let ip = request_address(req, &pool, None, &BTreeSet::new())?;
                ps.gateway = Some(ip);
                return Ok(ip);
            }
            let used: BTreeSet<IpAddr> = ps.held.iter().chain(&berth_used).copied().collect();
            let ip = request_address(req, &pool, ps.gateway, &used)?;
            ps.held.insert(ip);
            Ok(ip)
        })?;
        Ok(json!({"Address": pool.cidr(ip), "Data": {}}))
    }

    pub(super) fn release_address(&self, req: &ReleaseAddress) -> Result<Value> {
        let ip = parse_ip(&req.address)?;
        self.update(|st| {
            if let Some(ps) = st.pools.get_mut(&req.pool_id) {
                if ps.gateway == Some(ip) {
                    ps.gateway = None;
                } else {
                    ps.held.remove(&ip);
                }
            }
            Ok(())
        })?;
        Ok(json!({}))
    }
}
