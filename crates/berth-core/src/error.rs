//! The one error type of berth-core. Every variant's text is what a user sees,
//! so each names the offending value and, where it helps, what would be valid.

use std::net::IpAddr;

use ipnet::IpNet;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    #[error("invalid name {0:?}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,62}}")]
    InvalidName(String),
    #[error("invalid CIDR {0:?}: expected ADDRESS/PREFIX such as 172.20.0.0/16")]
    InvalidCidr(String),
    #[error("invalid IP address {0:?}")]
    InvalidIp(String),
    #[error("subnet {0} is not a network address (did you mean {1}?)")]
    SubnetNotCanonical(IpNet, IpNet),
    #[error("subnet {0} is too small: it must leave room for a gateway and at least one container (/30 or larger for IPv4, /126 or larger for IPv6)")]
    SubnetTooSmall(IpNet),
    #[error("gateway {gateway} is not in subnet {subnet}")]
    GatewayOutsideSubnet { gateway: IpAddr, subnet: IpNet },
    #[error("gateway {0} is the network or broadcast address of its subnet")]
    GatewayReserved(IpAddr),
    #[error("ip-range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet { range: IpNet, subnet: IpNet },
    #[error("subnet {subnet} overlaps with network {network:?} ({other})")]
    SubnetOverlapsNetwork { subnet: IpNet, network: String, other: IpNet },
    #[error("subnet {subnet} overlaps with a host address or route ({other})")]
    SubnetOverlapsHost { subnet: IpNet, other: IpNet },
    #[error("no available subnet in the default address pools: every candidate overlaps a berth network, a host address or a host route")]
    PoolsExhausted,
    #[error("invalid address pool {0:?}: expected base=CIDR,size=N with N at least the base's prefix length")]
    InvalidPool(String),
    #[error("network with name {0} already exists")]
    DuplicateNetwork(String),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("network {0} is a predefined network and cannot be removed")]
    PredefinedNetwork(String),
    #[error("network {network} has active endpoints ({containers})")]
    NetworkInUse { network: String, containers: String },
    #[error("network mode {0:?} is not supported: berth gives every container its own network namespace")]
    UnsupportedNetworkMode(String),
    #[error("container name {0:?} is already in use")]
    DuplicateContainer(String),
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected { container: String, network: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
    #[error("address {ip} is not in subnet {subnet} of network {network}")]
    IpOutsideSubnet { ip: IpAddr, subnet: IpNet, network: String },
    #[error("address {ip} is already in use on network {network}")]
    IpInUse { ip: IpAddr, network: String },
    #[error("address {ip} is the gateway of network {network}")]
    IpIsGateway { ip: IpAddr, network: String },
    #[error("address {ip} is the network or broadcast address of network {network}")]
    IpReserved { ip: IpAddr, network: String },
    #[error("user specified IP address is supported only when connecting to networks with user configured subnets")]
    StaticIpNeedsSubnet,
    #[error("no available IPv4 addresses on network {0}: the address pool is exhausted")]
    AddressPoolExhausted(String),
    #[error("invalid network option {key:?}: {reason}")]
    InvalidOption { key: String, reason: String },
    #[error("unknown driver {0:?}: berth supports \"bridge\"")]
    UnknownDriver(String),
    #[error("invalid MTU {0}: must be between 68 and 65535")]
    InvalidMtu(u32),
    #[error("invalid port specification {spec:?}: {reason}")]
    InvalidPort { spec: String, reason: String },
    #[error("invalid hostname {0:?}: use letters, digits, '-' and '.', at most 63 characters per label")]
    InvalidHostname(String),
    #[error("no command given: add the command after `--`, e.g. berth run -- sleep infinity")]
    EmptyCommand,
    #[error("invalid daemon configuration: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    Conflict(String),
}

impl CoreError {
    /// The HTTP status a daemon answers with for this error: 404 for things
    /// that do not exist, 409 for conflicts with existing state, 400 otherwise.
    pub fn http_status(&self) -> u16 {
        use CoreError::*;
        match self {
            NoSuchNetwork(_) | NoSuchContainer(_) => 404,
            DuplicateNetwork(_) | DuplicateContainer(_) | NetworkInUse { .. } | IpInUse { .. }
            | AlreadyConnected { .. } | SubnetOverlapsNetwork { .. } | Conflict(_)
            | PredefinedNetwork(_) => 409,
            _ => 400,
        }
    }
}
