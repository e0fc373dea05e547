//! Docker's plugin protocol, pure side: the JSON dockerd sends a network
//! and IPAM plugin (libnetwork's "remote" driver and IPAM driver), parsed
//! into typed calls, and what berth makes of them (a berth network create
//! request, publish specs, an address from a pool). The daemon's
//! `docker/` module serves the socket and runs the calls against its
//! request flows.
//!
//! Every call is `POST /Plugin.Activate`, `/NetworkDriver.X` or
//! `/IpamDriver.X` with a JSON body (empty or `null` for the calls that
//! take nothing). Requests are parsed leniently (fields dockerd adds in a
//! later release are ignored) but what berth uses is checked.

pub mod ipam;
pub mod network;
pub mod ports;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::{CoreError, Result};

/// Where dockerd looks for a plugin named `berth`.
pub const DEFAULT_SOCKET: &str = "/run/docker/plugins/berth.sock";

/// The content type of every answer (dockerd's plugin client sends v1.2).
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// Our address spaces (`GetDefaultAddressSpaces`); a pool asked in any
/// other space is refused.
pub const LOCAL_SPACE: &str = "berth-local";
pub const GLOBAL_SPACE: &str = "berth-global";

/// `NetworkDriver.*` calls that name a network only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// Calls that name an endpoint (Leave, DeleteEndpoint, EndpointOperInfo,
/// RevokeExternalConnectivity).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndpointRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// One entry of `IPv4Data`/`IPv6Data` in CreateNetwork.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpamData {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    #[serde(rename = "Pool")]
    pub pool: String,
    /// With the prefix, e.g. `10.66.0.1/24`.
    #[serde(rename = "Gateway", default)]
    pub gateway: Option<String>,
    #[serde(rename = "AuxAddresses", default)]
    pub aux_addresses: Option<BTreeMap<String, String>>,
}

/// `NetworkDriver.CreateNetwork`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// `com.docker.network.generic` (every `-o`, as strings),
    /// `com.docker.network.enable_ipv6`, `com.docker.network.internal`.
    #[serde(rename = "Options", default)]
    pub options: BTreeMap<String, Value>,
    #[serde(rename = "IPv4Data", default)]
    pub ipv4_data: Option<Vec<IpamData>>,
    #[serde(rename = "IPv6Data", default)]
    pub ipv6_data: Option<Vec<IpamData>>,
}

/// The interface dockerd's IPAM gave the endpoint (CIDRs, or empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EndpointInterface {
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "AddressIPv6", default)]
    pub address_ipv6: String,
    #[serde(rename = "MacAddress", default)]
    pub mac_address: String,
}

/// `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Interface", default)]
    pub interface: Option<EndpointInterface>,
    /// `com.docker.network.portmap`, `com.docker.network.endpoint.exposedports`.
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, Value>>,
}

/// `NetworkDriver.Join`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Join {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The container's network namespace, e.g. `/var/run/docker/netns/71533e324ebf`.
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, Value>>,
}

/// `NetworkDriver.ProgramExternalConnectivity`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExternalConnectivity {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, Value>>,
}

/// `IpamDriver.RequestPool`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestPool {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    #[serde(rename = "Pool", default)]
    pub pool: String,
    #[serde(rename = "SubPool", default)]
    pub sub_pool: String,
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PoolRef {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// A static address (`--ip`, `--gateway`), or empty.
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, String>>,
}

impl RequestAddress {
    /// dockerd asks the gateway with `RequestAddressType: com.docker.network.gateway`.
    pub fn is_gateway(&self) -> bool {
        self.options.as_ref().and_then(|o| o.get("RequestAddressType")).is_some_and(|t| t == "com.docker.network.gateway")
    }
}

/// `IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleaseAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address")]
    pub address: String,
}

