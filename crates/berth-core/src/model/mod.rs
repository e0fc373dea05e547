//! The data model berth stores and serves. These types are what the store
//! persists (as JSON) and what the planner turns into kernel state.

mod container;
mod network;
mod policy;
mod port;

pub use container::{
    Attachment, Container, ContainerKind, ContainerState, Endpoint, EndpointAddress, EndpointState, Link, RunState,
};
pub use network::{BridgeDriver, Driver, IpamConfig, MacvlanDriver, Network, NetworkOptions, OverlayDriver, Vtep, DEFAULT_NETWORK, DEFAULT_NETWORK_ALIAS};
pub use policy::{Policy, PolicyAction, PolicyTarget};
pub use port::{host_port_text, PortMapping, PortProto, Proto};
