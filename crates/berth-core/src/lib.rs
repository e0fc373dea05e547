//! berth-core: the pure heart of berth.
//!
//! Everything here is deterministic and free of side effects: the data model
//! (networks, containers, endpoints, port mappings), validation of user input,
//! address and port allocation, the planner that turns the model into the
//! kernel state we want, and the renderer of berth's nftables table.
//! Nothing in this crate opens a socket, a file or a namespace, so all of it is
//! tested without root.

pub mod cluster;
pub mod cni;
pub mod config;
pub mod dns;
pub mod docker;
pub mod driver;
pub mod error;
pub mod files;
pub mod fuzzing;
pub mod ipam;
pub mod model;
pub mod names;
pub mod netavark;
pub mod nft;
pub mod plan;
pub mod ports;
pub mod request;
pub mod subnets;
pub mod view;

pub use error::{CoreError, Result};
