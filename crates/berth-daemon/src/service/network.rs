//! Networks: create, remove, prune, connect, disconnect.

use berth_core::driver::{network_elements, network_plan};
use berth_core::model::{Attachment, EndpointState, Network};
use berth_core::names::validate_name;
use berth_core::request::{
    check_static_ips, parse_mac, validate_ifname, validate_network_create, ClusterContext, NetworkConnect, NetworkContext, NetworkCreate,
};
use berth_core::CoreError;
use berth_linux::kernel::NsRef;
use tracing::{info, warn};

use super::endpoint::{allocate, plans};
use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};
use crate::firewall::net_owner;
use crate::store::Op;
use crate::util::{new_id, now};

impl Daemon {
    /// Makes a network's kernel objects: its devices, what they need of the
    /// host, and its firewall elements.
    pub(crate) fn apply_network(&self, net: &Network) -> Result<()> {
        self.kernel.ensure_network(&network_plan(net))?;
        if net.ipv4().is_some() && net.has_bridge() {
            // Host-loopback access to published ports needs 127/8 routable to the bridge.
            self.kernel.sysctl(&format!("net/ipv4/conf/{}/route_localnet", net.bridge()), "1")?;
        }
        self.fw.sync(self.kernel.as_ref(), || vec![(net_owner(&net.id), network_elements(net))])
    }

    /// Takes a network's kernel objects away (a bridge berth did not create
    /// stays).
    pub(crate) fn unapply_network(&self, net: &Network) -> Result<()> {
        self.fw.sync(self.kernel.as_ref(), || vec![(net_owner(&net.id), Default::default())])?;
        if let Some(t) = net.tunnel() {
            self.kernel.delete_link(t)?;
        }
        if net.owns_bridge() {
            self.kernel.delete_link(net.bridge())?;
        }
        Ok(())
    }

