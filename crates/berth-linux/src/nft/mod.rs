//! nftables: whole-table scripts through the `nft` program (rare structural
//! changes and reconcile), set elements through nfnetlink batches in-process
//! (every per-request change: no process is started).

pub mod cli;
pub mod elements;
mod wire;

pub use elements::{apply_elements, ElementOp};
