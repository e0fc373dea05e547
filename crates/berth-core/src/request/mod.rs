//! API request bodies and their validation into model values.
//!
//! The JSON shapes follow Docker's Engine API where one exists (`Name`,
//! `Driver`, `EnableIPv6`, `IPAM.Config[].Subnet/Gateway/IPRange`,
//! `Internal`, `Options`). Unknown fields are refused rather than ignored,
//! so a typo is an error and not a silently different network.

mod container;
mod network;
mod policy;

pub use container::{check_static_ips, parse_env, parse_link, parse_mac, AttachNetwork, AttachRequest, NetworkConnect, RunRequest};
pub use network::{
    check_mtu, is_reserved_network_name, pair_ipam_flags, parse_options, validate_ifname, validate_network_create, IpamConfigRequest,
    IpamRequest, ClusterContext, NetworkContext, NetworkCreate, ParsedOptions,
};
pub use policy::{validate_policy, PolicyRequest};
