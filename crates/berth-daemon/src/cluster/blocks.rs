//! Address blocks of global networks: this host's, leased from the store
//! with a compare-and-create on the block's key, on the grace lease.
//!
//! A host takes its first block when a network reaches it, and another in
//! the background when fewer than a quarter of a block's addresses are
//! left, so a container start finds an address without asking etcd. Only
//! a host whose blocks are all full waits on the store for a new one (and
//! gets a clear error if it cannot be reached).

use std::sync::Arc;

use berth_core::cluster::blocks::free_block;
use berth_core::cluster::records::to_json;
use berth_core::cluster::{BlockRecord, Event, Key};
use berth_core::driver::overlay::host_address;
use berth_core::ipam::{bounds, reserved, to_u128};
use berth_core::model::{Driver, Network};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use ipnet::IpNet;

use super::Cluster;
use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};
use crate::store::Op;

/// The prefix hosts lease blocks of on a network.
pub fn host_prefix(net: &Network) -> u8 {
    match &net.driver {
        Driver::Overlay(o) => o.host_prefix,
        Driver::Macvlan(m) => m.host_prefix,
        Driver::Bridge(_) => 0,
    }
}

/// Addresses still free in this host's blocks of a network.
pub fn room(net: &Network, used: &std::collections::BTreeSet<std::net::IpAddr>) -> u128 {
    let Some(cfg) = net.ipv4() else { return 0 };
    let res = reserved(cfg);
    let host = host_address(net).map(to_u128);
    net.blocks
        .iter()
        .map(|b| {
            let (lo, hi) = bounds(b);
            let size = hi - lo + 1;
            let taken = res.iter().filter(|r| (lo..=hi).contains(*r)).count() as u128
                + host.filter(|h| (lo..=hi).contains(h)).map_or(0, |_| 1)
                + used.iter().filter(|u| u.is_ipv4() && (lo..=hi).contains(&to_u128(**u))).count() as u128;
            size.saturating_sub(taken)
        })
        .sum()
}

/// Takes a free block in the store; the loser of a race picks again.
async fn lease(cl: &Cluster, net_id: &str, pool: IpNet, prefix: u8, mut taken: Vec<IpNet>) -> std::result::Result<IpNet, String> {
    let grace = cl.leases.lock().unwrap().grace.ok_or("this host is not registered in the store yet")?;
    let me = cl.node();
    let mut c = cl.client().await?;
    let net_key = Key::Network(net_id.to_string()).render();
    for _ in 0..32 {
        let Some(b) = free_block(&pool, prefix, &taken) else {
            return Err(format!("every /{prefix} block of {pool} is held by a host (give the network a larger subnet or a smaller host_block)"));
        };
        let key = Key::Block { network: net_id.to_string(), block: b }.render();
        let val = to_json(&BlockRecord { node: me.clone() });
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0), Compare::create_revision(net_key.as_str(), CompareOp::Greater, 0)])
            .and_then([TxnOp::put(key.as_str(), val.as_str(), Some(PutOptions::new().with_lease(grace)))])
            .or_else([TxnOp::get(net_key.as_str(), None)]);
        cl.count(key.len() * 2 + val.len() + net_key.len());
        let r = c.txn(txn).await.map_err(|e| super::etcd::humanize(&e))?;
        if r.succeeded() {
            cl.view().apply(&Event::Put { key, value: val }).ok();
            return Ok(b);
        }
        let net_exists = r.op_responses().into_iter().any(|op| matches!(op, etcd_client::TxnOpResponse::Get(g) if !g.kvs().is_empty()));
        if !net_exists {
            return Err("the network was removed from the cluster".into());
        }
        taken.push(b);
    }
    Err("too many hosts raced for the same blocks; try again".into())
}

impl Daemon {
    /// Leases one more block of a global network for this host, now
    /// (waits on the store), and records it.
    pub fn lease_block(&self, net_id: &str) -> Result<IpNet> {
        let net = self.st().networks.get(net_id).cloned().ok_or_else(|| berth_core::CoreError::NoSuchNetwork(net_id.into()))?;
        let b = self.lease_block_of(&net)?;
        self.add_block(net_id, b)?;
        Ok(b)
    }

    /// Leases a block of `net` in the store (the caller records it).
    pub fn lease_block_of(&self, net: &Network) -> Result<IpNet> {
        let cl = self.cluster.clone().ok_or_else(|| DaemonError::Internal("not in a cluster".into()))?;
        let pool = net.ipv4().map(|c| c.pool()).ok_or_else(|| DaemonError::Internal(format!("network {} has no IPv4 block", net.name)))?;
        let mut taken = net.blocks.clone();
        taken.extend(cl.view().taken_blocks(&net.id));
        cl.block_on(self, &format!("a new address block of network {}", net.name), lease(&cl, &net.id, pool, host_prefix(net), taken))
    }

