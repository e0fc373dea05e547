//! Networks: create, remove, prune, connect, disconnect.

use berth_core::model::{Attachment, EndpointState, Network};
use berth_core::names::validate_name;
use berth_core::nft::network_elements;
use berth_core::plan::bridge_plan;
use berth_core::request::{validate_network_create, NetworkConnect, NetworkContext, NetworkCreate};
use berth_core::CoreError;
use tracing::{info, warn};

use super::endpoint::{allocate, plans};
use crate::daemon::Daemon;
use crate::error::Result;
use crate::firewall::net_owner;
use crate::kernel::NsRef;
use crate::store::Op;
use crate::util::{new_id, now};

impl Daemon {
    /// `berth network create`.
    pub fn network_create(&self, req: &NetworkCreate) -> Result<Network> {
        let needs_host = req.ipam.as_ref().is_none_or(|i| i.config.iter().all(|c| c.subnet.is_none()));
        let host_nets = if needs_host { self.kernel.host_nets(&self.bridge_names())? } else { vec![] };
        let id = new_id();
        let net = {
            let mut st = self.st();
            let ctx = NetworkContext {
                networks: st.networks.values().map(|n| (n.name.as_str(), n.bridge.as_str(), n.ipam.iter().map(|c| c.subnet).collect())).collect(),
                host_nets: &host_nets,
                pools: &self.cfg.pools,
                default_mtu: self.cfg.mtu,
                default_icc: true,
            };
            let net = validate_network_create(req, &ctx, &id, now())?;
            st.networks.insert(id.clone(), net.clone());
            net
        };
        let undo = |d: &Daemon| {
            d.st().networks.remove(&id);
            let _ = d.fw.sync(d.kernel.as_ref(), || vec![(net_owner(&id), Default::default())]);
            let _ = d.kernel.delete_link(&net.bridge);
            let _ = d.commit(&[Op::DelNetwork(&id)], false);
        };
        if let Err(e) = self.commit(&[Op::PutNetwork(&net)], true) {
            undo(self);
            return Err(e);
        }
        let applied = self
            .kernel
            .ensure_bridge(&bridge_plan(&net))
            .and_then(|_| self.kernel.sysctl(&format!("net/ipv4/conf/{}/route_localnet", net.bridge), "1").map(drop))
            .and_then(|_| self.fw.sync(self.kernel.as_ref(), || vec![(net_owner(&id), network_elements(&net))]));
        if let Err(e) = applied {
            undo(self);
            return Err(e);
        }
        self.ensure_forwarding();
        self.dns_start(&net);
        info!("network {} created on bridge {} ({})", net.name, net.bridge, net.ipam[0].subnet);
        Ok(net)
    }

    /// `berth network rm`.
    pub fn network_remove(&self, key: &str) -> Result<()> {
        let net = {
            let mut st = self.st();
            let net = st.network(key)?.clone();
            if net.predefined {
                return Err(CoreError::PredefinedNetwork(net.name).into());
            }
            let users = st.users_of(&net.id);
            let configured: Vec<String> = st
                .containers
                .values()
                .filter(|c| c.attachments.iter().any(|a| a.network_id == net.id))
                .map(|c| c.name.clone())
                .collect();
            if !users.is_empty() || !configured.is_empty() {
                let mut all = users;
                all.extend(configured);
                all.sort();
                all.dedup();
                return Err(CoreError::NetworkInUse { network: net.name, containers: all.join(", ") }.into());
            }
            st.networks.remove(&net.id);
            net
        };
        if let Err(e) = self.commit(&[Op::DelNetwork(&net.id)], true) {
            self.st().networks.insert(net.id.clone(), net);
            return Err(e);
        }
        let removed = self.fw.sync(self.kernel.as_ref(), || vec![(net_owner(&net.id), Default::default())]).and_then(|_| {
            if net.bridge_owned {
                self.kernel.delete_link(&net.bridge)
            } else {
                Ok(())
            }
        });
        if let Err(e) = removed {
            // Put everything back as it was.
            warn!("removing network {}: {e}; restoring it", net.name);
            self.st().networks.insert(net.id.clone(), net.clone());
            let _ = self.commit(&[Op::PutNetwork(&net)], true);
            let _ = self.kernel.ensure_bridge(&bridge_plan(&net));
            let _ = self.fw.sync(self.kernel.as_ref(), || vec![(net_owner(&net.id), network_elements(&net))]);
            return Err(e);
        }
        self.dns_stop(&net.id);
        info!("network {} removed", net.name);
        Ok(())
    }

