//! Endpoints: allocating addresses for a container's networks and plumbing
//! or removing its veth pairs. Shared by run, start, attach, connect.

use berth_core::ipam;
use berth_core::model::{Container, Endpoint, EndpointState};
use berth_core::plan::{endpoint_plan, mac_for, next_ifname, veth_name, EndpointPlan};
use tracing::warn;

use crate::daemon::Daemon;
use crate::error::Result;
use crate::kernel::NsRef;
use crate::state::State;
use crate::util::new_id;

/// Gives every attachment of `c` without an endpoint (or only the one for
/// network `only`) an address and interface names. Pure apart from advancing
/// the allocation cursors.
pub fn allocate(st: &mut State, c: &mut Container, only: Option<&str>) -> Result<()> {
    let mut ifnames: Vec<String> = c.endpoints().map(|(_, e)| e.ifname.clone()).collect();
    for a in c.attachments.iter_mut().filter(|a| only.is_none_or(|o| o == a.network_id)) {
        if a.endpoint.is_some() {
            continue;
        }
        let net = &st.networks[&a.network_id];
        let cfg = net.ipv4().expect("bridge networks have an IPv4 block");
        let used = st.used_addresses(&net.id);
        let ip = match a.static_ip {
            Some(ip) => {
                if !cfg.user_subnet && !net.predefined {
                    return Err(berth_core::CoreError::StaticIpNeedsSubnet.into());
                }
                ipam::check_static(cfg, ip, &used, &net.name)?;
                ip
            }
            None => {
                let ip = ipam::allocate(cfg, &used, st.cursors.get(&net.id).copied(), &net.name)?;
                st.cursors.insert(net.id.clone(), ip);
                ip
            }
        };
        let id = new_id();
        let ifname = next_ifname(ifnames.iter().map(String::as_str));
        ifnames.push(ifname.clone());
        a.endpoint = Some(Endpoint {
            host_ifname: veth_name(&id),
            mac: mac_for(ip, &id),
            id,
            ip,
            prefix_len: cfg.subnet.prefix_len(),
            gateway: if net.internal { None } else { Some(cfg.gateway) },
            ifname,
            state: EndpointState::Pending,
        });
    }
    Ok(())
}

/// Kernel plans of a container's endpoints; the first endpoint with a
/// gateway carries the default route.
pub fn plans(st: &State, c: &Container) -> Vec<(String, EndpointPlan)> {
    let mut have_default = false;
    c.attachments
        .iter()
        .filter_map(|a| {
            let ep = a.endpoint.as_ref()?;
            let net = st.networks.get(&a.network_id)?;
            let default = ep.gateway.is_some() && !have_default;
            have_default |= default;
            Some((a.network_id.clone(), endpoint_plan(net, ep, default)))
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
                return Err(e);
            }
        }
        Ok(())
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
