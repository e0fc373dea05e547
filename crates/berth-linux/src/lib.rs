//! berth-linux: the imperative shell. Every syscall berth makes lives here:
//! rtnetlink (links, addresses, routes), nfnetlink (nftables set elements),
//! bpf (socket translation of published ports),
//! the `nft` program for whole-table changes, network namespaces, sysctls,
//! and the container shim.
//!
//! Functions take the pure plans from berth-core and make them real; they
//! hold no state of their own.

pub mod announce;
pub mod bpf;
pub mod conntrack;
pub mod error;
pub mod kernel;
pub mod netlink;
pub mod netns;
pub mod nfnl;
pub mod nft;
pub mod nsexec;
pub mod podman_sandbox;
pub mod ports;
pub mod proc;
pub mod sandbox;
pub mod shim;
pub mod sysctl;

pub use error::{LinuxError, Result};

/// Processes this program has started (`nft` runs and container shims).
/// `berth bench` reads it through `/info` to show that publishing ports
/// starts none.
pub static PROCESSES_STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn count_process() {
    PROCESSES_STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}
