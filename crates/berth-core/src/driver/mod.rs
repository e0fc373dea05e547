//! One planner per network driver: what a network of that kind needs in
//! the kernel, how its endpoints are attached, and which firewall elements
//! it brings. The daemon's request flows call these through [`planner`]
//! and never look inside a driver's data, so a new kind of network is a
//! new `Driver` variant and a new planner here.

mod bridge;
mod macvlan;
pub mod overlay;

use std::collections::BTreeSet;

use std::net::IpAddr;

use crate::model::{Driver, Endpoint, Network};
use crate::nft::Element;
use crate::plan::{EndpointPlan, NetworkPlan};

/// Default routes an endpoint is to carry: which families still need one
/// when this endpoint is plumbed (only the first network with a gateway of
/// a family gives a container its default route of that family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DefaultRoutes {
    pub v4: bool,
    pub v6: bool,
}

pub trait Planner: Sync {
    /// The network's own kernel objects on this host.
    fn network(&self, net: &Network) -> NetworkPlan;
    /// One endpoint's kernel objects.
    fn endpoint(&self, net: &Network, ep: &Endpoint, routes: DefaultRoutes) -> EndpointPlan;
    /// Firewall elements that exist because the network exists.
    fn elements(&self, net: &Network) -> BTreeSet<Element>;
}

/// The gateways an endpoint's default routes go through: those of the
/// families that still need one.
fn default_gateways(ep: &Endpoint, routes: DefaultRoutes) -> Vec<IpAddr> {
    ep.addresses.iter().filter_map(|a| a.gateway).filter(|g| if g.is_ipv6() { routes.v6 } else { routes.v4 }).collect()
}

/// An endpoint's plan with the given attachment to its network: what
/// every driver shares (names, MAC, addresses, default routes, MTU).
fn endpoint_with(net: &Network, ep: &Endpoint, routes: DefaultRoutes, port: crate::plan::PortPlan) -> EndpointPlan {
    EndpointPlan {
        host_ifname: ep.host_ifname.clone(),
        ifname: ep.ifname.clone(),
        mac: ep.mac.clone(),
        addresses: ep.addresses.iter().map(|a| a.addr).collect(),
        default_gateways: default_gateways(ep, routes),
        mtu: net.mtu,
        port,
    }
}

/// The planner of a network's driver.
pub fn planner(driver: &Driver) -> &'static dyn Planner {
    match driver {
        Driver::Bridge(_) => &bridge::BridgePlanner,
        Driver::Overlay(_) => &overlay::OverlayPlanner,
        Driver::Macvlan(_) => &macvlan::MacvlanPlanner,
    }
}

/// Shorthands for the daemon.
pub fn network_plan(net: &Network) -> NetworkPlan {
    planner(&net.driver).network(net)
}

pub fn endpoint_plan(net: &Network, ep: &Endpoint, routes: DefaultRoutes) -> EndpointPlan {
    planner(&net.driver).endpoint(net, ep, routes)
}

pub fn network_elements(net: &Network) -> BTreeSet<Element> {
    planner(&net.driver).elements(net)
}
