//! rtnetlink over a plain blocking socket.
//!
//! Message types come from `netlink-packet-route` (pinned); the socket is
//! `netlink-sys`. We do not use `rtnetlink`'s async handle: every call here is
//! one short request/ack exchange, made either on the daemon's host socket or
//! on a socket opened inside a container's namespace by a short-lived thread
//! (see [`crate::netns`]). A netlink socket stays bound to the namespace it
//! was created in, so such a socket can be used from any thread afterwards.

mod addr;
mod link;
mod neigh;
mod peers;
mod route;
mod socket;
mod vxlan;

pub use addr::{add_address, delete_address, list_addresses, watch_addresses, HostAddress};
pub use link::{
    add_bridge, add_macvlan_into_netns, add_veth_into_netns, delete_link, link_by_index, link_index, list_links, set_link_attrs, set_link_down_by_name,
    set_link_up, set_no_ipv6_ll, set_port_up, set_up_without_ipv6_ll, LinkInfo,
};
pub use neigh::{delete_fdb, delete_neighbour, list_fdb, list_neighbours, replace_fdb, replace_neighbour, FdbEntry, Neighbour};
pub use peers::{read_peers, sync_peers};
pub use route::{add_default_route, delete_tunnel_route, list_routes, list_tunnel_routes, replace_tunnel_route, HostRoute, TunnelRoute, BERTH_PROTO};
pub use socket::RtSocket;
pub use vxlan::{add_vxlan, vxlan_link, VxlanConfig, VxlanSpec};