    /// `berth network create`.
    pub fn network_create(&self, req: &NetworkCreate) -> Result<Network> {
        let needs_host = req.enable_ipv6 || req.ipam.as_ref().is_none_or(|i| i.config.iter().all(|c| c.subnet.is_none()));
        let host_nets = if needs_host { self.kernel.host_nets(&self.bridge_names())? } else { vec![] };
        // A caller's own id (podman's): 64 hex digits, not taken.
        let id = match &req.id {
            Some(i) if i.len() == 64 && i.bytes().all(|b| b.is_ascii_hexdigit()) => i.to_ascii_lowercase(),
            Some(i) => return Err(DaemonError::BadRequest(format!("network id {i:?} is not 64 hexadecimal digits"))),
            None => new_id(),
        };
        let vnis = self.cluster.as_ref().map(|cl| cl.view().vnis.clone());
        let net = {
            let mut st = self.st();
            if let Some(other) = st.networks.get(&id) {
                return Err(DaemonError::Conflict(format!("network id {id} is already network {}'s", other.name)));
            }
            let ctx = NetworkContext {
                networks: st.networks.values().map(|n| (n.name.as_str(), n.bridge(), n.ipam.iter().map(|c| c.subnet).collect())).collect(),
                host_nets: &host_nets,
                pools: &self.pools,
                default_mtu: self.cfg.mtu,
                default_icc: true,
                cluster: vnis.as_ref().map(|vnis| ClusterContext { vnis }),
            };
            let net = validate_network_create(req, &ctx, &id, now())?;
            if net.global {
                drop(st);
                let vni_given = req.options.keys().any(|k| k == "vni" || k == "com.docker.network.driver.overlay.vxlanid_list");
                return self.network_create_global(net, vni_given);
            }
            st.networks.insert(id.clone(), net.clone());
            net
        };
        let undo = |d: &Daemon| -> Result<()> {
            d.st().networks.remove(&id);
            let kernel = d.unapply_network(&net);
            let store = d.commit(&[Op::DelNetwork(&id)], false);
            kernel.and(store)
        };
        if let Err(e) = self.commit(&[Op::PutNetwork(&net)], true) {
            return Err(e.with_rollback(undo(self)));
        }
        if let Err(e) = self.apply_network(&net) {
            return Err(e.with_rollback(undo(self)));
        }
        self.ensure_forwarding();
        self.dns_start(&net);
        let subnets: Vec<String> = net.ipam.iter().map(|c| c.subnet.to_string()).collect();
        info!("network {} created on bridge {} ({})", net.name, net.bridge(), subnets.join(" and "));
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
                // On a network that spans hosts, the others' too.
                if let (true, Some(cl)) = (net.global, &self.cluster) {
                    let me = cl.node();
                    let others: Vec<String> =
                        cl.view().users_of(&net.id).into_iter().filter(|(h, _)| *h != me).map(|(h, n)| format!("{n} on host {h}")).collect();
                    all.extend(others);
                }
                return Err(CoreError::NetworkInUse { network: net.name, containers: all.join(", ") }.into());
            }
            if net.global {
                drop(st);
                return self.network_remove_global(&net);
            }
            st.networks.remove(&net.id);
            net
        };
        if let Err(e) = self.commit(&[Op::DelNetwork(&net.id)], true) {
            self.st().networks.insert(net.id.clone(), net);
            return Err(e);
        }
        if let Err(e) = self.unapply_network(&net) {
            // Put everything back as it was.
            warn!("removing network {}: {e}; restoring it", net.name);
            self.st().networks.insert(net.id.clone(), net.clone());
            let restored = self.commit(&[Op::PutNetwork(&net)], true).and_then(|()| self.apply_network(&net));
            return Err(e.with_rollback(restored));
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
                .filter(|n| !n.predefined && !n.global && !st.containers.values().any(|c| c.attachments.iter().any(|a| a.network_id == n.id)))
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

    /// `berth network connect [--ip IP] [--ip6 IP] [--alias A] NET CONTAINER`.
    pub fn network_connect(&self, key: &str, req: &NetworkConnect) -> Result<()> {
        for a in &req.aliases {
            validate_name(a)?;
        }
        let wanted = self.st().network_id(key).ok();
        self.ensure_blocks(wanted.iter())?;
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
                return Err(CoreError::AliasesNeedUserNetwork.into());
            }
            let static_ips = check_static_ips(net, req.ip, req.ip6)?;
            let mac = req.mac.as_deref().map(parse_mac).transpose()?;
            if let Some(i) = &req.ifname {
                validate_ifname(i).map_err(|reason| CoreError::InvalidOption { key: "InterfaceName".into(), reason })?;
            }
            c.attachments.push(Attachment { network_id: net_id.clone(), static_ips: static_ips.clone(), aliases: req.aliases.clone(), mac, ifname: req.ifname.clone(), endpoint: None });
            let ns = if c.state.status == berth_core::model::RunState::Running { self.ns_of(&c) } else { None };
            if ns.is_some() {
                allocate(&mut st, &mut c, Some(&net_id))?;
            } else {
                // Check static addresses now even if they are only used at the next start.
                let n = &st.networks[&net_id];
                let used = st.used_addresses(&net_id);
                for ip in &static_ips {
                    let cfg = n.ipam_for(*ip).expect("checked above");
                    berth_core::ipam::check_static(cfg, *ip, &used, &n.name)?;
                }
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
            let r = self.plumb(&ns, std::slice::from_ref(&plan)).and_then(|_| self.sync_fw(&c));
            if let Err(e) = r {
                self.unplumb_plans(Some(&ns), std::slice::from_ref(&plan));
                restore(self);
                let back = self.st().containers.get(&c.id).cloned();
                let undone = match back {
                    Some(back) => self.commit(&[Op::PutContainer(&back)], false),
                    None => Ok(()),
                };
                return Err(e.with_rollback(undone));
            }
            let done = {
                let mut st = self.st();
                let Some(mut cur) = st.containers.get_mut(&c.id) else {
                    return Err(DaemonError::Conflict(format!("container {} was removed meanwhile", c.name)));
                };
                for a in cur.attachments.iter_mut().filter(|a| a.network_id == net_id) {
                    if let Some(e) = a.endpoint.as_mut() {
                        e.state = EndpointState::Up;
                    }
                }
                cur.clone()
            };
            if let Err(e) = self.commit(&[Op::PutContainer(&done)], false) {
                warn!("recording the connection of {}: {e}", done.name);
            }
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
        if ifname.is_some() {
            self.commit(&[Op::PutContainer(&c)], true)?;
            let plan = plans(&self.st(), &c).into_iter().find(|(n, _)| *n == net_id).map(|(_, p)| p);
            self.unplumb_plans(self.ns_of(&c).as_ref(), plan.as_slice());
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
            berth_core::model::ContainerKind::Attached { .. } if c.handoff => Some(NsRef::Handoff),
            berth_core::model::ContainerKind::Attached { netns } => Some(NsRef::Path(netns.into())),
        }
    }
}
