//! Global networks: created once in the store (any host), taken up by
//! every host that sees them, removed when no host has endpoints on them.
//!
//! A network's name and VXLAN id are claimed in the same transaction as
//! its record (`netnames/NAME`, `vnis/VNI` created only if absent), so two
//! hosts creating the same name at once cannot both succeed, and two
//! overlays never share an id.

use berth_core::cluster::keys::{blocks_of, endpoints_of};
use berth_core::cluster::records::{shared_network, to_json};
use berth_core::cluster::{Event, Key};
use berth_core::model::{Driver, Network, Vtep};
use berth_core::CoreError;
use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp};

use super::Cluster;
use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};
use crate::store::Op;

/// What stopped a creation.
enum Taken {
    Name,
    Vni,
}

async fn create(cl: &Cluster, net: &Network) -> std::result::Result<Option<Taken>, String> {
    let mut c = cl.client().await?;
    let rec = to_json(&shared_network(net));
    let (k_net, k_name) = (Key::Network(net.id.clone()).render(), Key::NetName(net.name.clone()).render());
    let id_json = to_json(&net.id);
    let mut when = vec![Compare::create_revision(k_net.as_str(), CompareOp::Equal, 0), Compare::create_revision(k_name.as_str(), CompareOp::Equal, 0)];
    let mut puts = vec![TxnOp::put(k_net.as_str(), rec.as_str(), None), TxnOp::put(k_name.as_str(), id_json.as_str(), None)];
    let k_vni = match &net.driver {
        Driver::Overlay(o) => Some(Key::Vni(o.vni).render()),
        _ => None,
    };
    if let Some(k) = &k_vni {
        when.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
        puts.push(TxnOp::put(k.as_str(), id_json.as_str(), None));
    }
    cl.count(rec.len() + k_net.len() + k_name.len() * 2 + id_json.len() * 2);
    let r = c.txn(Txn::new().when(when).and_then(puts).or_else([TxnOp::get(k_name.as_str(), None)])).await.map_err(|e| super::etcd::humanize(&e))?;
    if r.succeeded() {
        let mut v = cl.view();
        for (k, val) in [(k_net, rec), (k_name, id_json.clone())].into_iter().chain(k_vni.map(|k| (k, id_json))) {
            let _ = v.apply(&Event::Put { key: k, value: val });
        }
        return Ok(None);
    }
    let name_taken = r.op_responses().into_iter().any(|op| matches!(op, etcd_client::TxnOpResponse::Get(g) if !g.kvs().is_empty()));
    Ok(Some(if name_taken { Taken::Name } else { Taken::Vni }))
}

/// Deletes a network's records if no host has an endpoint on it; else
/// the hosts that do, with how many.
async fn remove(cl: &Cluster, net: &Network) -> std::result::Result<Option<Vec<(String, usize)>>, String> {
    let mut c = cl.client().await?;
    let eps = endpoints_of(&net.id);
    let mut dels = vec![
        TxnOp::delete(Key::Network(net.id.clone()).render(), None),
        TxnOp::delete(Key::NetName(net.name.clone()).render(), None),
        TxnOp::delete(blocks_of(&net.id), Some(DeleteOptions::new().with_prefix())),
    ];
    if let Driver::Overlay(o) = &net.driver {
        dels.push(TxnOp::delete(Key::Vni(o.vni).render(), None));
    }
    let txn = Txn::new()
        .when([Compare::version(eps.as_str(), CompareOp::Equal, 0).with_prefix()])
        .and_then(dels)
        .or_else([TxnOp::get(eps.as_str(), Some(GetOptions::new().with_prefix().with_keys_only()))]);
    cl.count(eps.len() * 3 + 200);
    let r = c.txn(txn).await.map_err(|e| super::etcd::humanize(&e))?;
    if r.succeeded() {
        return Ok(None);
    }
    let mut hosts = std::collections::BTreeMap::<String, usize>::new();
    for op in r.op_responses() {
        if let etcd_client::TxnOpResponse::Get(g) = op {
            for kv in g.kvs() {
                if let Some(Key::Endpoint { node, .. }) = kv.key_str().ok().and_then(Key::parse) {
                    *hosts.entry(node).or_default() += 1;
                }
            }
        }
    }
    Ok(Some(hosts.into_iter().collect()))
}

impl Daemon {
    /// This host's part of a global network: its tunnel end and, for an
    /// overlay with no `--mtu`, its underlay's MTU less VXLAN's 50 bytes.
    pub fn localize(&self, cl: &Cluster, net: &mut Network) {
        if let Driver::Overlay(o) = &mut net.driver {
            o.vtep = Some(Vtep { addr: cl.underlay.addr, dev: cl.underlay.dev.clone(), node: cl.node() });
            net.mtu = o.user_mtu.unwrap_or(cl.underlay.mtu.saturating_sub(50).max(68));
        }
    }

    /// `network create` of a global network: claims it in the store, then
    /// takes it up here and leases this host's first block.
    pub fn network_create_global(&self, mut net: Network, vni_given: bool) -> Result<Network> {
        let cl = self.cluster.clone().expect("global networks exist only in a cluster");
        let what = format!("creating network {}", net.name);
        // The syncer may take the network up from the watch before this
        // request has leased its first block: it must not lease another.
        cl.topping_up.lock().unwrap().insert(net.id.clone());
        let r = self.create_global_claimed(&cl, &mut net, vni_given, &what);
        cl.topping_up.lock().unwrap().remove(&net.id);
        r?;
        let local = self.st().networks.get(&net.id).cloned().ok_or_else(|| DaemonError::Internal("network vanished after creation".into()))?;
        tracing::info!("global network {} created ({}, {})", local.name, local.driver.as_str(), local.ipam.iter().map(|c| c.subnet.to_string()).collect::<Vec<_>>().join(", "));
        Ok(local)
    }

