//! Which elements the model wants in `inet berth`.
//!
//! [`all_elements`] is the whole desired state (for reconcile); the
//! per-object functions give the elements that exist because of one network
//! or one container, so a request's change is the difference between that
//! object's elements before and after — work proportional to the object, not
//! to everything else berth manages. Every rule holds for both families:
//! each address-bearing element is made once per family the objects have.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::ipam::{from_u128, to_u128};
use crate::model::{Container, Network, Policy, PolicyAction};

use super::element::{protos_of, Element, PortRange};

/// Elements that exist because a network with a bridge on this host
/// exists (bridge and overlay networks; `crate::driver` adds a driver's own).
pub fn bridge_elements(net: &Network) -> BTreeSet<Element> {
    let b = net.bridge().to_string();
    let mut s = BTreeSet::from([Element::Bridge(b.clone()), Element::BridgePair(b.clone())]);
    for c in &net.ipam {
        s.insert(Element::Subnet { start: c.subnet.network(), end: c.subnet.broadcast(), bridge: b.clone() });
        // User-defined networks have a resolver on their gateways (the
        // default network has no names, as in Docker).
        if !net.predefined {
            s.insert(Element::ResolverAddr(c.gateway));
            s.insert(Element::Resolver { addr: c.gateway, bridge: b.clone() });
        }
    }
    if net.internal {
        s.insert(Element::InternalBridge(b.clone()));
    }
    if !net.options.icc {
        s.insert(Element::IccOff(b.clone()));
    }
    if net.options.masquerade && !net.internal {
        s.insert(Element::MasqBridge(b));
    }
    s
}

/// Addresses of a container's live endpoints, by network id, in
/// attachment order.
fn addrs_by_network(c: &Container) -> Vec<(&str, IpAddr)> {
    c.attachments
        .iter()
        .filter_map(|a| a.endpoint.as_ref().map(|e| (a.network_id.as_str(), e)))
        .flat_map(|(n, e)| e.ips().map(move |ip| (n, ip)))
        .collect()
}

/// Link elements for `from` linking to `to`: on every network they share,
/// in each family they both have there, `from` may open connections to
/// each of `to`'s exposed ports.
fn link_elements(from: &Container, to: &Container, out: &mut BTreeSet<Element>) {
    let to_addrs = addrs_by_network(to);
    let ports = to.exposed_ports();
    for (net, src) in addrs_by_network(from) {
        for (_, dst) in to_addrs.iter().filter(|(n, d)| *n == net && d.is_ipv6() == src.is_ipv6()) {
            for p in &ports {
                out.insert(Element::Link { src, dst: *dst, proto: p.proto, port: p.port });
            }
        }
    }
}

/// Cuts `[lo, hi]` ranges (protocols or ports: `hi` is far below the
/// type's limit) at every boundary any of them has: the pieces are
/// disjoint and each lies wholly inside or outside every range.
fn segments(ranges: &[(u128, u128)], lo: u128, hi: u128) -> Vec<(u128, u128)> {
    let mut cuts: Vec<u128> = vec![lo, hi + 1];
    for (a, b) in ranges {
        cuts.push(*a);
        cuts.push(b + 1);
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).map(|w| (w[0], w[1] - 1)).collect()
}

