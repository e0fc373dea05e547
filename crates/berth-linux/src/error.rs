//! The one error type of berth-linux.

use std::io;

pub type Result<T, E = LinuxError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// A kernel request failed; `what` names it like the equivalent command.
    #[error("{what}: {source}")]
    Kernel { what: String, source: io::Error },
    #[error("{0} is not a network namespace")]
    NotNetns(String),
    #[error("{0} is the daemon's own network namespace (the host's); containers need their own")]
    OwnNamespace(String),
    #[error("nft: {0}")]
    Nft(String),
    #[error("malformed netlink reply: {0}")]
    Decode(String),
    /// An overlay's VXLAN device is not there (its network was never set
    /// up on this host, or someone deleted it).
    #[error("tunnel device {0} does not exist on this host (its overlay network is not set up here)")]
    NoTunnel(String),
    /// A macvlan network's parent interface is not on this host.
    #[error("parent interface {0} does not exist on this host")]
    NoParent(String),
    /// The interface an overlay's tunnel should run over is not on this host.
    #[error("underlay interface {0} does not exist on this host")]
    NoUnderlay(String),
    /// A link of the name berth needs exists and is not berth's: berth
    /// never changes or deletes it.
    #[error("{name} already exists and is not berth's (a {kind} link without berth's mark): remove or rename it")]
    NotOurs { name: String, kind: String },
    /// Another VXLAN device already takes this VNI's packets.
    #[error("cannot create tunnel device {name}: another VXLAN device on this host already uses VNI {vni} on UDP port {port} from {local}")]
    VniInUse { name: String, vni: u32, port: u16, local: std::net::IpAddr },
    /// An overlay block routed via a tunnel endpoint of the other family
    /// (an IPv4 overlay over an IPv6 underlay): not supported.
    #[error("cannot route {block} via tunnel endpoint {vtep}: an overlay's blocks and its hosts' underlay addresses must be of one family")]
    MixedFamilies { block: ipnet::IpNet, vtep: std::net::IpAddr },
    #[error("{0:?} is not a MAC address (six hex pairs separated by colons)")]
    BadMac(String),
}

impl LinuxError {
    pub fn kernel(what: impl Into<String>, source: io::Error) -> Self {
        LinuxError::Kernel { what: what.into(), source }
    }

    /// The errno of a failed kernel request, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinuxError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Adds the equivalent command to an io::Error.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| LinuxError::kernel(what(), e))
    }
}
