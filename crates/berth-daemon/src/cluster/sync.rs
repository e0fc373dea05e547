//! The syncer: from what changed in the view to this host's kernel,
//! firewall and state — global networks up or down, tunnel peers, the
//! other hosts' tunnel ends let through the firewall, other hosts'
//! containers (names, links), cluster policies. Runs on its own thread;
//! changes that arrive while it works are merged into its next round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use berth_core::cluster::view::Changed;
use berth_core::driver::overlay::host_address;
use berth_core::model::Driver;
use berth_core::nft::{container_elements, Element};
use berth_core::plan::TunnelPeers;

use super::Cluster;
use crate::daemon::Daemon;
use crate::firewall::Owner;
use crate::service::container::related;
use crate::state::{Containers, State};

/// Firewall owner of the other hosts' tunnel ends.
const VTEPS: &str = "cluster:vteps";

fn remote_owner(id: &str) -> Owner {
    format!("remote:{id}")
}

pub fn spawn(d: Weak<Daemon>, cl: Arc<Cluster>, rx: Receiver<Changed>) {
    std::thread::Builder::new()
        .name("berth-cluster-sync".into())
        .spawn(move || {
            let mut dirty = false;
            let mut saved = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(mut ch) => {
                        while let Ok(more) = rx.try_recv() {
                            ch.merge(more);
                        }
                        let Some(d) = d.upgrade() else { return };
                        d.cluster_sync(&cl, ch);
                        dirty = true;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if dirty && saved.elapsed() >= Duration::from_secs(1) {
                    let Some(d) = d.upgrade() else { return };
                    let v = cl.view().clone();
                    super::persist::save(&d.cfg.root, &v);
                    dirty = false;
                    saved = Instant::now();
                }
            }
        })
        .expect("cluster sync thread");
}

/// Other hosts' containers, limited to the networks this host has.
fn remote_containers(cl: &Cluster, st_nets: &BTreeSet<String>) -> Vec<berth_core::model::Container> {
    let mut v = cl.view().remote_containers(&cl.node());
    for c in v.iter_mut() {
        c.attachments.retain(|a| st_nets.contains(&a.network_id));
    }
    v.retain(|c| !c.attachments.is_empty());
    v
}

impl Daemon {
    pub fn cluster_sync(&self, cl: &Cluster, ch: Changed) {
        if ch.networks || ch.blocks {
            self.sync_global_networks(cl);
        }
        if ch.nodes || ch.blocks || ch.networks {
            self.sync_tunnels(cl);
        }
        if ch.nodes || ch.networks || ch.all_endpoints {
            self.sync_remote(cl);
        } else if ch.endpoints {
            self.sync_remote_of(cl, &ch.containers);
        }
        if ch.policies {
            self.sync_cluster_policies(cl);
        }
    }

    /// Global networks in the view are taken up here; those gone from it
    /// (once the store has been listed in this run) are taken down.
    fn sync_global_networks(&self, cl: &Cluster) {
        let (shared, listed) = (cl.view().networks.clone(), cl.listed.load(Ordering::SeqCst));
        let local: Vec<String> = self.st().networks.values().filter(|n| n.global).map(|n| n.id.clone()).collect();
        for net in shared.values() {
            if let Err(e) = self.adopt_global(net.clone()) {
                tracing::warn!("taking up global network {}: {e}", net.name);
            }
        }
        if listed {
            for id in local.iter().filter(|id| !shared.contains_key(*id)) {
                self.drop_global(id);
            }
        }
    }

    /// Each overlay's routes, neighbours and forwarding entries to the
    /// other live hosts, and the firewall's list of hosts VXLAN may come
    /// from.
    pub fn sync_tunnels(&self, cl: &Cluster) {
        let me = cl.node();
        let overlays: Vec<(String, String, Option<std::net::IpAddr>, u16)> = self
            .st()
            .networks
            .values()
            .filter_map(|n| match &n.driver {
                Driver::Overlay(o) => Some((n.id.clone(), o.tunnel.clone(), host_address(n), o.port)),
                _ => None,
            })
            .collect();
        let (plans, vteps) = {
            let v = cl.view();
            let plans: Vec<TunnelPeers> =
                overlays.iter().map(|(id, tunnel, src, _)| TunnelPeers { tunnel: tunnel.clone(), src: *src, peers: v.peers(id, &me) }).collect();
            let ports: BTreeSet<u16> = overlays.iter().map(|o| o.3).collect();
            (plans, v.vtep_elements(&me, &ports))
        };
        for p in &plans {
            if let Err(e) = self.kernel.sync_tunnel_peers(p) {
                tracing::warn!("tunnel {}: programming routes to {} hosts: {e}", p.tunnel, p.peers.len());
            }
        }
        if let Err(e) = self.fw.sync(self.kernel.as_ref(), || vec![(VTEPS.to_string(), vteps)]) {
            tracing::warn!("letting the cluster's hosts' VXLAN in: {e}");
        }
    }

