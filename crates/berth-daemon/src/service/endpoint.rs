//! Endpoints: allocating addresses for a container's networks and plumbing
//! or removing its veth pairs. Shared by run, start, attach, connect.

use berth_core::driver::overlay::host_address;
use berth_core::driver::{endpoint_plan, DefaultRoutes};
use berth_core::ipam;
use berth_core::model::{Container, Endpoint, EndpointAddress, EndpointState};
use berth_core::plan::{mac_for, next_ifname, veth_name, EndpointPlan};
use berth_linux::kernel::NsRef;
use ipnet::IpNet;
use tracing::warn;

use crate::daemon::Daemon;
use crate::error::Result;
use crate::state::State;
use crate::util::new_id;

/// Gives every attachment of `c` without an endpoint (or only the one for
/// network `only`) an address of each family of its network and interface
/// names. Pure apart from advancing the allocation cursors.
pub fn allocate(st: &mut State, c: &mut Container, only: Option<&str>) -> Result<()> {
    let mut ifnames: Vec<String> = c.endpoints().map(|(_, e)| e.ifname.clone()).collect();
    for a in c.attachments.iter_mut().filter(|a| only.is_none_or(|o| o == a.network_id)) {
        if a.endpoint.is_some() {
            continue;
        }
        let net = &st.networks[&a.network_id];
        let mut used = st.used_addresses(&net.id);
        // An overlay host's own address on the network is never a container's.
        used.extend(host_address(net));
        let mut addresses = Vec::new();
        for cfg in &net.ipam {
            let v6 = cfg.is_ipv6();
            let ip = match a.static_ip(v6) {
                Some(ip) => {
                    if !cfg.user_subnet && !net.predefined {
                        return Err(berth_core::CoreError::StaticIpNeedsSubnet.into());
                    }
                    ipam::check_static(cfg, ip, &used, &net.name)?;
                    if net.global && !net.blocks.iter().any(|b| b.contains(&ip)) {
                        return Err(berth_core::CoreError::IpNotInHostBlocks { ip, network: net.name.clone(), blocks: blocks_text(net) }.into());
                    }
                    ip
                }
                None if net.global => {
                    let key = (net.id.clone(), v6);
                    let ip = allocate_in_blocks(net, cfg, &used, st.cursors.get(&key).copied())?;
                    st.cursors.insert(key, ip);
                    ip
                }
                None => {
                    let key = (net.id.clone(), v6);
                    let ip = ipam::allocate(cfg, &used, st.cursors.get(&key).copied(), &net.name)?;
                    st.cursors.insert(key, ip);
                    ip
                }
            };
            let addr = IpNet::new(ip, cfg.subnet.prefix_len()).expect("prefix from the subnet");
            addresses.push(EndpointAddress { addr, gateway: if net.internal { None } else { Some(cfg.gateway) } });
        }
        let id = new_id();
        let ifname = match &a.ifname {
            Some(want) if ifnames.contains(want) => return Err(berth_core::CoreError::DuplicateIfname(want.clone()).into()),
            Some(want) => want.clone(),
            None => next_ifname(ifnames.iter().map(String::as_str)),
        };
        ifnames.push(ifname.clone());
        // MACs follow the IPv4 address when there is one (see `mac_for`),
        // unless the caller keeps its own.
        let mac_source = addresses.first().map(|a| a.ip()).expect("a network has at least one address block");
        let mac = match &a.mac {
            Some(m) => {
                if st.containers.values().any(|o| o.attachments.iter().any(|oa| oa.network_id == a.network_id && oa.endpoint.as_ref().is_some_and(|e| e.mac == *m))) {
                    return Err(berth_core::CoreError::MacInUse { mac: m.clone(), network: net.name.clone() }.into());
                }
                m.clone()
            }
            None => mac_for(mac_source, &id),
        };
        a.endpoint = Some(Endpoint {
            host_ifname: veth_name(&id),
            mac,
            id,
            addresses,
            ifname,
            state: EndpointState::Pending,
        });
    }
    Ok(())
}