    fn create_global_claimed(&self, cl: &Cluster, net: &mut Network, vni_given: bool, what: &str) -> Result<()> {
        let mut tried = 0;
        loop {
            match cl.block_on(self, what, create(cl, net))? {
                None => break,
                Some(Taken::Name) => return Err(CoreError::DuplicateNetwork(net.name.clone()).into()),
                Some(Taken::Vni) => {
                    let Driver::Overlay(o) = &mut net.driver else { unreachable!("only overlays have VXLAN ids") };
                    if vni_given || tried > 16 {
                        let owner = cl.view().vnis.get(&o.vni).cloned().unwrap_or_else(|| "another network".into());
                        return Err(CoreError::VniInUse { vni: o.vni, network: owner }.into());
                    }
                    // Another host took it a moment ago: the next free one.
                    let taken = cl.view().vnis.clone();
                    o.vni = (o.vni + 1..1 << 24).find(|v| !taken.contains_key(v)).ok_or(CoreError::VnisExhausted)?;
                    tried += 1;
                }
            }
        }
        // This host's first block before the network is taken up here,
        // so that it comes up with it (the lease is in the view already).
        if let Err(e) = self.lease_block_of(net) {
            tracing::warn!("network {}: no address block for this host yet: {e}", net.name);
        }
        self.adopt_global(shared_network(net))
    }

    /// `network rm` of a global network: refused while any host has an
    /// endpoint on it; else gone from the store, then from here (the other
    /// hosts follow through their watch).
    pub fn network_remove_global(&self, net: &Network) -> Result<()> {
        let cl = self.cluster.clone().expect("global networks exist only in a cluster");
        if let Some(hosts) = cl.block_on(self, &format!("removing network {}", net.name), remove(&cl, net))? {
            let list: Vec<String> = hosts.iter().map(|(h, n)| format!("{n} on host {h}")).collect();
            return Err(CoreError::NetworkInUse { network: net.name.clone(), containers: list.join(", ") }.into());
        }
        {
            let mut v = cl.view();
            let gone = |k: &Key| match k {
                Key::Network(id) => *id == net.id,
                Key::NetName(name) => *name == net.name,
                Key::Vni(n) => v.vnis.get(n) == Some(&net.id),
                Key::Block { network, .. } => *network == net.id,
                _ => false,
            };
            let keys: Vec<String> = v.raw.keys().filter(|k| Key::parse(k).is_some_and(|k| gone(&k))).cloned().collect();
            for k in keys {
                let _ = v.apply(&Event::Delete { key: k });
            }
        }
        self.drop_global(&net.id);
        Ok(())
    }

    /// Takes up a global network here (idempotent): the local copy with
    /// this host's part, its kernel objects, its resolver.
    pub fn adopt_global(&self, shared: Network) -> Result<()> {
        let Some(cl) = self.cluster.clone() else { return Ok(()) };
        let _one = cl.adopting.lock().unwrap();
        let mine = cl.view().blocks_of(&shared.id, &cl.node());
        let mut net = shared;
        {
            let st = self.st();
            if let Some(have) = st.networks.get(&net.id) {
                // Blocks the store says are ours (leased just before a crash)
                // join the ones this host recorded.
                let missing: Vec<_> = mine.iter().filter(|b| !have.blocks.contains(b)).copied().collect();
                drop(st);
                for b in missing {
                    self.add_block(&net.id, b)?;
                }
                return Ok(());
            }
            if let Some(other) = st.networks.values().find(|n| n.name == net.name) {
                tracing::error!(
                    "global network {} ({}) is not taken up on this host: this host has its own network of that name ({}); remove or rename it",
                    net.name,
                    &net.id[..12],
                    &other.id[..12.min(other.id.len())]
                );
                return Ok(());
            }
        }
        net.blocks = mine;
        self.localize(&cl, &mut net);
        self.st().networks.insert(net.id.clone(), net.clone());
        let applied = self.commit(&[Op::PutNetwork(&net)], false).and_then(|()| self.apply_network(&net));
        if let Err(e) = applied {
            self.st().networks.remove(&net.id);
            let _ = self.commit(&[Op::DelNetwork(&net.id)], false);
            return Err(e);
        }
        self.ensure_forwarding();
        self.dns_start(&net);
        tracing::info!("global network {} taken up here ({} on {})", net.name, net.driver.as_str(), net.bridge());
        self.top_up_blocks(std::iter::once(&net.id));
        Ok(())
    }

    /// Takes a global network down here, unless containers of this host
    /// are still configured on it.
    pub fn drop_global(&self, id: &str) {
        let Some(cl) = self.cluster.clone() else { return };
        let _one = cl.adopting.lock().unwrap();
        let net = {
            let mut st = self.st();
            let Some(net) = st.networks.get(id).cloned() else { return };
            let users: Vec<String> = st.containers.values().filter(|c| c.attachments.iter().any(|a| a.network_id == id)).map(|c| c.name.clone()).collect();
            if !users.is_empty() {
                tracing::warn!("global network {} was removed from the cluster, but containers here are on it ({}): kept here until they leave it", net.name, users.join(", "));
                return;
            }
            st.networks.remove(id);
            net
        };
        if let Err(e) = self.commit(&[Op::DelNetwork(id)], false) {
            tracing::warn!("recording the removal of network {}: {e}", net.name);
        }
        if let Err(e) = self.unapply_network(&net) {
            tracing::warn!("taking network {} down: {e}", net.name);
        }
        self.dns_stop(id);
        tracing::info!("global network {} taken down here", net.name);
    }
}
