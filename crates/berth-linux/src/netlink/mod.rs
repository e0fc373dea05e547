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
mod route;
mod socket;

pub use addr::{add_address, list_addresses, watch_addresses, HostAddress};
pub use link::{
    add_bridge, add_veth_into_netns, delete_link, link_index, list_links, set_link_down_by_name, set_link_up, set_port_up, set_up_without_ipv6_ll, LinkInfo,
};
pub use route::{add_default_route, list_routes, HostRoute};
pub use socket::RtSocket;