/// This host's blocks of a global network, for messages.
fn blocks_text(net: &berth_core::model::Network) -> String {
    if net.blocks.is_empty() {
        "none yet".into()
    } else {
        net.blocks.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// An address of a global network from this host's blocks only: the
/// block the cursor is in first (walking on from the cursor), then the
/// others in order.
fn allocate_in_blocks(
    net: &berth_core::model::Network,
    cfg: &berth_core::model::IpamConfig,
    used: &std::collections::BTreeSet<std::net::IpAddr>,
    cursor: Option<std::net::IpAddr>,
) -> Result<std::net::IpAddr> {
    let mut blocks: Vec<&IpNet> = net.blocks.iter().filter(|b| !b.addr().is_ipv6()).collect();
    if let Some(i) = cursor.and_then(|c| blocks.iter().position(|b| b.contains(&c))) {
        blocks.rotate_left(i);
    }
    for b in blocks {
        let slice = berth_core::model::IpamConfig { ip_range: Some(*b), ..cfg.clone() };
        let from = cursor.filter(|c| b.contains(c));
        if let Ok(ip) = ipam::allocate(&slice, used, from, &net.name) {
            return Ok(ip);
        }
    }
    Err(berth_core::CoreError::HostBlocksFull { network: net.name.clone(), blocks: blocks_text(net) }.into())
}

/// Kernel plans of a container's endpoints; the first endpoint with a
/// gateway of a family carries the default route of that family.
pub fn plans(st: &State, c: &Container) -> Vec<(String, EndpointPlan)> {
    let mut need = if c.handoff { DefaultRoutes::default() } else { DefaultRoutes { v4: true, v6: true } };
    c.attachments
        .iter()
        .filter_map(|a| {
            let ep = a.endpoint.as_ref()?;
            let net = st.networks.get(&a.network_id)?;
            let plan = endpoint_plan(net, ep, need);
            for g in &plan.default_gateways {
                if g.is_ipv6() {
                    need.v6 = false;
                } else {
                    need.v4 = false;
                }
            }
            Some((a.network_id.clone(), plan))
        })
        .collect()
}

impl Daemon {
    /// Creates the veth pairs of the given plans; on failure removes the ones
    /// it made.
    pub fn plumb(&self, ns: &NsRef, plans: &[EndpointPlan]) -> Result<()> {
        for (i, p) in plans.iter().enumerate() {
            if let Err(e) = self.kernel.add_endpoint(ns, p) {
                for done in &plans[..i] {
                    let _ = self.kernel.delete_link(&done.host_ifname);
                }
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Takes endpoints down: a veth pair by its host end, a macvlan
    /// interface inside the container (when its namespace is known; a
    /// namespace that is gone took it along).
    pub fn unplumb_plans(&self, ns: Option<&NsRef>, plans: &[EndpointPlan]) {
        let veths: Vec<String> = plans.iter().filter(|p| !p.in_container_only()).map(|p| p.host_ifname.clone()).collect();
        self.unplumb(&veths);
        for p in plans.iter().filter(|p| p.in_container_only()) {
            if let Some(ns) = ns {
                if let Err(e) = self.kernel.remove_in_netns(ns, &p.ifname) {
                    warn!("ip -n NS link del {}: {e}", p.ifname);
                }
            }
        }
    }

    /// Every endpoint of a container (as the caller's copy has them).
    pub fn unplumb_endpoints(&self, c: &Container) {
        let ps: Vec<EndpointPlan> = plans(&self.st(), c).into_iter().map(|(_, p)| p).collect();
        // Endpoints of networks that are gone have no plan: their veths by name.
        let planned: Vec<&str> = ps.iter().map(|p| p.host_ifname.as_str()).collect();
        let orphans: Vec<String> = c.endpoints().map(|(_, e)| e.host_ifname.clone()).filter(|n| !planned.contains(&n.as_str())).collect();
        self.unplumb(&orphans);
        self.unplumb_plans(self.ns_of(c).as_ref(), &ps);
    }

    /// Cuts veth pairs off and has them deleted in the background (missing
    /// ones are fine: the namespace may be gone).
    pub fn unplumb(&self, host_ifnames: &[String]) {
        for name in host_ifnames {
            if let Err(e) = self.kernel.remove_endpoint(name) {
                warn!("ip link set {name} down: {e}");
            }
        }
    }
}
