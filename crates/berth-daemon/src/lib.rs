//! berth-daemon: the store, the request flows, the reconciler, the container
//! supervisor and the HTTP API over a Unix socket.

pub mod api;
pub mod cluster;
pub mod daemon;
pub mod dns;
pub mod docker;
pub mod error;
pub mod firewall;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod util;

pub use daemon::Daemon;
pub use error::{DaemonError, Result};
