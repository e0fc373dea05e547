//! The bridge driver: a Linux bridge per network with the gateway
//! addresses on it, a veth pair per endpoint with its host end a port of
//! the bridge (Docker's `bridge` driver).

use std::collections::BTreeSet;

use super::{DefaultRoutes, Planner};
use crate::model::{Driver, Endpoint, Network};
use crate::nft::Element;
use crate::plan::{bridge_mac, gateway_cidr, BridgePlan, EndpointPlan, NetworkPlan, PortPlan};

pub struct BridgePlanner;

impl Planner for BridgePlanner {
    fn network(&self, net: &Network) -> NetworkPlan {
        let Driver::Bridge(b) = &net.driver;
        NetworkPlan::Bridge(BridgePlan {
            name: b.name.clone(),
            mac: bridge_mac(&net.id),
            addresses: net.ipam.iter().map(gateway_cidr).collect(),
            mtu: net.mtu,
            owned: b.owned,
        })
    }

    fn endpoint(&self, net: &Network, ep: &Endpoint, routes: DefaultRoutes) -> EndpointPlan {
        let Driver::Bridge(b) = &net.driver;
        EndpointPlan {
            host_ifname: ep.host_ifname.clone(),
            ifname: ep.ifname.clone(),
            mac: ep.mac.clone(),
            addresses: ep.addresses.iter().map(|a| a.addr).collect(),
            default_gateways: ep
                .addresses
                .iter()
                .filter_map(|a| a.gateway)
                .filter(|g| if g.is_ipv6() { routes.v6 } else { routes.v4 })
                .collect(),
            mtu: net.mtu,
            port: PortPlan::BridgePort { bridge: b.name.clone(), host_mac: bridge_mac(&net.id) },
        }
    }

    fn elements(&self, net: &Network) -> BTreeSet<Element> {
        crate::nft::network_elements(net)
    }
}