    /// Other hosts' containers for names and links: the state's remote
    /// set, and the link elements between them and ours.
    fn sync_remote(&self, cl: &Cluster) {
        let nets: BTreeSet<String> = self.st().networks.keys().cloned().collect();
        let remote = remote_containers(cl, &nets);
        let ids: BTreeSet<String> = remote.iter().map(|c| remote_owner(&c.id)).collect();
        {
            let mut st = self.st();
            let mut m = Containers::default();
            for c in remote {
                m.insert(c.id.clone(), c);
            }
            st.remote = m;
        }
        let gone: Vec<String> = cl.remote_owners.lock().unwrap().difference(&ids).cloned().collect();
        let r = self.fw.sync(self.kernel.as_ref(), || {
            let st = self.st();
            let mut v = remote_wants(&st);
            v.extend(gone.iter().map(|o| (o.clone(), BTreeSet::new())));
            v
        });
        match r {
            Ok(()) => *cl.remote_owners.lock().unwrap() = ids,
            Err(e) => tracing::warn!("firewall elements of other hosts' containers: {e}"),
        }
    }

    /// [`sync_remote`](Self::sync_remote) for the other hosts' containers
    /// in `which` only (a watch event: one container started or gone):
    /// their entries in the state's remote set, and the link elements of
    /// them and of the remote containers linked with them. Hosts and
    /// networks unchanged, so nobody else's entry can have changed.
    fn sync_remote_of(&self, cl: &Cluster, which: &BTreeSet<(String, String)>) {
        let me = cl.node();
        let mut fresh = cl.view().remote_containers_of(&me, which);
        let owners: BTreeSet<String> = {
            let mut st = self.st();
            for c in fresh.iter_mut() {
                c.attachments.retain(|a| st.networks.contains_key(&a.network_id));
            }
            fresh.retain(|c| !c.attachments.is_empty());
            // Remote containers' ids are their hosts' (64 hex digits): one
            // entry per id in the remote set.
            let old: Vec<_> = which.iter().filter_map(|(_, id)| st.remote.remove(id)).collect();
            let mut ids: BTreeSet<String> = which.iter().map(|(_, id)| id.clone()).collect();
            for c in fresh {
                st.remote.insert(c.id.clone(), c);
            }
            let st = &*st;
            for c in old.iter().chain(ids.clone().iter().filter_map(|id| st.remote.get(id))) {
                ids.extend(related(st, c).into_iter().filter(|r| st.remote.contains_key(&r.id)).map(|r| r.id.clone()));
            }
            ids
        };
        let r = self.fw.sync(self.kernel.as_ref(), || {
            let st = self.st();
            owners
                .iter()
                .map(|id| {
                    let want = st.remote.get(id).map(|c| container_elements(c, &related(&st, c), &[])).unwrap_or_default();
                    (remote_owner(id), want)
                })
                .collect()
        });
        match r {
            Ok(()) => {
                let st = self.st();
                let mut known = cl.remote_owners.lock().unwrap();
                for id in &owners {
                    if st.remote.contains_key(id) {
                        known.insert(remote_owner(id));
                    } else {
                        known.remove(&remote_owner(id));
                    }
                }
            }
            Err(e) => tracing::warn!("firewall elements of other hosts' containers: {e}"),
        }
    }

    /// Cluster policies: the state takes them and the whole table is
    /// rewritten (policies change rarely; every container may be named).
    fn sync_cluster_policies(&self, cl: &Cluster) {
        let policies: Vec<_> = cl.view().policies.values().cloned().collect();
        {
            let mut st = self.st();
            if st.cluster_policies == policies {
                // A listing that changed nothing (the first after a start).
                return;
            }
            st.cluster_policies = policies;
        }
        if let Err(e) = self.fw.reset(self.kernel.as_ref(), self.all_wants()) {
            tracing::warn!("applying the cluster's policies: {e}");
        }
    }

    /// The cluster's firewall wants: other hosts' tunnel ends and the link
    /// elements of their containers (for reconcile's full table).
    pub fn cluster_wants(&self, st: &State) -> Vec<(Owner, BTreeSet<Element>)> {
        let Some(cl) = &self.cluster else { return vec![] };
        let me = cl.node();
        let ports: BTreeSet<u16> = st
            .networks
            .values()
            .filter_map(|n| match &n.driver {
                Driver::Overlay(o) => Some(o.port),
                _ => None,
            })
            .collect();
        let mut v = vec![(VTEPS.to_string(), cl.view().vtep_elements(&me, &ports))];
        v.extend(remote_wants(st));
        v
    }
}

/// Link elements owned by each of the other hosts' containers (policies
/// are enforced where their target runs, so none here).
fn remote_wants(st: &State) -> Vec<(Owner, BTreeSet<Element>)> {
    let mut out: BTreeMap<Owner, BTreeSet<Element>> = BTreeMap::new();
    for c in st.remote.values() {
        out.insert(remote_owner(&c.id), container_elements(c, &related(st, c), &[]));
    }
    out.into_iter().collect()
}