/// One call of the protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Activate,
    NetCapabilities,
    CreateNetwork(CreateNetwork),
    DeleteNetwork(NetworkRef),
    CreateEndpoint(CreateEndpoint),
    EndpointOperInfo(EndpointRef),
    DeleteEndpoint(EndpointRef),
    Join(Join),
    Leave(EndpointRef),
    ProgramExternalConnectivity(ExternalConnectivity),
    RevokeExternalConnectivity(EndpointRef),
    /// Node discovery (swarm): nothing to do for a local plugin.
    DiscoverNew,
    DiscoverDelete,
    IpamCapabilities,
    DefaultAddressSpaces,
    RequestPool(RequestPool),
    ReleasePool(PoolRef),
    RequestAddress(RequestAddress),
    ReleaseAddress(ReleaseAddress),
}

fn body<T: DeserializeOwned>(method: &str, b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| CoreError::DockerRequest(format!("{method}: {e}")))
}

/// Parses one request: `method` is the path without its slash
/// (`NetworkDriver.Join`). An unknown method is `None` (dockerd then
/// gets a 404, which it takes as "not implemented" where that is allowed).
pub fn parse_call(method: &str, b: &[u8]) -> Result<Option<Call>> {
    Ok(Some(match method {
        "Plugin.Activate" => Call::Activate,
        "NetworkDriver.GetCapabilities" => Call::NetCapabilities,
        "NetworkDriver.CreateNetwork" => Call::CreateNetwork(body(method, b)?),
        "NetworkDriver.DeleteNetwork" => Call::DeleteNetwork(body(method, b)?),
        "NetworkDriver.CreateEndpoint" => Call::CreateEndpoint(body(method, b)?),
        "NetworkDriver.EndpointOperInfo" => Call::EndpointOperInfo(body(method, b)?),
        "NetworkDriver.DeleteEndpoint" => Call::DeleteEndpoint(body(method, b)?),
        "NetworkDriver.Join" => Call::Join(body(method, b)?),
        "NetworkDriver.Leave" => Call::Leave(body(method, b)?),
        "NetworkDriver.ProgramExternalConnectivity" => Call::ProgramExternalConnectivity(body(method, b)?),
        "NetworkDriver.RevokeExternalConnectivity" => Call::RevokeExternalConnectivity(body(method, b)?),
        "NetworkDriver.DiscoverNew" => Call::DiscoverNew,
        "NetworkDriver.DiscoverDelete" => Call::DiscoverDelete,
        "IpamDriver.GetCapabilities" => Call::IpamCapabilities,
        "IpamDriver.GetDefaultAddressSpaces" => Call::DefaultAddressSpaces,
        "IpamDriver.RequestPool" => Call::RequestPool(body(method, b)?),
        "IpamDriver.ReleasePool" => Call::ReleasePool(body(method, b)?),
        "IpamDriver.RequestAddress" => Call::RequestAddress(body(method, b)?),
        "IpamDriver.ReleaseAddress" => Call::ReleaseAddress(body(method, b)?),
        _ => return Ok(None),
    }))
}

/// The berth container a Docker sandbox (one container's network
/// namespace) becomes until its Docker name is known: `docker-` + the
/// sandbox's short id (the last part of `SandboxKey`).
pub fn sandbox_container_name(sandbox_key: &str) -> Result<String> {
    let base = sandbox_key.rsplit('/').next().unwrap_or_default();
    if base.is_empty() || base.len() > 64 || !base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(CoreError::DockerRequest(format!("Join: SandboxKey {sandbox_key:?} does not end in a sandbox id")));
    }
    Ok(format!("docker-{}", &base[..base.len().min(12)]))
}

/// The berth network a Docker network is created as: `docker-` + the
/// first 12 hex digits of its id (dockerd never tells a driver the name).
pub fn network_name(network_id: &str) -> Result<String> {
    check_id("NetworkID", network_id)?;
    Ok(format!("docker-{}", &network_id[..12]))
}

/// Docker ids are 64 hex digits.
pub fn check_id(what: &str, id: &str) -> Result<()> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(CoreError::DockerRequest(format!("{what} {id:?} is not a Docker id (64 hex digits)")))
    }
}