    /// Records a block this host now holds; the first one gives the
    /// overlay's tunnel its address.
    pub fn add_block(&self, net_id: &str, b: IpNet) -> Result<()> {
        let net = {
            let mut st = self.st();
            let Some(net) = st.networks.get_mut(net_id) else { return Ok(()) };
            if net.blocks.contains(&b) {
                return Ok(());
            }
            net.blocks.push(b);
            net.blocks.sort();
            net.clone()
        };
        tracing::info!("network {}: this host holds address block {b}", net.name);
        self.commit(&[Op::PutNetwork(&net)], false)?;
        if net.blocks.len() == 1 {
            self.apply_network(&net)?;
            if let Some(cl) = &self.cluster {
                self.sync_tunnels(cl);
            }
        }
        Ok(())
    }

    /// Gives up a block another host now holds.
    pub fn drop_block(&self, net_id: &str, b: IpNet) {
        let net = {
            let mut st = self.st();
            let Some(net) = st.networks.get_mut(net_id) else { return };
            net.blocks.retain(|x| *x != b);
            net.clone()
        };
        if let Err(e) = self.commit(&[Op::PutNetwork(&net)], false) {
            tracing::warn!("recording network {}: {e}", net.name);
        }
    }

    /// Before a start: every global network among `network_ids` has an
    /// address free in this host's blocks, leasing a block (and waiting on
    /// the store) only when none is left.
    pub fn ensure_blocks<'a>(&self, network_ids: impl Iterator<Item = &'a String>) -> Result<()> {
        if self.cluster.is_none() {
            return Ok(());
        }
        for id in network_ids {
            let full = {
                let st = self.st();
                match st.networks.get(id) {
                    Some(n) if n.global && n.ipv4().is_some() => room(n, &st.used_addresses(id)) == 0,
                    _ => false,
                }
            };
            if full {
                self.lease_block(id)?;
            }
        }
        Ok(())
    }

    /// After an allocation: when a global network's blocks run low here,
    /// lease another in the background.
    pub fn top_up_blocks<'a>(&self, network_ids: impl Iterator<Item = &'a String>) {
        let Some(cl) = self.cluster.clone() else { return };
        let Some(me) = self.me.get().and_then(|w| w.upgrade()) else { return };
        for id in network_ids {
            let low = {
                let st = self.st();
                match st.networks.get(id) {
                    Some(n) if n.global && n.ipv4().is_some() => {
                        let block = 1u128 << (32 - host_prefix(n).min(32));
                        n.blocks.is_empty() || room(n, &st.used_addresses(id)) < (block / 4).max(2)
                    }
                    _ => false,
                }
            };
            if low && cl.topping_up.lock().unwrap().insert(id.clone()) {
                let (me, cl, id) = (Arc::clone(&me), Arc::clone(&cl), id.clone());
                std::thread::spawn(move || {
                    if let Err(e) = me.lease_block(&id) {
                        tracing::warn!("leasing another address block ahead of need: {e}");
                    }
                    cl.topping_up.lock().unwrap().remove(&id);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::model::{IpamConfig, OverlayDriver};

    #[test]
    fn room_counts_what_containers_can_still_get() {
        let mut n = Network {
            id: "n".into(),
            name: "ov".into(),
            driver: Driver::Overlay(OverlayDriver { bridge: "b".into(), tunnel: "t".into(), vni: 1, port: 4789, host_prefix: 28, user_mtu: None, vtep: None }),
            ipam: vec![IpamConfig { subnet: "10.200.0.0/16".parse().unwrap(), gateway: "10.200.0.1".parse().unwrap(), ip_range: None, user_subnet: true }],
            internal: false,
            mtu: 1450,
            options: Default::default(),
            raw_options: Default::default(),
            created: 0,
            predefined: false,
            global: true,
            blocks: vec!["10.200.0.0/28".parse().unwrap()],
        };
        let none = std::collections::BTreeSet::new();
        // 16 addresses less the subnet's network address, the gateway and the host's own.
        assert_eq!(room(&n, &none), 13);
        let used: std::collections::BTreeSet<std::net::IpAddr> = ["10.200.0.3", "10.200.0.4", "10.200.5.5"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(room(&n, &used), 11, "only addresses inside the blocks count");
        n.blocks.push("10.200.0.16/28".parse().unwrap());
        assert_eq!(room(&n, &used), 27);
        n.blocks.clear();
        assert_eq!(room(&n, &none), 0);
    }
}
