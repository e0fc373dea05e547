//! Containers: processes berth starts (`run`) or namespaces it is given
//! (`attach`), each with its network attachments.
//!
//! State fields double as berth's intent log: a request first records the
//! state it is moving to (`Starting`, `Stopping`, `Removing`, an endpoint
//! `Pending` or `Removing`) durably, then changes the kernel, then records
//! completion. After a crash the daemon finds those in-between states and
//! finishes or undoes them (see berth-daemon's `recover`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use serde::{Deserialize, Serialize};

use super::port::{PortMapping, PortProto};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContainerKind {
    /// A process berth started in fresh network, UTS and mount namespaces.
    Run { cmd: Vec<String> },
    /// A network namespace created by someone else (a runtime), networked by
    /// berth; berth does not own its processes.
    Attached { netns: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Created,
    /// Intent: the network is being set up and the process started.
    Starting,
    Running,
    /// Intent: the process is being stopped and the network taken down.
    Stopping,
    Exited,
    /// Intent: everything of this container is being removed.
    Removing,
}

impl RunState {
    /// Docker's `State.Status` word.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Starting => "restarting",
            RunState::Running => "running",
            RunState::Stopping => "running",
            RunState::Exited => "exited",
            RunState::Removing => "removing",
        }
    }
    /// Whether the container holds network resources (addresses, links, nft elements).
    pub fn is_live(&self) -> bool {
        matches!(self, RunState::Starting | RunState::Running | RunState::Stopping)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    pub status: RunState,
    /// Pid of the container's command (Docker's `State.Pid`).
    pub pid: Option<u32>,
    /// Pid of the `berth shim` that supervises the command and records its
    /// exit status; it outlives daemon restarts.
    pub shim_pid: Option<u32>,
    /// The shim's start time (field 22 of /proc/PID/stat) so a recycled pid
    /// is never mistaken for the shim after a restart.
    pub shim_start: Option<u64>,
    pub exit_code: Option<i32>,
    pub started_at: u64,
    pub finished_at: u64,
}

impl ContainerState {
    pub fn created() -> Self {
        ContainerState {
            status: RunState::Created,
            pid: None,
            shim_pid: None,
            shim_start: None,
            exit_code: None,
            started_at: 0,
            finished_at: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointState {
    /// Intent: being plumbed.
    Pending,
    Up,
    /// Intent: being taken down.
    Removing,
}

/// One address of an endpoint, with its prefix, and the gateway of its
/// family (None on internal networks: no default route out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointAddress {
    pub addr: IpNet,
    pub gateway: Option<IpAddr>,
}

impl EndpointAddress {
    pub fn ip(&self) -> IpAddr {
        self.addr.addr()
    }
}

/// A live connection of a container to a network: its addresses (one per
/// family of the network) and a veth pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 64 hex characters; the host-side veth name is derived from it.
    pub id: String,
    /// IPv4 first, then IPv6.
    pub addresses: Vec<EndpointAddress>,
    pub mac: String,
    /// Host end of the veth pair, e.g. `bthv1a2b3c4d5e6`.
    pub host_ifname: String,
    /// Name inside the container, e.g. `eth0`.
    pub ifname: String,
    pub state: EndpointState,
}

impl Endpoint {
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addresses.iter().map(|a| a.ip())
    }

    /// The address of one family.
    pub fn address(&self, v6: bool) -> Option<&EndpointAddress> {
        self.addresses.iter().find(|a| a.ip().is_ipv6() == v6)
    }

    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ips().find_map(|ip| match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
    }

    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ips().find_map(|ip| match ip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        })
    }
}

/// A container's membership of one network: what was asked for (static
/// addresses, aliases) and, while the container runs, the live endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network_id: String,
    /// `--ip` and `--ip6`: at most one per family.
    pub static_ips: Vec<IpAddr>,
    pub aliases: Vec<String>,
    /// A MAC the caller asked for (a runtime that keeps one, e.g. podman).
    #[serde(default)]
    pub mac: Option<String>,
    /// An interface name the caller asked for (`eth0` is chosen otherwise).
    #[serde(default)]
    pub ifname: Option<String>,
    pub endpoint: Option<Endpoint>,
}

impl Attachment {
    /// The static address asked for in one family.
    pub fn static_ip(&self, v6: bool) -> Option<IpAddr> {
        self.static_ips.iter().copied().find(|ip| ip.is_ipv6() == v6)
    }
}

