//! The daemon's in-memory view of the store, with the indexes requests need.
//! Guarded by one mutex that is only ever held for pure work (validation,
//! allocation, planning) — never across a kernel call or a disk write.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use berth_core::model::{Container, Network, Policy, DEFAULT_NETWORK, DEFAULT_NETWORK_ALIAS};
use berth_core::names::is_id_prefix;
use berth_core::CoreError;

use crate::store::Snapshot;

#[derive(Default)]
pub struct State {
    pub networks: BTreeMap<String, Network>,
    pub containers: BTreeMap<String, Container>,
    pub policies: Vec<Policy>,
    /// Last address handed out per network (allocation walks on from it).
    pub cursors: HashMap<String, IpAddr>,
}

impl State {
    pub fn from_snapshot(s: Snapshot) -> State {
        State {
            networks: s.networks.into_iter().map(|n| (n.id.clone(), n)).collect(),
            containers: s.containers.into_iter().map(|c| (c.id.clone(), c)).collect(),
            policies: s.policies,
            cursors: HashMap::new(),
        }
    }

    /// Finds a network by name, full id or unique id prefix (`bridge` means the default).
    pub fn network_id(&self, key: &str) -> Result<String, CoreError> {
        let key = if key == DEFAULT_NETWORK_ALIAS { DEFAULT_NETWORK } else { key };
        if let Some(n) = self.networks.values().find(|n| n.name == key) {
            return Ok(n.id.clone());
        }
        if is_id_prefix(key) {
            let hits: Vec<&Network> = self.networks.values().filter(|n| n.id.starts_with(key)).collect();
            if hits.len() == 1 {
                return Ok(hits[0].id.clone());
            }
        }
        Err(CoreError::NoSuchNetwork(key.to_string()))
    }

    pub fn network(&self, key: &str) -> Result<&Network, CoreError> {
        let id = self.network_id(key)?;
        Ok(&self.networks[&id])
    }

    /// Finds a container by name, full id or unique id prefix.
    pub fn container_id(&self, key: &str) -> Result<String, CoreError> {
        let key = key.strip_prefix('/').unwrap_or(key);
        if let Some(c) = self.containers.values().find(|c| c.name == key) {
            return Ok(c.id.clone());
        }
        if is_id_prefix(key) {
            let hits: Vec<&Container> = self.containers.values().filter(|c| c.id.starts_with(key)).collect();
            if hits.len() == 1 {
                return Ok(hits[0].id.clone());
            }
        }
        Err(CoreError::NoSuchContainer(key.to_string()))
    }

    pub fn container(&self, key: &str) -> Result<&Container, CoreError> {
        let id = self.container_id(key)?;
        Ok(&self.containers[&id])
    }

    pub fn container_by_name(&self, name: &str) -> Option<&Container> {
        self.containers.values().find(|c| c.name == name)
    }

    /// Addresses held on a network: every endpoint of every container.
    pub fn used_addresses(&self, network_id: &str) -> BTreeSet<IpAddr> {
        self.containers
            .values()
            .flat_map(|c| c.attachments.iter())
            .filter(|a| a.network_id == network_id)
            .filter_map(|a| a.endpoint.as_ref().map(|e| e.ip))
            .collect()
    }

    /// Containers with live network resources.
    pub fn live(&self) -> Vec<&Container> {
        self.containers.values().filter(|c| c.state.status.is_live()).collect()
    }

    /// Names of containers with endpoints on a network.
    pub fn users_of(&self, network_id: &str) -> Vec<String> {
        self.containers
            .values()
            .filter(|c| c.attachments.iter().any(|a| a.network_id == network_id && a.endpoint.is_some()))
            .map(|c| c.name.clone())
            .collect()
    }
}
