//! The cluster: what hosts share through the cluster store (etcd), as
//! pure data. The daemon's `cluster` module talks to etcd and feeds the
//! events it watches into [`view::ClusterView`]; everything derived from
//! the view (tunnel peers, remote containers, firewall elements) is
//! computed here, without a store or a kernel.
//!
//! Layout of the store (all keys under [`keys::PREFIX`]):
//!
//! | key | value | lease |
//! | --- | --- | --- |
//! | `nodes/NODE` | [`records::NodeRecord`] | liveness (`discovery.ttl`) |
//! | `nodeinfo/NODE` | [`records::NodeInfo`] | grace (`blocks.grace`) |
//! | `networks/ID` | the network (`model::Network`, shared part) | none |
//! | `netnames/NAME` | network id | none |
//! | `vnis/VNI` | network id | none |
//! | `blocks/NETID/CIDR` | [`records::BlockRecord`] | grace |
//! | `endpoints/NETID/NODE/EPID` | [`records::EndpointRecord`] | liveness |
//! | `policies/ID` | `model::Policy` | none |
//!
//! Liveness keys vanish within the TTL when a host dies (the others take
//! its tunnel entries and names away); its address blocks stay until the
//! longer grace lease runs out, so a host that comes back with the same
//! identity keeps them, and its containers their addresses.

pub mod blocks;
pub mod keys;
pub mod records;
pub mod view;

pub use keys::Key;
pub use records::{BlockRecord, EndpointRecord, NodeInfo, NodeRecord};
pub use view::{ClusterView, Event};