/// `--link NAME[:ALIAS]`: resolved by name, so it follows a re-created container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    pub alias: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub kind: ContainerKind,
    pub state: ContainerState,
    pub created: u64,
    pub attachments: Vec<Attachment>,
    /// `--expose` ports.
    pub expose: Vec<PortProto>,
    /// `-p` as given; host ports are allocated from these at every start.
    #[serde(default)]
    pub publish: Vec<crate::ports::PublishSpec>,
    /// `-P`: publish every exposed port on a random host port.
    #[serde(default)]
    pub publish_all: bool,
    /// Published ports as resolved at start (random host ports filled in).
    pub ports: Vec<PortMapping>,
    pub links: Vec<Link>,
    pub link_env: bool,
    pub dns: Vec<IpAddr>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Link variables (`--link-env`) as computed at the last start.
    #[serde(default)]
    pub link_vars: Vec<(String, String)>,
    /// Labels a caller attached (a runtime's own ids, for instance).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The runtime holds the published host ports open itself (podman's
    /// conmon does, to reserve them): berth does not test whether a host
    /// process has them, only whether another berth mapping does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ports_reserved: bool,
    /// The runtime moves and configures the container's ends
    /// (`AttachRequest::handoff`): no routes from berth, nothing for berth
    /// to do inside the namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handoff: bool,
}

impl Container {
    /// A container with no networks, ports, links or settings yet, not started.
    pub fn new(id: &str, name: &str, kind: ContainerKind, created: u64) -> Container {
        Container {
            id: id.to_string(),
            name: name.to_string(),
            hostname: name.to_string(),
            kind,
            state: ContainerState::created(),
            created,
            attachments: vec![],
            expose: vec![],
            publish: vec![],
            publish_all: false,
            ports: vec![],
            links: vec![],
            link_env: false,
            dns: vec![],
            env: vec![],
            link_vars: vec![],
            labels: Default::default(),
            ports_reserved: false,
            handoff: false,
        }
    }

    pub fn is_run(&self) -> bool {
        matches!(self.kind, ContainerKind::Run { .. })
    }

    /// Live endpoints (those with an address).
    pub fn endpoints(&self) -> impl Iterator<Item = (&Attachment, &Endpoint)> {
        self.attachments.iter().filter_map(|a| a.endpoint.as_ref().map(|e| (a, e)))
    }

    /// Back to "exited" after a start that did not complete: no addresses,
    /// no published ports (exit status 128, as for a failed start).
    pub fn mark_start_failed(&mut self) {
        for a in self.attachments.iter_mut() {
            a.endpoint = None;
        }
        self.ports.clear();
        self.state.status = RunState::Exited;
        self.state.exit_code = Some(128);
    }

    /// The address a published port of this container leads to in one
    /// family: the first endpoint with an address of that family that has
    /// a gateway (the network giving the default route of that family),
    /// else the first with such an address.
    pub fn publish_target(&self, v6: bool) -> Option<IpAddr> {
        let addrs: Vec<&EndpointAddress> = self.endpoints().filter_map(|(_, e)| e.address(v6)).collect();
        addrs.iter().find(|a| a.gateway.is_some()).or(addrs.first()).map(|a| a.ip())
    }

    /// Where the published ports can be reached, one entry per host
    /// address and family: a port published on every address is
    /// `0.0.0.0` for IPv4 and `::` for IPv6, each if the container has an
    /// address of that family (what `berth port` and `inspect` show).
    pub fn bindings(&self) -> Vec<(PortProto, IpAddr, u16)> {
        let (v4, v6) = (self.publish_target(false).is_some(), self.publish_target(true).is_some());
        let mut out = Vec::new();
        for m in &self.ports {
            match m.host_ip {
                Some(ip) => out.push((m.container, ip, m.host_port)),
                None => {
                    if v4 {
                        out.push((m.container, IpAddr::V4(Ipv4Addr::UNSPECIFIED), m.host_port));
                    }
                    if v6 {
                        out.push((m.container, IpAddr::V6(Ipv6Addr::UNSPECIFIED), m.host_port));
                    }
                }
            }
        }
        out
    }

    /// Ports a linking container may open: `--expose` and the container side of `-p`.
    pub fn exposed_ports(&self) -> Vec<PortProto> {
        let mut v: Vec<PortProto> = self.expose.clone();
        v.extend(self.ports.iter().map(|m| m.container));
        v.sort();
        v.dedup();
        v
    }
}
