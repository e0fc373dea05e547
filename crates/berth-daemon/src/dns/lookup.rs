//! What a name means to the container asking: pure lookups over the state.
//!
//! A query arrives on one network's resolver from an address on that network.
//! The asker sees the containers that share a user-defined network with it
//! (the default network has no names, as in Docker): their names, their
//! aliases on shared networks, `NAME.NETWORK`, the aliases of its own links,
//! and reverse (PTR) names of their addresses. A name that belongs to a
//! container the asker shares no network with is NXDOMAIN — never forwarded.

use std::net::IpAddr;

use berth_core::dns::{parse_reverse, split_network_suffix};
use berth_core::model::Container;

use crate::state::State;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A name of ours: its addresses of both families (the receiving
    /// network's first); an A query answers with the IPv4 ones, AAAA with
    /// the IPv6 ones (none of them: NODATA, never forwarded).
    Addresses(Vec<IpAddr>),
    /// A reverse name of ours.
    Names(Vec<String>),
    /// Ours, but not for this asker (or an address of ours nobody holds).
    NxDomain,
    /// Not ours: forward upstream.
    Foreign,
}

/// Networks whose names the asker sees: its user-defined networks with a
/// live endpoint, or just the receiving network when the asker is unknown.
fn visible_networks(st: &State, net_id: &str, asker: Option<&Container>) -> Vec<String> {
    match asker {
        Some(a) => a
            .endpoints()
            .map(|(att, _)| att.network_id.clone())
            .filter(|n| st.networks.get(n).is_some_and(|n| !n.predefined))
            .collect(),
        None => vec![net_id.to_string()],
    }
}

/// A container's addresses on one network.
fn addrs_on(c: &Container, net: &str) -> Vec<IpAddr> {
    c.attachments.iter().find(|a| a.network_id == net).and_then(|a| a.endpoint.as_ref()).map(|e| e.ips().collect()).unwrap_or_default()
}

fn push(out: &mut Vec<IpAddr>, ips: Vec<IpAddr>) {
    for ip in ips {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
}

/// `name` is normalized (lowercase, no trailing dot).
pub fn lookup(st: &State, net_id: &str, asker_ip: IpAddr, name: &str) -> Outcome {
    // podman's containers ask for NAME.dns.podman first (their search domain).
    let name = berth_core::dns::strip_podman_domain(name);
    let asker = st.containers.by_ip(net_id, asker_ip);
    let mut nets = visible_networks(st, net_id, asker);
    // The receiving network's answers first.
    nets.sort_by_key(|n| n != net_id);

    if let Some(ip) = parse_reverse(name) {
        for n in &nets {
            if let Some(c) = st.holder(n, ip) {
                let net_name = &st.networks[n].name;
                return Outcome::Names(vec![format!("{}.{net_name}", c.name)]);
            }
        }
        let ours = st.networks.values().any(|n| n.ipam.iter().any(|c| c.subnet.contains(&ip)));
        return if ours { Outcome::NxDomain } else { Outcome::Foreign };
    }

    let mut out = Vec::new();
    for n in &nets {
        for c in st.named(name) {
            push(&mut out, addrs_on(c, n));
        }
        for c in st.aliased(n, name) {
            push(&mut out, addrs_on(c, n));
        }
    }
    // The asker's links: `--link NAME:ALIAS` resolves ALIAS (and NAME).
    if let Some(a) = asker {
        for l in a.links.iter().filter(|l| l.alias.eq_ignore_ascii_case(name) || l.name.eq_ignore_ascii_case(name)) {
            if let Some(t) = st.link_target(&l.name) {
                for n in &nets {
                    push(&mut out, addrs_on(t, n));
                }
            }
        }
    }
    // CONTAINER.NETWORK
    for (cname, netname) in split_network_suffix(name) {
        if let Some(n) = nets.iter().find(|n| st.networks[*n].name.eq_ignore_ascii_case(netname)) {
            for c in st.named(cname) {
                push(&mut out, addrs_on(c, n));
            }
            for c in st.aliased(n, cname) {
                push(&mut out, addrs_on(c, n));
            }
        }
    }
    if !out.is_empty() {
        return Outcome::Addresses(out);
    }
    // A container of that name elsewhere (or stopped): ours, but not for this asker.
    let known = !st.named(name).is_empty()
        || st.containers.alias_anywhere(name)
        || st.remote.alias_anywhere(name)
        || split_network_suffix(name).iter().any(|(c, n)| st.networks.values().any(|net| net.name.eq_ignore_ascii_case(n)) && !st.named(c).is_empty());
    if known {
        Outcome::NxDomain
    } else {
        Outcome::Foreign
    }
}
