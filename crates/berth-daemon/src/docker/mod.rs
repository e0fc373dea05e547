//! Docker's plugin API (`berth daemon --docker-plugin`): berth as a
//! libnetwork remote network driver and IPAM driver, one more front door
//! onto the daemon's request flows. A Docker network is a berth network
//! (created with Docker's id, or an existing one bound with `-o
//! berth.network=NAME`); a Docker container's sandbox is a berth
//! container attached to the sandbox's namespace at its first Join, and
//! connected or disconnected at the next ones.
//!
//! What dockerd does not tell berth again later is kept in
//! `ROOT/docker-plugin.json` (pools' gateways and held addresses, which
//! Docker networks are which berth networks, endpoints until their Join),
//! written whole and renamed into place at every change, so a berth
//! restart loses none of it. dockerd remembers its pools itself and does
//! not ask again after its own restart.

mod ipam;
pub mod names;
mod network;
pub mod server;
pub mod user_chain;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use berth_core::docker::Call;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};

/// A pool berth's IPAM handed out (keyed by its id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolState {
    pub gateway: Option<IpAddr>,
    /// Addresses given to dockerd and not released yet.
    pub held: BTreeSet<IpAddr>,
}

/// A Docker network and the berth network it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetState {
    /// The berth network's id.
    pub berth: String,
    /// berth made it for Docker (and removes it with DeleteNetwork);
    /// false: bound to a berth network that outlives it.
    pub created: bool,
}

/// An endpoint from CreateEndpoint to DeleteEndpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    /// The Docker network.
    pub network: String,
    pub ip: Option<IpAddr>,
    pub ip6: Option<IpAddr>,
    pub publish: Vec<String>,
    pub expose: Vec<String>,
    /// The berth container it is part of, once joined.
    pub container: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginState {
    pub pools: BTreeMap<String, PoolState>,
    pub networks: BTreeMap<String, NetState>,
    pub endpoints: BTreeMap<String, EndpointState>,
}

/// The plugin: the daemon plus its own small state.
pub struct DockerPlugin {
    pub d: Arc<Daemon>,
    state: Mutex<PluginState>,
    path: PathBuf,
    /// The FORWARD-drop advice was logged already.
    advised: std::sync::atomic::AtomicBool,
}

impl DockerPlugin {
    pub fn open(d: Arc<Daemon>) -> Result<Arc<DockerPlugin>> {
        let path = d.cfg.root.join("docker-plugin.json");
        let state = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| DaemonError::Store(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PluginState::default(),
            Err(e) => return Err(DaemonError::Store(format!("{}: {e}", path.display()))),
        };
        Ok(Arc::new(DockerPlugin { d, state: Mutex::new(state), path, advised: Default::default() }))
    }

    pub fn st(&self) -> MutexGuard<'_, PluginState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the state (whole, then renamed over the old file).
    pub fn save(&self, st: &PluginState) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(st).map_err(|e| DaemonError::Internal(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| DaemonError::StoreUnavailable(format!("writing {}: {e}", self.path.display())))
    }

    /// Changes the state and saves it; nothing changes if saving fails.
    pub fn update<T>(&self, f: impl FnOnce(&mut PluginState) -> Result<T>) -> Result<T> {
        let mut st = self.st();
        let mut next = st.clone();
        let out = f(&mut next)?;
        if next != *st {
            self.save(&next)?;
            *st = next;
        }
        Ok(out)
    }

    /// Runs one call; the JSON answer.
    pub fn handle(self: &Arc<Self>, call: Call) -> Result<Value> {
        match call {
            Call::Activate => {
                // dockerd (re)started: its chains may be new.
                self.sync_user_chain();
                Ok(json!({"Implements": ["NetworkDriver", "IpamDriver"]}))
            }
            Call::NetCapabilities => Ok(json!({"Scope": "local", "ConnectivityScope": "local"})),
            Call::CreateNetwork(r) => {
                let v = self.create_network(&r)?;
                self.sync_user_chain();
                Ok(v)
            }
            Call::DeleteNetwork(r) => {
                let v = self.delete_network(&r.network_id)?;
                self.sync_user_chain();
                Ok(v)
            }
            Call::CreateEndpoint(r) => self.create_endpoint(&r),
            Call::EndpointOperInfo(_) => Ok(json!({"Value": {}})),
            Call::DeleteEndpoint(r) => self.delete_endpoint(&r),
            Call::Join(r) => self.join(&r),
            Call::Leave(r) => self.leave(&r),
            Call::ProgramExternalConnectivity(_) | Call::RevokeExternalConnectivity(_) => Ok(json!({})),
            Call::DiscoverNew | Call::DiscoverDelete => Ok(json!({})),
            Call::IpamCapabilities => Ok(json!({"RequiresMACAddress": false, "RequiresRequestReplay": false})),
            Call::DefaultAddressSpaces => Ok(json!({
                "LocalDefaultAddressSpace": berth_core::docker::LOCAL_SPACE,
                "GlobalDefaultAddressSpace": berth_core::docker::GLOBAL_SPACE,
            })),
            Call::RequestPool(r) => self.request_pool(&r),
            Call::ReleasePool(r) => self.release_pool(&r.pool_id),
            Call::RequestAddress(r) => self.request_address(&r),
            Call::ReleaseAddress(r) => self.release_address(&r),
        }
    }
}
