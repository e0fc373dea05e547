//! The one error type of berth-core. Every variant's text is what a user sees,
//! so each names the offending value and, where it helps, what would be valid.
//! How an error maps to an HTTP status is the API layer's business
//! (berth-daemon's `api::error`), not this crate's.

use std::net::IpAddr;

use ipnet::IpNet;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A Docker plugin request berth cannot take (malformed, or asking
    /// for something berth does not do); the text names the call.
    #[error("{0}")]
    DockerRequest(String),
    #[error("invalid name {0:?}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,62}}")]
    InvalidName(String),
    #[error("invalid CIDR {0:?}: expected ADDRESS/PREFIX such as 172.20.0.0/16 or fd00:1::/64")]
    InvalidCidr(String),
    #[error("invalid IP address {0:?}")]
    InvalidIp(String),
    #[error("subnet {0} is not a network address (did you mean {1}?)")]
    SubnetNotCanonical(IpNet, IpNet),
    #[error("subnet {0} is too small: it must leave room for a gateway and at least one container (/30 or larger for IPv4, /126 or larger for IPv6)")]
    SubnetTooSmall(IpNet),
    #[error("subnet {subnet} is a {kind} range: containers cannot be given addresses from it")]
    SubnetUnusable { subnet: IpNet, kind: &'static str },
    #[error("gateway {gateway} is not in subnet {subnet}")]
    GatewayOutsideSubnet { gateway: IpAddr, subnet: IpNet },
    #[error("gateway {0} is the network or broadcast address of its subnet")]
    GatewayReserved(IpAddr),
    #[error("ip-range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet { range: IpNet, subnet: IpNet },
    #[error("{what} {value} is not inside any of the given subnets")]
    NotInAnySubnet { what: &'static str, value: String },
    #[error("{0} needs --subnet: give the subnet it belongs to")]
    NeedsSubnet(&'static str),
    #[error("more than one {0} subnet: a network has at most one IPv4 and one IPv6 subnet")]
    TwoSubnetsOfAFamily(&'static str),
    #[error("subnet {0} is IPv4, but the network is created with --ipv4=false")]
    Ipv4Disabled(IpNet),
    #[error("a network needs IPv4 or IPv6: with --ipv4=false add --ipv6")]
    NoFamily,
    #[error("subnet {subnet} overlaps with network {network:?} ({other})")]
    SubnetOverlapsNetwork { subnet: IpNet, network: String, other: IpNet },
    #[error("subnet {subnet} overlaps with a host address or route ({other})")]
    SubnetOverlapsHost { subnet: IpNet, other: IpNet },
    #[error("no available {0} subnet in the default address pools: every candidate overlaps a berth network, a host address or a host route")]
    PoolsExhausted(&'static str),
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
    #[error("--network none takes no --ip, --ip6, --network-alias or -p")]
    OptionsOnNoneNetwork,
    #[error("network-scoped aliases are supported only for containers in user defined networks")]
    AliasesNeedUserNetwork,
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
    #[error("{flag} takes an {family} address, not {ip}")]
    WrongFamily { flag: &'static str, family: &'static str, ip: IpAddr },
    #[error("network {network} has no {family} subnet, so {flag} cannot be used on it{hint}")]
    NoSubnetOfFamily { network: String, family: &'static str, flag: &'static str, hint: &'static str },
    #[error("address {ip} is already in use on network {network}")]
    IpInUse { ip: IpAddr, network: String },
    #[error("address {ip} is the gateway of network {network}")]
    IpIsGateway { ip: IpAddr, network: String },
    #[error("address {ip} is the network or broadcast address of network {network}")]
    IpReserved { ip: IpAddr, network: String },
    #[error("user specified IP address is supported only when connecting to networks with user configured subnets")]
    StaticIpNeedsSubnet,
    #[error("no available {family} addresses on network {network}: the address pool is exhausted")]
    AddressPoolExhausted { network: String, family: &'static str },
    #[error("invalid network option {key:?}: {reason}")]
    InvalidOption { key: String, reason: String },
    #[error("unknown driver {0:?}: berth supports \"bridge\", \"overlay\" and \"macvlan\"")]
    UnknownDriver(String),
    #[error("overlay networks span hosts and need a cluster store: start the daemon with --cluster-store etcd://HOST:PORT --cluster-advertise ADDRESS")]
    OverlayNeedsCluster,
    #[error("{driver} network {network}: {reason}")]
    DriverRefuses { driver: &'static str, network: String, reason: String },
    #[error("VXLAN id {vni} is already used by network {network}")]
    VniInUse { vni: u32, network: String },
    #[error("no free VXLAN id: every id from 4096 to 16777215 is in use")]
    VnisExhausted,
    #[error("no free address in this host's blocks of network {network} ({blocks}): another block is leased from the cluster store when it can be reached")]
    HostBlocksFull { network: String, blocks: String },
    #[error("address {ip} is not in this host's blocks of network {network} ({blocks}): on a network that spans hosts, --ip must be in a block of the host the container runs on")]
    IpNotInHostBlocks { ip: IpAddr, network: String, blocks: String },
    #[error("invalid MTU {0}: must be between 68 and 65535 (1280 or more on a network with IPv6)")]
    InvalidMtu(u32),
    #[error("invalid port specification {spec:?}: {reason}")]
    InvalidPort { spec: String, reason: String },
    #[error("cannot publish {spec}: {reason}")]
    PublishUnreachable { spec: String, reason: String },
    #[error("invalid hostname {0:?}: use letters, digits, '-' and '.', at most 63 characters per label")]
    InvalidHostname(String),
    #[error("invalid MAC address {0:?}: expected six hex pairs of a unicast address, e.g. 02:42:ac:11:00:02")]
    InvalidMac(String),
    #[error("invalid attach request: {0}")]
    InvalidAttach(String),
    #[error("interface name {0} is used twice in the container")]
    DuplicateIfname(String),
    #[error("MAC address {mac} is already in use on network {network}")]
    MacInUse { mac: String, network: String },
    #[error("invalid environment variable {0:?}: expected KEY=VALUE")]
    InvalidEnv(String),
    #[error("invalid policy action {0:?}: use allow or deny")]
    InvalidPolicyAction(String),
    #[error("no command given: add the command after `--`, e.g. berth run -- sleep infinity")]
    EmptyCommand,
    #[error("invalid daemon configuration: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    Conflict(String),
}
