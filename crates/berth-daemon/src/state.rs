//! The daemon's in-memory view of the store, with the indexes requests need.
//! Guarded by one mutex that is only ever held for pure work (validation,
//! allocation, planning) — never across a kernel call or a disk write.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use berth_core::model::{Container, Network, Policy, DEFAULT_NETWORK, DEFAULT_NETWORK_ALIAS};
use berth_core::names::is_id_prefix;
use berth_core::CoreError;

use crate::store::Snapshot;

/// Containers by id, with the indexes requests need kept up to date on
/// every change, so that no request scans all containers: by name, the
/// addresses in use per network, and who links to whom.
#[derive(Default)]
pub struct Containers {
    by_id: BTreeMap<String, Container>,
    by_name: HashMap<String, String>,
    used: HashMap<String, BTreeSet<IpAddr>>,
    linked_by: HashMap<String, BTreeSet<String>>,
    /// For DNS: (network id, address) → container id.
    by_ip: HashMap<(String, IpAddr), String>,
    /// For DNS: lowercase name → container ids (names differ in case only rarely).
    by_lname: HashMap<String, BTreeSet<String>>,
    /// For DNS: (network id, lowercase alias) → container ids.
    aliases: HashMap<(String, String), BTreeSet<String>>,
    /// For DNS: lowercase alias → on how many (network, container) it is.
    alias_count: HashMap<String, usize>,
}

impl Containers {
    fn index(&mut self, c: &Container) {
        self.by_name.insert(c.name.clone(), c.id.clone());
        self.by_lname.entry(c.name.to_ascii_lowercase()).or_default().insert(c.id.clone());
        for a in &c.attachments {
            if let Some(e) = &a.endpoint {
                for ip in e.ips() {
                    self.used.entry(a.network_id.clone()).or_default().insert(ip);
                    self.by_ip.insert((a.network_id.clone(), ip), c.id.clone());
                }
            }
            for al in &a.aliases {
                let l = al.to_ascii_lowercase();
                if self.aliases.entry((a.network_id.clone(), l.clone())).or_default().insert(c.id.clone()) {
                    *self.alias_count.entry(l).or_default() += 1;
                }
            }
        }
        for l in &c.links {
            self.linked_by.entry(l.name.clone()).or_default().insert(c.id.clone());
        }
    }

    fn unindex(&mut self, c: &Container) {
        if self.by_name.get(&c.name) == Some(&c.id) {
            self.by_name.remove(&c.name);
        }
        let lname = c.name.to_ascii_lowercase();
        if let Some(set) = self.by_lname.get_mut(&lname) {
            set.remove(&c.id);
            if set.is_empty() {
                self.by_lname.remove(&lname);
            }
        }
        for a in &c.attachments {
            if let Some(e) = &a.endpoint {
                for ip in e.ips() {
                    if let Some(set) = self.used.get_mut(&a.network_id) {
                        set.remove(&ip);
                    }
                    let key = (a.network_id.clone(), ip);
                    if self.by_ip.get(&key) == Some(&c.id) {
                        self.by_ip.remove(&key);
                    }
                }
            }
            for al in &a.aliases {
                let key = (a.network_id.clone(), al.to_ascii_lowercase());
                if let Some(set) = self.aliases.get_mut(&key) {
                    if set.remove(&c.id) {
                        if let Some(n) = self.alias_count.get_mut(&key.1) {
                            *n -= 1;
                            if *n == 0 {
                                self.alias_count.remove(&key.1);
                            }
                        }
                    }
                    if set.is_empty() {
                        self.aliases.remove(&key);
                    }
                }
            }
        }
        for l in &c.links {
            if let Some(set) = self.linked_by.get_mut(&l.name) {
                set.remove(&c.id);
            }
        }
    }

    pub fn insert(&mut self, id: String, c: Container) {
        if let Some(old) = self.by_id.remove(&id) {
            self.unindex(&old);
        }
        self.index(&c);
        self.by_id.insert(id, c);
    }

    pub fn remove(&mut self, id: &str) -> Option<Container> {
        let c = self.by_id.remove(id)?;
        self.unindex(&c);
        Some(c)
    }