/// Sorted, coalesced union of intervals.
fn union(mut v: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    v.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// One policy as a box: source range × protocol range × port range.
struct PolicyBox {
    src: (u128, u128),
    protos: (u128, u128),
    ports: (u128, u128),
}

/// The policies of one container as elements whose boxes (source range ×
/// protocol range × port range) never overlap: the kernel refuses an
/// interval element overlapping another, so overlapping policies (a /24
/// and a /32 inside it, a whole-container and a one-port policy) are cut
/// into disjoint pieces with the union of their sources. A policy applies
/// to the container's addresses of its own family.
fn policy_elements(c: &Container, policies: &[&Policy], out: &mut BTreeSet<Element>) {
    let dsts: Vec<IpAddr> = addrs_by_network(c).into_iter().map(|(_, ip)| ip).collect();
    for v6 in [false, true] {
        let like = if v6 { IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED) };
        let family_dsts: Vec<IpAddr> = dsts.iter().copied().filter(|d| d.is_ipv6() == v6).collect();
        if family_dsts.is_empty() {
            continue;
        }
        for action in [PolicyAction::Deny, PolicyAction::Allow] {
            let ps: Vec<PolicyBox> = policies
                .iter()
                .filter(|p| p.action == action && p.from.addr().is_ipv6() == v6)
                .map(|p| {
                    let (p0, p1) = protos_of(p.to.proto);
                    let (a, b) = p.to.ports.unwrap_or((0, 65535));
                    PolicyBox {
                        src: (to_u128(p.from.network()), to_u128(p.from.broadcast())),
                        protos: (p0 as u128, p1 as u128),
                        ports: (a as u128, b as u128),
                    }
                })
                .collect();
            if ps.is_empty() {
                continue;
            }
            let proto_segs = segments(&ps.iter().map(|p| p.protos).collect::<Vec<_>>(), 0, 255);
            let port_segs = segments(&ps.iter().map(|p| p.ports).collect::<Vec<_>>(), 0, 65535);
            for &(q0, q1) in &proto_segs {
                for &(r0, r1) in &port_segs {
                    let covering: Vec<(u128, u128)> = ps
                        .iter()
                        .filter(|p| p.protos.0 <= q0 && q1 <= p.protos.1 && p.ports.0 <= r0 && r1 <= p.ports.1)
                        .map(|p| p.src)
                        .collect();
                    if covering.is_empty() {
                        continue;
                    }
                    let (protos, ports) = ((q0 as u8, q1 as u8), PortRange(r0 as u16, r1 as u16));
                    for &dst in &family_dsts {
                        for (a, b) in union(covering.clone()) {
                            let src = (from_u128(a, like), from_u128(b, like));
                            out.insert(match action {
                                PolicyAction::Deny => Element::Deny { src, dst, protos, ports },
                                PolicyAction::Allow => Element::Allow { src, dst, protos, ports },
                            });
                        }
                        if action == PolicyAction::Allow {
                            out.insert(Element::Guarded { dst, protos, ports });
                        }
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
    for v6 in [false, true] {
        let Some(addr) = c.publish_target(v6) else { continue };
        for m in &c.ports {
            match m.host_ip {
                None => {
                    out.insert(Element::PortAny { proto: m.container.proto, host_port: m.host_port, addr, port: m.container.port });
                }
                Some(host_ip) if host_ip.is_ipv6() == v6 => {
                    out.insert(Element::PortAddr { host_ip, proto: m.container.proto, host_port: m.host_port, addr, port: m.container.port });
                }
                Some(_) => {}
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
    let mut out: BTreeSet<Element> = networks.flat_map(crate::driver::network_elements).collect();
    for c in live {
        out.extend(container_elements(c, live, policies));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use proptest::prelude::*;

    /// The box of a policy element: (set, dst, src range, proto range, port range).
    type Boxed = (&'static str, IpAddr, (u128, u128), (u8, u8), (u16, u16));

    fn boxed(e: &Element) -> Option<Boxed> {
        match e {
            Element::Deny { src, dst, protos, ports } | Element::Allow { src, dst, protos, ports } => {
                Some((e.set(), *dst, (to_u128(src.0), to_u128(src.1)), *protos, (ports.0, ports.1)))
            }
            _ => None,
        }
    }

    fn disjoint(a: &Element, b: &Element) -> bool {
        match (boxed(a), boxed(b)) {
            (Some(x), Some(y)) if x.0 == y.0 && x.1 == y.1 => {
                x.2 .1 < y.2 .0 || y.2 .1 < x.2 .0 || x.3 .1 < y.3 .0 || y.3 .1 < x.3 .0 || x.4 .1 < y.4 .0 || y.4 .1 < x.4 .0
            }
            _ => true,
        }
    }

    /// A running container `c` with one endpoint holding `addrs`.
    fn ctr(addrs: &[&str]) -> Container {
        let mut c = Container::new("i", "c", ContainerKind::Run { cmd: vec!["x".into()] }, 0);
        c.state.status = RunState::Running;
        c.attachments = vec![Attachment {
            network_id: "n".into(),
            static_ips: vec![],
            aliases: vec![],
            mac: None,
            ifname: None,
            endpoint: Some(Endpoint {
                id: "e".into(),
                addresses: addrs.iter().map(|a| EndpointAddress { addr: a.parse().unwrap(), gateway: None }).collect(),
                mac: String::new(),
                host_ifname: String::new(),
                ifname: "eth0".into(),
                state: EndpointState::Up,
            }),
        }];
        c
    }

    #[test]
    fn dual_stack_ports_go_to_each_family() {
        let mut c = ctr(&["172.17.0.2/16", "fd00::2/64"]);
        c.ports = vec![
            PortMapping { host_ip: None, host_port: 8080, container: PortProto { port: 80, proto: Proto::Tcp } },
            PortMapping { host_ip: Some("::1".parse().unwrap()), host_port: 8081, container: PortProto { port: 80, proto: Proto::Tcp } },
        ];
        let e = container_elements(&c, &[], &[]);
        let sets: Vec<(&str, String)> = e.iter().map(|e| (e.set(), e.text())).collect();
        assert_eq!(
            sets,
            vec![
                ("ports_any4", "tcp . 8080 : 172.17.0.2 . 80".to_string()),
                ("ports_any6", "tcp . 8080 : fd00::2 . 80".to_string()),
                ("ports_addr6", "::1 . tcp . 8081 : fd00::2 . 80".to_string()),
            ]
        );
    }

    #[test]
    fn policies_apply_to_their_own_family() {
        let c = ctr(&["172.17.0.2/16", "fd00::2/64"]);
        let p = |from: &str| Policy {
            id: "p".into(),
            action: PolicyAction::Deny,
            from: from.parse().unwrap(),
            to: PolicyTarget { container: "c".into(), ports: Some((80, 80)), proto: Some(Proto::Tcp) },
        };
        let e = container_elements(&c, &[], &[p("2001:db8::/32"), p("10.0.0.0/8")]);
        let texts: Vec<String> = e.iter().map(|e| format!("{} {}", e.set(), e.text())).collect();
        assert_eq!(texts, vec!["deny4 10.0.0.0-10.255.255.255 . 172.17.0.2 . tcp . 80", "deny6 2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff . fd00::2 . tcp . 80"]);
    }

    #[test]
    fn segments_cover_the_whole_range() {
        assert_eq!(segments(&[(10, 20)], 0, 65535), vec![(0, 9), (10, 20), (21, 65535)]);
        assert_eq!(segments(&[(0, 255)], 0, 255), vec![(0, 255)]);
    }

    proptest! {
        /// Any set of policies on one container yields pairwise disjoint
        /// elements, and a packet matches an element exactly when it
        /// matches one of the policies; in either family.
        #[test]
        fn policies_become_disjoint_elements(
            v6 in any::<bool>(),
            ps in proptest::collection::vec((any::<bool>(), 0u32..64, 24u8..=32, 0u8..3, proptest::option::of((1u16..100, 0u16..5))), 1..6),
            probe in (0u32..64, 0u8..3, 1u16..110),
        ) {
            // The same shapes in both families: IPv6 prefixes are the IPv4 ones + 96.
            let base: u128 = if v6 { 0xfd00_0000_0000_0000_0000_0000_0a00_0000 } else { 0x0a00_0000 };
            let like = if v6 { IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED) };
            let shift = if v6 { 96 } else { 0 };
            let policies: Vec<Policy> = ps.iter().enumerate().map(|(i, (allow, host, prefix, proto, ports))| Policy {
                id: i.to_string(),
                action: if *allow { PolicyAction::Allow } else { PolicyAction::Deny },
                from: ipnet::IpNet::new(from_u128(base + *host as u128, like), prefix + shift).unwrap().trunc(),
                to: PolicyTarget { container: "c".into(), ports: ports.map(|(a, n)| (a, a + n)), proto: [None, Some(Proto::Tcp), Some(Proto::Udp)][*proto as usize] },
            }).collect();
            let refs: Vec<&Policy> = policies.iter().collect();
            let c = ctr(&["172.17.0.2/16", "fd00::2/64"]);
            let mut out = BTreeSet::new();
            policy_elements(&c, &refs, &mut out);
            let v: Vec<&Element> = out.iter().collect();
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    prop_assert!(disjoint(v[i], v[j]), "{} overlaps {}", v[i].text(), v[j].text());
                }
            }
            prop_assert!(v.iter().all(|e| e.family_v6() == Some(v6)), "elements of the policies' family only");
            let (h, pr, port) = probe;
            let src = base + h as u128;
            let proto = [1u8, 6, 17][pr as usize];
            for action in [PolicyAction::Deny, PolicyAction::Allow] {
                let by_policy = policies.iter().any(|p| p.action == action
                    && (to_u128(p.from.network())..=to_u128(p.from.broadcast())).contains(&src)
                    && { let (a, b) = protos_of(p.to.proto); (a..=b).contains(&proto) }
                    && { let (a, b) = p.to.ports.unwrap_or((0, 65535)); (a..=b).contains(&port) });
                let by_element = out.iter().any(|e| match (e, action) {
                    (Element::Deny { src: s, protos, ports, .. }, PolicyAction::Deny) | (Element::Allow { src: s, protos, ports, .. }, PolicyAction::Allow) => {
                        (to_u128(s.0)..=to_u128(s.1)).contains(&src) && (protos.0..=protos.1).contains(&proto) && (ports.0..=ports.1).contains(&port)
                    }
                    _ => false,
                });
                prop_assert_eq!(by_policy, by_element);
            }
        }
    }
}
