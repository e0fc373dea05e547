//! berth's nftables table, `inet berth`.
//!
//! The table's chains and rules are fixed (see [`render`]): they never change
//! when containers, ports, links or policies come and go. Everything that
//! grows lives in sets and maps as [`Element`]s, so attaching a container or
//! publishing 10,000 ports is adding elements — constant work per element,
//! one hash lookup per packet. [`desired`] computes which elements the model
//! wants; the daemon applies differences as one netlink batch per request.

mod desired;
mod element;
mod render;

pub use desired::{all_elements, bridge_elements, container_elements};
pub use element::{Element, PortRange};
pub use render::{render_reset_script, render_table, TABLE, TABLE_FAMILY};