    /// Mutable access; indexes are brought up to date when the guard drops.
    pub fn get_mut(&mut self, id: &str) -> Option<ContainerMut<'_>> {
        let c = self.by_id.remove(id)?;
        self.unindex(&c);
        Some(ContainerMut { map: self, c: Some(c) })
    }

    pub fn get(&self, id: &str) -> Option<&Container> {
        self.by_id.get(id)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn values(&self) -> impl Iterator<Item = &Container> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn by_name(&self, name: &str) -> Option<&Container> {
        self.by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    /// Ids of containers with a `--link` to `name`.
    pub fn linking_to(&self, name: &str) -> impl Iterator<Item = &Container> {
        self.linked_by.get(name).into_iter().flatten().filter_map(|id| self.by_id.get(id))
    }

    /// The container holding `ip` on a network.
    pub fn by_ip(&self, network_id: &str, ip: IpAddr) -> Option<&Container> {
        self.by_ip.get(&(network_id.to_string(), ip)).and_then(|id| self.by_id.get(id))
    }

    /// Containers whose name is `lname` ignoring case.
    pub fn by_lname(&self, lname: &str) -> impl Iterator<Item = &Container> {
        self.by_lname.get(lname).into_iter().flatten().filter_map(|id| self.by_id.get(id))
    }

    /// Containers with network alias `lalias` (lowercase) on a network.
    pub fn with_alias(&self, network_id: &str, lalias: &str) -> impl Iterator<Item = &Container> {
        self.aliases.get(&(network_id.to_string(), lalias.to_string())).into_iter().flatten().filter_map(|id| self.by_id.get(id))
    }

    /// Whether any container on any network has this alias (for NXDOMAIN decisions).
    pub fn alias_anywhere(&self, lalias: &str) -> bool {
        self.alias_count.contains_key(lalias)
    }

    pub fn used(&self, network_id: &str) -> BTreeSet<IpAddr> {
        self.used.get(network_id).cloned().unwrap_or_default()
    }
}

impl std::ops::Index<&String> for Containers {
    type Output = Container;
    fn index(&self, id: &String) -> &Container {
        &self.by_id[id]
    }
}

/// See [`Containers::get_mut`].
pub struct ContainerMut<'a> {
    map: &'a mut Containers,
    c: Option<Container>,
}

impl std::ops::Deref for ContainerMut<'_> {
    type Target = Container;
    fn deref(&self) -> &Container {
        self.c.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for ContainerMut<'_> {
    fn deref_mut(&mut self) -> &mut Container {
        self.c.as_mut().unwrap()
    }
}

impl Drop for ContainerMut<'_> {
    fn drop(&mut self) {
        let c = self.c.take().unwrap();
        self.map.index(&c);
        self.map.by_id.insert(c.id.clone(), c);
    }
}

#[derive(Default)]
pub struct State {
    pub networks: BTreeMap<String, Network>,
    pub containers: Containers,
    pub policies: Vec<Policy>,
    /// Other hosts' containers on global networks, from the cluster view
    /// (never plumbed here: names, links and policies only).
    pub remote: Containers,
    /// Policies kept in the cluster store (they hold wherever their target runs).
    pub cluster_policies: Vec<Policy>,
    /// Last address handed out per network and family (true: IPv6);
    /// allocation walks on from it.
    pub cursors: HashMap<(String, bool), IpAddr>,
}

impl State {
    pub fn from_snapshot(s: Snapshot) -> State {
        State {
            networks: s.networks.into_iter().map(|n| (n.id.clone(), n)).collect(),
            containers: {
                let mut m = Containers::default();
                for c in s.containers {
                    m.insert(c.id.clone(), c);
                }
                m
            },
            policies: s.policies,
            remote: Containers::default(),
            cluster_policies: Vec::new(),
            cursors: HashMap::new(),
        }
    }

    /// This host's policies and the cluster's.
    pub fn all_policies(&self) -> Vec<Policy> {
        self.policies.iter().chain(self.cluster_policies.iter()).cloned().collect()
    }

    /// A container a `--link` may name: one of ours, else one on another
    /// host (several hosts may have one of that name: any will do).
    pub fn link_target(&self, name: &str) -> Option<&Container> {
        self.containers.by_name(name).or_else(|| self.remote.by_lname(&name.to_ascii_lowercase()).find(|c| c.name == name))
    }

    /// Containers named `lname` (any case), here and on other hosts.
    pub fn named(&self, lname: &str) -> Vec<&Container> {
        self.containers.by_lname(lname).chain(self.remote.by_lname(lname)).collect()
    }

    /// Containers with alias `lalias` on a network, here and on other hosts.
    pub fn aliased(&self, network_id: &str, lalias: &str) -> Vec<&Container> {
        self.containers.with_alias(network_id, lalias).chain(self.remote.with_alias(network_id, lalias)).collect()
    }

    /// The container holding `ip` on a network, here or on another host.
    pub fn holder(&self, network_id: &str, ip: IpAddr) -> Option<&Container> {
        self.containers.by_ip(network_id, ip).or_else(|| self.remote.by_ip(network_id, ip))
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
        if let Some(c) = self.containers.by_name(key) {
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
        self.containers.by_name(name)
    }

    /// Addresses held on a network: every endpoint of every container.
    pub fn used_addresses(&self, network_id: &str) -> BTreeSet<IpAddr> {
        self.containers.used(network_id)
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
