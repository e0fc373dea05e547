//! Requests, end to end: validate → allocate → plan (pure, under the state
//! lock) → record intent (durable) → apply (kernel) → record completion; on
//! failure, undo what was applied and forget the intent.

pub mod container;
pub mod default_network;
pub mod endpoint;
pub mod host;
pub mod network;
pub mod network_dns;
pub mod policy;
pub mod ports;
pub mod reconcile;
pub mod rename;
pub mod recover;
pub mod supervise;