    /// `berth network prune`: removes user networks no container uses.
    pub fn network_prune(&self) -> Result<Vec<String>> {
        let candidates: Vec<String> = {
            let st = self.st();
            st.networks
                .values()
                .filter(|n| !n.predefined && !st.containers.values().any(|c| c.attachments.iter().any(|a| a.network_id == n.id)))
                .map(|n| n.name.clone())
                .collect()
        };
        let mut removed = Vec::new();
        for name in candidates {
            if self.network_remove(&name).is_ok() {
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// `berth network connect [--ip IP] [--alias A] NET CONTAINER`.
    pub fn network_connect(&self, key: &str, req: &NetworkConnect) -> Result<()> {
        for a in &req.aliases {
            validate_name(a)?;
        }
        let (c, net_id, ns) = {
            let mut st = self.st();
            let net_id = st.network_id(key)?;
            let cid = st.container_id(&req.container)?;
            let mut c = st.containers[&cid].clone();
            let net = &st.networks[&net_id];
            if c.attachments.iter().any(|a| a.network_id == net_id) {
                return Err(CoreError::AlreadyConnected { container: c.name, network: net.name.clone() }.into());
            }
            if net.predefined && !req.aliases.is_empty() {
                return Err(CoreError::InvalidConfig("network-scoped aliases are supported only for containers in user defined networks".into()).into());
            }
            c.attachments.push(Attachment { network_id: net_id.clone(), static_ip: req.ip, aliases: req.aliases.clone(), endpoint: None });
            let ns = if c.state.status == berth_core::model::RunState::Running { self.ns_of(&c) } else { None };
            if ns.is_some() {
                allocate(&mut st, &mut c, Some(&net_id))?;
            } else if let Some(ip) = req.ip {
                // Check a static address now even if it is only used at the next start.
                let n = &st.networks[&net_id];
                berth_core::ipam::check_static(n.ipv4().unwrap(), ip, &st.used_addresses(&net_id), &n.name)?;
            }
            st.containers.insert(cid, c.clone());
            (c, net_id, ns)
        };
        let restore = |d: &Daemon| {
            let mut st = d.st();
            if let Some(mut cur) = st.containers.get_mut(&c.id) {
                cur.attachments.retain(|a| a.network_id != net_id);
            };
        };
        if let Err(e) = self.commit(&[Op::PutContainer(&c)], true) {
            restore(self);
            return Err(e);
        }
        if let Some(ns) = ns {
            let plan = plans(&self.st(), &c).into_iter().find(|(n, _)| *n == net_id).map(|(_, p)| p).expect("just allocated");
            let r = self.plumb(&ns, std::slice::from_ref(&plan)).and_then(|_| {
                self.sync_fw(&c)
            });
            if let Err(e) = r {
                self.unplumb(std::slice::from_ref(&plan.host_ifname));
                restore(self);
                let back = self.st().containers.get(&c.id).cloned();
                if let Some(back) = back {
                    let _ = self.commit(&[Op::PutContainer(&back)], false);
                }
                return Err(e);
            }
            let done = {
                let mut st = self.st();
                let Some(mut cur) = st.containers.get_mut(&c.id) else {
                    return Err(crate::error::DaemonError::Conflict(format!("container {} was removed meanwhile", c.name)));
                };
                for a in cur.attachments.iter_mut().filter(|a| a.network_id == net_id) {
                    if let Some(e) = a.endpoint.as_mut() {
                        e.state = EndpointState::Up;
                    }
                }
                cur.clone()
            };
            let _ = self.commit(&[Op::PutContainer(&done)], false);
            let _ = self.write_runtime_files(&done);
        }
        Ok(())
    }

    /// `berth network disconnect NET CONTAINER`.
    pub fn network_disconnect(&self, key: &str, container: &str) -> Result<()> {
        let (c, net_id, ifname) = {
            let mut st = self.st();
            let net_id = st.network_id(key)?;
            let net_name = st.networks[&net_id].name.clone();
            let cid = st.container_id(container)?;
            let mut c = st.containers.get_mut(&cid).unwrap();
            let Some(a) = c.attachments.iter_mut().find(|a| a.network_id == net_id) else {
                return Err(CoreError::NotConnected { container: c.name.clone(), network: net_name }.into());
            };
            let ifname = a.endpoint.as_mut().map(|e| {
                e.state = EndpointState::Removing;
                e.host_ifname.clone()
            });
            (c.clone(), net_id, ifname)
        };
        if let Some(name) = &ifname {
            self.commit(&[Op::PutContainer(&c)], true)?;
            self.unplumb(std::slice::from_ref(name));
        }
        let done = {
            let mut st = self.st();
            let Some(mut cur) = st.containers.get_mut(&c.id) else { return Ok(()) };
            cur.attachments.retain(|a| a.network_id != net_id);
            cur.clone()
        };
        self.sync_fw(&c)?;
        // A configuration-only change has no intent record before it: make it durable now.
        self.commit(&[Op::PutContainer(&done)], ifname.is_none())?;
        let _ = self.write_runtime_files(&done);
        Ok(())
    }

    /// Where a live container's network namespace is.
    pub fn ns_of(&self, c: &berth_core::model::Container) -> Option<NsRef> {
        match &c.kind {
            berth_core::model::ContainerKind::Run { .. } => c.state.shim_pid.map(NsRef::Pid),
            berth_core::model::ContainerKind::Attached { netns } => Some(NsRef::Path(netns.into())),
        }
    }
}

