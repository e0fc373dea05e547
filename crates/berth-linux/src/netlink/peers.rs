//! An overlay's entries towards the other hosts, on its VXLAN device
//! (flannel's layout, see `berth_core::plan::TunnelPeers`): per remote
//! host one forwarding entry (its device's MAC → its underlay address),
//! one neighbour entry (its underlay address → that MAC) and one route
//! per address block it holds (block via its underlay address, onlink).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use berth_core::plan::{TunnelPeer, TunnelPeers};
use ipnet::IpNet;

use super::link::{fmt_mac, mac_bytes};
use super::neigh::{delete_fdb, delete_neighbour, list_fdb, list_neighbours, replace_fdb, replace_neighbour, FdbEntry};
use super::route::{delete_tunnel_route, list_tunnel_routes, replace_tunnel_route, TunnelRoute};
use super::RtSocket;
use crate::error::{LinuxError, Result};

/// What one device should hold, keyed as the kernel keys it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Entries {
    /// Forwarding entries: MAC → remote endpoints.
    fdb: BTreeMap<[u8; 6], BTreeSet<IpAddr>>,
    /// Neighbour entries: address → MAC (None: not a permanent entry
    /// with a MAC, so not one berth wrote: unresolved, or learnt).
    neigh: BTreeMap<IpAddr, Option<[u8; 6]>>,
    /// berth's routes: block → (gateway, source hint).
    routes: BTreeMap<IpNet, (IpAddr, Option<IpAddr>)>,
}

/// The entries `peers` asks for. The source hint is kept only for blocks
/// of its family (the kernel takes no other), so that it compares equal
/// with what the kernel reports back.
fn wanted(peers: &TunnelPeers) -> Result<Entries> {
    let mut e = Entries::default();
    for p in &peers.peers {
        let mac = mac_bytes(&p.mac)?;
        // The next hop of a block is the remote endpoint's underlay
        // address: only a block of its family can be routed via it.
        if let Some(b) = p.blocks.iter().find(|b| b.addr().is_ipv4() != p.vtep.is_ipv4()) {
            return Err(LinuxError::MixedFamilies { block: *b, vtep: p.vtep });
        }
        e.fdb.entry(mac).or_default().insert(p.vtep);
        e.neigh.insert(p.vtep, Some(mac));
        for b in &p.blocks {
            let src = peers.src.filter(|s| s.is_ipv4() == b.addr().is_ipv4());
            e.routes.insert(b.trunc(), (p.vtep, src));
        }
    }
    Ok(e)
}

/// What the device holds now: three dumps, each of this device's entries
/// only (see `RtSocket::set_strict`).
fn present(sock: &mut RtSocket, ifindex: u32) -> Result<Entries> {
    let mut e = Entries::default();
    for f in list_fdb(sock, ifindex)? {
        e.fdb.entry(f.mac).or_default().insert(f.dst);
    }
    for n in list_neighbours(sock, ifindex)? {
        e.neigh.insert(n.ip, n.mac.filter(|_| n.permanent));
    }
    for r in list_tunnel_routes(sock, ifindex)? {
        e.routes.insert(r.dst, (r.gateway, r.src));
    }
    Ok(e)
}

/// A deletion that finds nothing to delete is what was wanted.
fn gone_is_fine(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if matches!(e.errno(), Some(libc::ENOENT) | Some(libc::ESRCH)) => Ok(()),
        r => r,
    }
}

/// Makes the device's entries exactly `peers`: reads what it holds,
/// removes what is not wanted (routes first, then neighbours, then
/// forwarding entries, so no route ever points at a next hop that is
/// gone), then adds or replaces what is missing or different in the
/// opposite order (a route is only added once its next hop resolves).
/// Entries that are already right are not touched: a second call with
/// the same input sends no request at all, and a host joining or leaving
/// costs requests for that host's entries only.
pub fn sync_peers(sock: &mut RtSocket, ifindex: u32, peers: &TunnelPeers) -> Result<()> {
    let want = wanted(peers)?;
    let have = present(sock, ifindex)?;
    for dst in have.routes.keys().filter(|d| !want.routes.contains_key(d)) {
        gone_is_fine(delete_tunnel_route(sock, ifindex, *dst))?;
    }
    for ip in have.neigh.keys().filter(|ip| !want.neigh.contains_key(ip)) {
        gone_is_fine(delete_neighbour(sock, ifindex, *ip))?;
    }
    for (mac, dsts) in have.fdb.iter().filter(|(mac, _)| !want.fdb.contains_key(*mac)) {
        for dst in dsts {
            gone_is_fine(delete_fdb(sock, ifindex, &FdbEntry { mac: *mac, dst: *dst }))?;
        }
    }
    for (mac, dsts) in &want.fdb {
        let had = have.fdb.get(mac);
        if had == Some(dsts) {
            continue;
        }
        for dst in dsts {
            replace_fdb(sock, ifindex, &FdbEntry { mac: *mac, dst: *dst })?;
        }
        // A replace rewrites the entry's first destination; any others
        // it had go one by one.
        for dst in had.into_iter().flatten().filter(|d| !dsts.contains(d)) {
            gone_is_fine(delete_fdb(sock, ifindex, &FdbEntry { mac: *mac, dst: *dst }))?;
        }
    }
    for (ip, mac) in &want.neigh {
        if let (Some(mac), true) = (mac, have.neigh.get(ip) != Some(mac)) {
            replace_neighbour(sock, ifindex, *ip, mac)?;
        }
    }
    for (dst, (gateway, src)) in &want.routes {
        if have.routes.get(dst) != Some(&(*gateway, *src)) {
            replace_tunnel_route(sock, ifindex, &TunnelRoute { dst: *dst, gateway: *gateway, src: *src })?;
        }
    }
    Ok(())
}

/// The peer of remote endpoint `vtep`, added empty if not there yet.
fn slot(peers: &mut BTreeMap<IpAddr, TunnelPeer>, vtep: IpAddr) -> &mut TunnelPeer {
    peers.entry(vtep).or_insert_with(|| TunnelPeer { vtep, mac: String::new(), blocks: Vec::new() })
}

/// What the device holds, in the form [`sync_peers`] takes: one peer per
/// remote endpoint that has a neighbour entry, a forwarding entry or a
/// route, sorted by address, with its blocks sorted. The source hint is
/// that of the routes (None when there are none).
pub fn read_peers(sock: &mut RtSocket, ifindex: u32, tunnel: &str) -> Result<TunnelPeers> {
    let have = present(sock, ifindex)?;
    let mut peers: BTreeMap<IpAddr, TunnelPeer> = BTreeMap::new();
    let mut src = None;
    for (dst, (gateway, s)) in &have.routes {
        src = src.or(*s);
        slot(&mut peers, *gateway).blocks.push(*dst);
    }
    for (mac, dsts) in &have.fdb {
        for d in dsts {
            let p = slot(&mut peers, *d);
            if p.mac.is_empty() {
                p.mac = fmt_mac(mac);
            }
        }
    }
    // The neighbour entry's MAC is the one traffic uses: it wins.
    for (ip, mac) in &have.neigh {
        if let Some(mac) = mac {
            slot(&mut peers, *ip).mac = fmt_mac(mac);
        }
    }
    let peers = peers
        .into_values()
        .map(|mut p| {
            p.blocks.sort();
            p
        })
        .collect();
    Ok(TunnelPeers { tunnel: tunnel.to_string(), src, peers })
}
