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

use super::element::{protos_of, Element, PortRange};

/// Elements that exist because the network exists.
pub fn network_elements(net: &Network) -> BTreeSet<Element> {
    let b = &net.bridge;
    let mut s = BTreeSet::from([Element::Bridge(b.clone()), Element::BridgePair(b.clone())]);
    for c in &net.ipam {
        if let ipnet::IpNet::V4(sub) = c.subnet {
            s.insert(Element::Hairpin4 { start: sub.network(), end: sub.broadcast(), bridge: b.clone() });
        }
    }
    // User-defined networks have a resolver on their gateway (the default
    // network has no names, as in Docker).
    if !net.predefined {
        if let Some(std::net::IpAddr::V4(gw)) = net.ipv4().map(|c| c.gateway) {
            s.insert(Element::ResolverAddr4(gw));
            s.insert(Element::Resolver4 { addr: gw, bridge: b.clone() });
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

/// Cuts `[lo, hi]` ranges at every boundary any of them has: the pieces
/// are disjoint and each lies wholly inside or outside every range.
fn segments(ranges: &[(u32, u32)], lo: u32, hi: u32) -> Vec<(u32, u32)> {
    let mut cuts: Vec<u32> = vec![lo, hi + 1];
    for (a, b) in ranges {
        cuts.push(*a);
        cuts.push(b + 1);
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).map(|w| (w[0], w[1] - 1)).collect()
}

/// Sorted, coalesced union of intervals.
fn union(mut v: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The policies of one container as elements whose boxes (source range ×
/// protocol range × port range) never overlap: the kernel refuses an
/// interval element overlapping another, so overlapping policies (a /24
/// and a /32 inside it, a whole-container and a one-port policy) are cut
/// into disjoint pieces with the union of their sources.
fn policy_elements(c: &Container, policies: &[&Policy], out: &mut BTreeSet<Element>) {
    let dsts: Vec<Ipv4Addr> = v4_by_network(c).into_iter().map(|(_, ip)| ip).collect();
    for action in [PolicyAction::Deny, PolicyAction::Allow] {
        let ps: Vec<(u32, u32, (u32, u32), (u32, u32))> = policies
            .iter()
            .filter(|p| p.action == action)
            .map(|p| {
                let (p0, p1) = protos_of(p.to.proto);
                let (a, b) = p.to.ports.unwrap_or((0, 65535));
                (u32::from(p.from.network()), u32::from(p.from.broadcast()), (p0 as u32, p1 as u32), (a as u32, b as u32))
            })
            .collect();
        if ps.is_empty() {
            continue;
        }
        let proto_segs = segments(&ps.iter().map(|p| p.2).collect::<Vec<_>>(), 0, 255);
        let port_segs = segments(&ps.iter().map(|p| p.3).collect::<Vec<_>>(), 0, 65535);
        for &(q0, q1) in &proto_segs {
            for &(r0, r1) in &port_segs {
                let covering: Vec<(u32, u32)> = ps
                    .iter()
                    .filter(|p| p.2 .0 <= q0 && q1 <= p.2 .1 && p.3 .0 <= r0 && r1 <= p.3 .1)
                    .map(|p| (p.0, p.1))
                    .collect();
                if covering.is_empty() {
                    continue;
                }
                let (protos, ports) = ((q0 as u8, q1 as u8), PortRange(r0 as u16, r1 as u16));
                for &dst in &dsts {
                    for (a, b) in union(covering.clone()) {
                        let src = (Ipv4Addr::from(a), Ipv4Addr::from(b));
                        out.insert(match action {
                            PolicyAction::Deny => Element::Deny4 { src, dst, protos, ports },
                            PolicyAction::Allow => Element::Allow4 { src, dst, protos, ports },
                        });
                    }
                    if action == PolicyAction::Allow {
                        out.insert(Element::Guarded4 { dst, protos, ports });
                    }
                }
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
    let mine: Vec<&Policy> = policies.iter().filter(|p| p.to.container == c.name).collect();
    policy_elements(c, &mine, &mut out);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn disjoint(a: &Element, b: &Element) -> bool {
        let k = |e: &Element| -> Option<(Ipv4Addr, u32, u32, u8, u8, u16, u16, &'static str)> {
            match e {
                Element::Deny4 { src, dst, protos, ports } | Element::Allow4 { src, dst, protos, ports } => {
                    Some((*dst, u32::from(src.0), u32::from(src.1), protos.0, protos.1, ports.0, ports.1, e.set()))
                }
                _ => None,
            }
        };
        match (k(a), k(b)) {
            (Some(x), Some(y)) if x.0 == y.0 && x.7 == y.7 => {
                x.2 < y.1 || y.2 < x.1 || x.4 < y.3 || y.4 < x.3 || x.6 < y.5 || y.6 < x.5
            }
            _ => true,
        }
    }

    proptest! {
        /// Any set of policies on one container yields pairwise disjoint
        /// elements, and a packet matches an element exactly when it
        /// matches one of the policies.
        #[test]
        fn policies_become_disjoint_elements(
            ps in proptest::collection::vec((any::<bool>(), 0u32..64, 24u8..=32, 0u8..3, proptest::option::of((1u16..100, 0u16..5))), 1..6),
            probe in (0u32..64, 0u8..3, 1u16..110),
        ) {
            use crate::model::*;
            let policies: Vec<Policy> = ps.iter().enumerate().map(|(i, (allow, host, prefix, proto, ports))| Policy {
                id: i.to_string(),
                action: if *allow { PolicyAction::Allow } else { PolicyAction::Deny },
                from: ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + host), *prefix).unwrap().trunc(),
                to: PolicyTarget { container: "c".into(), ports: ports.map(|(a, n)| (a, a + n)), proto: [None, Some(Proto::Tcp), Some(Proto::Udp)][*proto as usize] },
            }).collect();
            let refs: Vec<&Policy> = policies.iter().collect();
            let mut c: Container = serde_json::from_str(r#"{"id":"i","name":"c","hostname":"c","kind":{"type":"run","cmd":["x"]},"state":{"status":"running","pid":null,"shim_pid":null,"shim_start":null,"exit_code":null,"started_at":0,"finished_at":0},"created":0,"attachments":[{"network_id":"n","static_ip":null,"aliases":[],"endpoint":{"id":"e","ip":"172.17.0.2","prefix_len":16,"gateway":null,"mac":"","host_ifname":"","ifname":"eth0","state":"up"}}],"expose":[],"ports":[],"links":[],"link_env":false,"dns":[]}"#).unwrap();
            c.name = "c".into();
            let mut out = BTreeSet::new();
            policy_elements(&c, &refs, &mut out);
            let v: Vec<&Element> = out.iter().collect();
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    prop_assert!(disjoint(v[i], v[j]), "{} overlaps {}", v[i].text(), v[j].text());
                }
            }
            let (h, pr, port) = probe;
            let src = 0x0a00_0000 + h;
            let proto = [1u8, 6, 17][pr as usize];
            for action in [PolicyAction::Deny, PolicyAction::Allow] {
                let by_policy = policies.iter().any(|p| p.action == action
                    && (u32::from(p.from.network())..=u32::from(p.from.broadcast())).contains(&src)
                    && { let (a, b) = protos_of(p.to.proto); (a..=b).contains(&proto) }
                    && { let (a, b) = p.to.ports.unwrap_or((0, 65535)); (a..=b).contains(&port) });
                let by_element = out.iter().any(|e| match (e, action) {
                    (Element::Deny4 { src: s, protos, ports, .. }, PolicyAction::Deny) | (Element::Allow4 { src: s, protos, ports, .. }, PolicyAction::Allow) => {
                        (u32::from(s.0)..=u32::from(s.1)).contains(&src) && (protos.0..=protos.1).contains(&proto) && (ports.0..=ports.1).contains(&port)
                    }
                    _ => false,
                });
                prop_assert_eq!(by_policy, by_element);
            }
        }
    }
}
