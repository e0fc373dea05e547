//! The overlay driver: one network over every host of a cluster. Each host
//! has the network's bridge (the same gateway address everywhere, with the
//! whole subnet's prefix) and a VXLAN device; containers are veth ports of
//! the bridge as on a bridge network. Each host leases address blocks of
//! the subnet in the cluster store and gives its containers addresses from
//! them, so the route to a container on another host is the route to that
//! host's block: through the VXLAN device, to that host (see
//! `plan::TunnelPeers`). Kernel state grows with hosts, not containers.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{bridge::bridge_endpoint, DefaultRoutes, Planner};
use crate::model::{Driver, Endpoint, Network, OverlayDriver};
use crate::nft::Element;
use crate::plan::{bridge_mac, gateway_cidr, vtep_mac, BridgePlan, EndpointPlan, NetworkPlan, OverlayPlan, TunnelPlan};

pub struct OverlayPlanner;

/// The overlay part of a network the planner was given.
fn overlay(net: &Network) -> &OverlayDriver {
    match &net.driver {
        Driver::Overlay(o) => o,
        _ => unreachable!("the overlay planner is only given overlay networks"),
    }
}

/// This host's own address on an overlay: the lowest address of its first
/// block that no container may have (not the subnet's network address or
/// gateway). Containers are never given it.
pub fn host_address(net: &Network) -> Option<IpAddr> {
    if !matches!(net.driver, Driver::Overlay(_)) {
        return None;
    }
    let cfg = net.ipv4()?;
    let block = net.blocks.iter().find(|b| cfg.subnet.contains(&b.network()))?;
    let reserved = crate::ipam::reserved(cfg);
    let (lo, hi) = crate::ipam::bounds(block);
    (lo..=hi).find(|a| !reserved.contains(a)).map(|a| crate::ipam::from_u128(a, cfg.subnet.addr()))
}

impl Planner for OverlayPlanner {
    fn network(&self, net: &Network) -> NetworkPlan {
        let o = overlay(net);
        NetworkPlan::Overlay(OverlayPlan {
            bridge: BridgePlan {
                name: o.bridge.clone(),
                mac: bridge_mac(&net.id),
                addresses: net.ipam.iter().map(gateway_cidr).collect(),
                mtu: net.mtu,
                owned: true,
            },
            tunnel: o.vtep.as_ref().map(|v| TunnelPlan {
                name: o.tunnel.clone(),
                vni: o.vni,
                port: o.port,
                local: v.addr,
                dev: v.dev.clone(),
                mac: vtep_mac(&net.id, &v.node),
                mtu: net.mtu,
                host_addr: host_address(net),
            }),
        })
    }

    fn endpoint(&self, net: &Network, ep: &Endpoint, routes: DefaultRoutes) -> EndpointPlan {
        bridge_endpoint(net, &overlay(net).bridge, ep, routes)
    }

    fn elements(&self, net: &Network) -> BTreeSet<Element> {
        let o = overlay(net);
        let mut s = crate::nft::bridge_elements(net);
        s.insert(Element::Tunnel(o.tunnel.clone()));
        s.insert(Element::TunnelOut { bridge: o.bridge.clone(), tunnel: o.tunnel.clone() });
        s.insert(Element::TunnelIn { tunnel: o.tunnel.clone(), bridge: o.bridge.clone() });
        s.insert(Element::VxlanPort(o.port));
        s
    }
}
