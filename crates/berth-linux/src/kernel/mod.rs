//! The kernel as berth's request flows see it: three small traits, split
//! by concern, and their Linux implementation ([`LinuxKernel`]) — the only
//! place berth touches the kernel for a request. They live here, not in
//! the daemon, so a stateless binary (a CNI or netavark-mode call) can use
//! them without the store, the API server or the resolver. Tests of the
//! request flows (validation, rollback, recovery) use the recording
//! [`fake::FakeKernel`] and need no root.

pub mod fake;
mod linux;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use berth_core::model::PortMapping;
use berth_core::nft::Element;
use berth_core::plan::{EndpointPlan, NetworkPlan, TunnelPeers};
use ipnet::IpNet;

pub use linux::LinuxKernel;

use crate::error::Result;

/// Where a container's network namespace is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsRef {
    /// A bind mount or /proc path given by a runtime (`berth attach --netns`).
    Path(PathBuf),
    /// The namespace of a running process (berth's own containers).
    Pid(u32),
    /// None yet: the runtime moves the container's end of the pair into
    /// its namespace itself (`AttachRequest::handoff`); berth leaves it in
    /// its own, as `plan::handoff_name`.
    Handoff,
}

impl NsRef {
    pub fn path(&self) -> PathBuf {
        match self {
            NsRef::Path(p) => p.clone(),
            NsRef::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
            NsRef::Handoff => PathBuf::new(),
        }
    }
}

/// A link berth owns: bridges and VXLAN devices marked with the owner
/// alias, and veths whose name berth generated (`bthv…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedLink {
    pub name: String,
    pub kind: OwnedKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedKind {
    Bridge,
    Veth,
    /// An overlay's VXLAN device.
    Tunnel,
}

impl OwnedKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            OwnedKind::Bridge => "bridge",
            OwnedKind::Veth => "veth",
            OwnedKind::Tunnel => "vxlan",
        }
    }
}

/// The interface an overlay's tunnels run over: its name, the address
/// VXLAN packets leave from, and its MTU (an overlay's is 50 less).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub dev: String,
    pub addr: IpAddr,
    pub mtu: u32,
}

/// Links, addresses and routes: networks' devices and endpoints.
pub trait LinkOps: Send + Sync {
    /// Creates the network's devices when berth owns them and they are
    /// missing, then makes their addresses, MTU and state match
    /// (`ip link add ... type bridge; ip addr replace ...; ip link set up`).
    fn ensure_network(&self, plan: &NetworkPlan) -> Result<()>;
    /// Addresses of an existing link (to adopt a user's bridge), None if absent.
    fn link_addresses(&self, name: &str) -> Result<Option<Vec<IpNet>>>;
    /// Whether a link exists and carries berth's owner mark.
    fn link_owned(&self, name: &str) -> Result<Option<bool>>;
    /// Creates the veth pair and configures the container side.
    fn add_endpoint(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<()>;
    /// True when the endpoint is fully in place.
    fn endpoint_ok(&self, ns: &NsRef, plan: &EndpointPlan) -> Result<bool>;
    /// `ip link del NAME`; a missing link is not an error.
    fn delete_link(&self, name: &str) -> Result<()>;
    /// Cuts an endpoint off now (`ip link set NAME down`) and deletes its veth
    /// pair in the background: a deletion waits ~15 ms here for the kernel's
    /// RCU grace period, which a request need not wait for.
    fn remove_endpoint(&self, host_ifname: &str) -> Result<()>;
    /// Waits until background deletions are done.
    fn settle(&self);
    fn owned_links(&self) -> Result<Vec<OwnedLink>>;
    /// Host address blocks and non-default routes, both families (to keep
    /// automatic subnets clear of).
    fn host_nets(&self, exclude_links: &[String]) -> Result<Vec<IpNet>>;
    /// Checks that `path` is a network namespace and not the caller's own.
    fn check_netns(&self, path: &Path) -> Result<()>;
    /// `--cluster-advertise`: the interface holding this address, or the
    /// interface of this name with its first IPv4 address; None if neither.
    fn underlay(&self, addr_or_name: &str) -> Result<Option<Underlay>>;
    /// Makes an overlay's routes, neighbour and forwarding entries towards
    /// other hosts exactly `peers` (adds what is missing, removes the rest
    /// on that tunnel device); a missing tunnel device is an error.
    fn sync_tunnel_peers(&self, peers: &TunnelPeers) -> Result<()>;
    /// What the kernel has on a tunnel device now, as `sync_tunnel_peers`
    /// would have written it (for tests, `berth doctor` and the bench).
    fn tunnel_peers(&self, tunnel: &str) -> Result<TunnelPeers>;
    /// `ip -n NS link del IFNAME`: removes an endpoint that lives only in
    /// the container (a macvlan child); a gone namespace or link is fine.
    fn remove_in_netns(&self, ns: &NsRef, ifname: &str) -> Result<()>;
}

/// The firewall: elements of `inet berth`, its whole table, NAT state and
/// the socket translation that mirrors the port maps.
pub trait FirewallOps: Send + Sync {
    fn apply_elements(&self, del: &BTreeSet<Element>, add: &BTreeSet<Element>) -> Result<()>;
    /// Atomically replaces `inet berth` with the fixed rules and these elements.
    fn reset_table(&self, elements: &BTreeSet<Element>) -> Result<()>;
    fn list_table(&self) -> Result<Option<String>>;
    /// Forgets NAT state of removed mappings so no flow keeps using them.
    fn flush_conntrack(&self, mappings: &[PortMapping]) -> Result<()>;
    /// Forgets flows that reached the host's own addresses on these
    /// (just published) ports before they were published, so that a UDP
    /// client that kept sending meanwhile reaches the container at once.
    fn forget_early_flows(&self, mappings: &[PortMapping]) -> Result<()>;
    /// Whether the host's own TCP connections to published ports are
    /// translated in `connect()` right now (see [`crate::bpf`]).
    fn socket_translation(&self) -> bool {
        false
    }
}

/// Host settings and facts: sysctls, who holds which port.
pub trait HostOps: Send + Sync {
    /// Writes a sysctl; true when it changed.
    fn sysctl(&self, key: &str, value: &str) -> Result<bool>;
    /// Reads a sysctl (None when it does not exist).
    fn read_sysctl(&self, key: &str) -> Option<String>;
    /// Interfaces other than berth's with IPv6 router advertisements
    /// accepted only while not forwarding (`accept_ra=1`, the default).
    fn ra_interfaces(&self) -> Vec<String>;
    /// (address, port) of sockets host processes hold (TCP listeners or bound UDP).
    fn host_listeners(&self, udp: bool) -> Vec<(IpAddr, u16)>;
    /// Whether a host process could bind the port (Err: the kernel's reason).
    fn port_bindable(&self, udp: bool, ip: Option<IpAddr>, port: u16) -> std::io::Result<()>;
    /// The kernel's ephemeral port range (for random host ports).
    fn ephemeral_range(&self) -> (u16, u16);
}

/// All of it: what the daemon holds.
pub trait Kernel: LinkOps + FirewallOps + HostOps + 'static {}

impl<T: LinkOps + FirewallOps + HostOps + 'static> Kernel for T {}
