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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IpamConfig, NetworkOptions, Vtep};

    fn overlay(blocks: &[&str]) -> Network {
        Network {
            id: "ab".repeat(32),
            name: "ov".into(),
            driver: Driver::Overlay(OverlayDriver {
                bridge: "bth-abababab".into(),
                tunnel: "btx-abababab".into(),
                vni: 4096,
                port: 4789,
                host_prefix: 24,
                user_mtu: None,
                vtep: Some(Vtep { addr: "10.90.0.1".parse().unwrap(), dev: "eth0".into(), node: "host-a".into() }),
            }),
            ipam: vec![IpamConfig { subnet: "10.200.0.0/16".parse().unwrap(), gateway: "10.200.0.1".parse().unwrap(), ip_range: None, user_subnet: true }],
            internal: false,
            mtu: 1450,
            options: NetworkOptions::default(),
            raw_options: Default::default(),
            created: 0,
            predefined: false,
            global: true,
            blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn host_address_skips_what_containers_may_not_have() {
        // The first block holds the subnet's network address and gateway.
        assert_eq!(host_address(&overlay(&["10.200.0.0/24"])).unwrap().to_string(), "10.200.0.2");
        assert_eq!(host_address(&overlay(&["10.200.7.0/24", "10.200.9.0/24"])).unwrap().to_string(), "10.200.7.0");
        assert_eq!(host_address(&overlay(&[])), None, "no block yet: no address");
    }

    #[test]
    fn plan_has_the_tunnel_and_the_shared_gateway() {
        let n = overlay(&["10.200.7.0/24"]);
        let NetworkPlan::Overlay(p) = OverlayPlanner.network(&n) else { panic!() };
        assert_eq!(p.bridge.addresses[0].to_string(), "10.200.0.1/16", "the gateway with the whole subnet's prefix");
        let t = p.tunnel.unwrap();
        assert_eq!((t.vni, t.port, t.mtu, t.dev.as_str()), (4096, 4789, 1450, "eth0"));
        assert_eq!(t.mac, vtep_mac(&n.id, "host-a"));
        assert_eq!(t.host_addr.unwrap().to_string(), "10.200.7.0");
        let e = OverlayPlanner.elements(&n);
        assert!(e.contains(&Element::TunnelOut { bridge: "bth-abababab".into(), tunnel: "btx-abababab".into() }));
        // Without this host's tunnel end (before it knows its underlay): a bridge only.
        let mut n = n;
        if let Driver::Overlay(o) = &mut n.driver {
            o.vtep = None;
        }
        let NetworkPlan::Overlay(p) = OverlayPlanner.network(&n) else { panic!() };
        assert!(p.tunnel.is_none());
        // What the store gets has no host's part.
        let shared = crate::cluster::records::shared_network(&overlay(&["10.200.7.0/24"]));
        assert!(shared.blocks.is_empty() && shared.mtu == 0 && matches!(&shared.driver, Driver::Overlay(o) if o.vtep.is_none()));
    }
}
