//! The macvlan driver (Docker's, bridge mode): each container's interface
//! is a macvlan child of the parent interface, with a MAC of its own, on
//! the parent's LAN. Nothing is made on the host for the network itself,
//! and the host never sees its containers' traffic: no firewall elements
//! (isolation is the LAN's), and the host cannot reach its own macvlan
//! containers through the parent (the kernel does not pass traffic
//! between a macvlan parent and its children).

use std::collections::BTreeSet;

use super::{DefaultRoutes, Planner};
use crate::model::{Driver, Endpoint, Network};
use crate::nft::Element;
use crate::plan::{EndpointPlan, NetworkPlan, PortPlan};

pub struct MacvlanPlanner;

fn parent(net: &Network) -> &str {
    match &net.driver {
        Driver::Macvlan(m) => &m.parent,
        _ => unreachable!("the macvlan planner is only given macvlan networks"),
    }
}

impl Planner for MacvlanPlanner {
    fn network(&self, net: &Network) -> NetworkPlan {
        NetworkPlan::Macvlan { parent: parent(net).to_string() }
    }

    fn endpoint(&self, net: &Network, ep: &Endpoint, routes: DefaultRoutes) -> EndpointPlan {
        super::endpoint_with(net, ep, routes, PortPlan::Macvlan { parent: parent(net).to_string() })
    }

    fn elements(&self, _net: &Network) -> BTreeSet<Element> {
        BTreeSet::new()
    }
}
