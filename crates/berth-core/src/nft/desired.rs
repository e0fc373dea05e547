//! Which elements the model wants in `inet berth`.
//!
//! [`all_elements`] is the whole desired state (for reconcile); the
//! per-object functions give the elements that exist because of one network
//! or one container, so a request's change is the difference between that
//! object's elements before and after — work proportional to the object, not
//! to everything else berth manages.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use crate::model::{Container, Network, Policy, PolicyAction};

use super::element::{Element, PortRange};

/// Elements that exist because the network exists.
pub fn network_elements(net: &Network) -> BTreeSet<Element> {
    let b = &net.bridge;
    let mut s = BTreeSet::from([Element::Bridge(b.clone()), Element::BridgePair(b.clone())]);
    for c in &net.ipam {
        if let ipnet::IpNet::V4(sub) = c.subnet {
            s.insert(Element::Hairpin4 { start: sub.network(), end: sub.broadcast(), bridge: b.clone() });
        }
    }
    if net.internal {
        s.insert(Element::InternalBridge(b.clone()));
    }
    if !net.options.icc {
        s.insert(Element::IccOff(b.clone()));
    }
    if net.options.masquerade && !net.internal {
        s.insert(Element::MasqBridge(b.clone()));
    }
    s
}

/// IPv4 addresses of a container's live endpoints, by network id.
fn v4_by_network(c: &Container) -> Vec<(&str, Ipv4Addr)> {
    c.attachments
        .iter()
        .filter_map(|a| match a.endpoint.as_ref().map(|e| e.ip) {
            Some(IpAddr::V4(ip)) => Some((a.network_id.as_str(), ip)),
            _ => None,
        })
        .collect()
}

/// Link elements for `from` linking to `to`: on every network they share,
/// `from` may open connections to each of `to`'s exposed ports.
fn link_elements(from: &Container, to: &Container, out: &mut BTreeSet<Element>) {
    let to_addrs = v4_by_network(to);
    let ports = to.exposed_ports();
    for (net, src) in v4_by_network(from) {
        for (_, dst) in to_addrs.iter().filter(|(n, _)| *n == net) {
            for p in &ports {
                out.insert(Element::Link4 { src, dst: *dst, proto: p.proto, port: p.port });
            }
        }
    }
}

fn policy_elements(c: &Container, p: &Policy, out: &mut BTreeSet<Element>) {
    let src = (p.from.network(), p.from.broadcast());
    let ports = p.to.ports.map(|(a, b)| PortRange(a, b)).unwrap_or(PortRange::ANY);
    for (_, dst) in v4_by_network(c) {
        match p.action {
            PolicyAction::Deny => {
                out.insert(Element::Deny4 { src, dst, proto: p.to.proto, ports });
            }
            PolicyAction::Allow => {
                out.insert(Element::Allow4 { src, dst, proto: p.to.proto, ports });
                out.insert(Element::Guarded4 { dst, proto: p.to.proto, ports });
            }
        }
    }
}

/// Elements that exist because container `c` is live: its published ports,
/// links from and to it, and policies naming it. `live` is every live
/// container (it may include `c`).
pub fn container_elements(c: &Container, live: &[&Container], policies: &[Policy]) -> BTreeSet<Element> {
    let mut out = BTreeSet::new();
    if !c.state.status.is_live() {
        return out;
    }
    // Published ports go to the first IPv4 endpoint (the one with the default route).
    if let Some((_, addr)) = v4_by_network(c).first().copied() {
        for m in &c.ports {
            match m.host_ip {
                None => {
                    out.insert(Element::PortAny4 { proto: m.container.proto, host_port: m.host_port, addr, port: m.container.port });
                }
                Some(IpAddr::V4(host_ip)) => {
                    out.insert(Element::PortAddr4 { host_ip, proto: m.container.proto, host_port: m.host_port, addr, port: m.container.port });
                }
                Some(IpAddr::V6(_)) => {}
            }
        }
    }
    for other in live.iter().filter(|o| o.id != c.id && o.state.status.is_live()) {
        if c.links.iter().any(|l| l.name == other.name) {
            link_elements(c, other, &mut out);
        }
        if other.links.iter().any(|l| l.name == c.name) {
            link_elements(other, c, &mut out);
        }
    }
    for p in policies.iter().filter(|p| p.to.container == c.name) {
        policy_elements(c, p, &mut out);
    }
    out
}

/// Everything the model wants in the table.
pub fn all_elements<'a>(
    networks: impl Iterator<Item = &'a Network>,
    live: &[&Container],
    policies: &[Policy],
) -> BTreeSet<Element> {
    let mut out: BTreeSet<Element> = networks.flat_map(network_elements).collect();
    for c in live {
        out.extend(container_elements(c, live, policies));
    }
    out
}
