//! The bridge driver: a Linux bridge per network with the gateway
//! addresses on it, a veth pair per endpoint with its host end a port of
//! the bridge (Docker's `bridge` driver).

use std::collections::BTreeSet;

use super::{DefaultRoutes, Planner};
use crate::model::{Driver, Endpoint, Network};
use crate::nft::Element;
use crate::plan::{bridge_mac, gateway_cidr, BridgePlan, EndpointPlan, NetworkPlan, PortPlan};

pub struct BridgePlanner;

/// A veth pair whose host end is a port of `bridge` (bridge and overlay
/// networks attach containers the same way).
pub fn bridge_endpoint(net: &Network, bridge: &str, ep: &Endpoint, routes: DefaultRoutes) -> EndpointPlan {
    super::endpoint_with(net, ep, routes, PortPlan::BridgePort { bridge: bridge.to_string(), host_mac: bridge_mac(&net.id) })
}

impl Planner for BridgePlanner {
    fn network(&self, net: &Network) -> NetworkPlan {
        let Driver::Bridge(b) = &net.driver else { unreachable!("the bridge planner is only given bridge networks") };
        NetworkPlan::Bridge(BridgePlan {
            name: b.name.clone(),
            mac: bridge_mac(&net.id),
            addresses: net.ipam.iter().map(gateway_cidr).collect(),
            mtu: net.mtu,
            owned: b.owned,
        })
    }

    fn endpoint(&self, net: &Network, ep: &Endpoint, routes: DefaultRoutes) -> EndpointPlan {
        bridge_endpoint(net, net.bridge(), ep, routes)
    }

    fn elements(&self, net: &Network) -> BTreeSet<Element> {
        crate::nft::bridge_elements(net)
    }
}
