//! One module per group of commands.

pub mod container;
pub mod daemon;
pub mod network;
pub mod node;
pub mod policy;
pub mod system;
