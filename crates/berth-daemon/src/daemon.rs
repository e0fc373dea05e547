//! The daemon object: configuration, store, in-memory state, firewall books
//! and the kernel, plus start-up (default network, recovery, reconcile).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use berth_core::config::DaemonConfig;
use berth_core::model::Network;
use berth_core::subnets::AddressPool;
use berth_linux::kernel::Kernel;
use tracing::{info, warn};

use crate::error::Result;
use crate::firewall::Firewall;
use crate::state::State;
use crate::store::{Op, Store};

pub struct Daemon {
    pub cfg: DaemonConfig,
    pub store: Store,
    pub kernel: Arc<dyn Kernel>,
    pub state: Mutex<State>,
    pub fw: Firewall,
    pub dns: crate::dns::Dns,
    /// Containers whose exit is being handled right now.
    pub(crate) exiting: Mutex<std::collections::HashSet<String>>,
    /// The berth binary, re-executed as `berth shim` for each container.
    pub exe: PathBuf,
    /// Runtime handle for per-container exit watchers (None in unit tests).
    pub rt: Option<tokio::runtime::Handle>,
    /// Address pools of both families, defaults filled in.
    pub pools: Vec<AddressPool>,
    pub host: crate::service::host::HostSettings,
    /// A background retry of a broken store is running.
    store_retrying: AtomicBool,
    /// A handle on ourselves for watcher tasks.
    pub(crate) me: OnceLock<Weak<Daemon>>,
    /// This host's membership of a cluster (`--cluster-store`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Daemon {
    /// Opens the store and brings kernel and store into agreement: default
    /// network, unfinished requests, then a full reconcile.
    pub fn open(cfg: DaemonConfig, kernel: Arc<dyn Kernel>, rt: Option<tokio::runtime::Handle>) -> Result<Arc<Daemon>> {
        for dir in [&cfg.root, &cfg.exec_root, &cfg.root.join("containers"), &cfg.exec_root.join("containers")] {
            std::fs::create_dir_all(dir).map_err(|e| crate::error::DaemonError::Internal(format!("mkdir {}: {e}", dir.display())))?;
        }
        let store = Store::open(&cfg.root.join("berth.db"))?;
        let cfg_pools = cfg.pools.clone();
        let state = State::from_snapshot(store.load()?);
        let cluster = match &cfg.cluster {
            Some(cc) => {
                let underlay = kernel.underlay(&cc.advertise)?.ok_or_else(|| {
                    crate::error::DaemonError::BadRequest(format!(
                        "cluster-advertise {}: no such address or interface on this host",
                        cc.advertise
                    ))
                })?;
                if underlay.addr.is_ipv6() {
                    return Err(crate::error::DaemonError::BadRequest(format!(
                        "cluster-advertise {}: {} has no IPv4 address (tunnels between hosts run over IPv4)",
                        cc.advertise, underlay.dev
                    )));
                }
                Some(Arc::new(crate::cluster::Cluster::new(cc.clone(), &cfg.root, underlay)?))
            }
            None => None,
        };
        let d = Arc::new(Daemon {
            cfg,
            store,
            kernel,
            state: Mutex::new(state),
            fw: Firewall::default(),
            dns: Default::default(),
            exiting: Default::default(),
            exe: PathBuf::from("/proc/self/exe"),
            rt,
            pools: berth_core::subnets::with_default_pools(cfg_pools, &crate::util::machine_id()),
            host: Default::default(),
            store_retrying: AtomicBool::new(false),
            me: OnceLock::new(),
            cluster,
        });
        let _ = d.me.set(Arc::downgrade(&d));
        d.kernel_prerequisites();
        d.init_default_network()?;
        d.cluster_prepare();
        d.recover()?;
        let report = d.reconcile()?;
        if !report.is_empty() {
            info!("reconcile at start: {}", report.join("; "));
        }
        d.watch_all();
        let nets: Vec<Network> = d.st().networks.values().cloned().collect();
        for n in &nets {
            d.dns_start(n);
        }
        if let (Some(cl), Some(rt)) = (&d.cluster, &d.rt) {
            cl.start(&d, rt);
        }
        Ok(d)
    }

    /// Before recovery and reconcile: this host's part of its global
    /// networks (the underlay may have changed since the last run), and the
    /// other hosts as last seen, so tunnels, names and links are right
    /// from the start even if etcd is unreachable now.
    fn cluster_prepare(&self) {
        let Some(cl) = &self.cluster else { return };
        let globals: Vec<Network> = self.st().networks.values().filter(|n| n.global).cloned().collect();
        for mut n in globals {
            self.localize(cl, &mut n);
            self.st().networks.insert(n.id.clone(), n);
        }
        let nets: std::collections::BTreeSet<String> = self.st().networks.keys().cloned().collect();
        let (remote, policies) = {
            let v = cl.view();
            let mut r = v.remote_containers(&cl.node());
            for c in r.iter_mut() {
                c.attachments.retain(|a| nets.contains(&a.network_id));
            }
            r.retain(|c| !c.attachments.is_empty());
            (r, v.policies.values().cloned().collect::<Vec<_>>())
        };
        let mut st = self.st();
        for c in remote {
            st.remote.insert(c.id.clone(), c);
        }
        st.cluster_policies = policies;
    }

    /// The state, locked. A request that panicked while holding the lock
    /// (a bug) must not take every later request down with it: the state
    /// is plain data and stays usable.
    pub fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a container is no longer being started (another request
    /// may be plumbing it right now), at most 30 s.
    pub fn wait_settled(&self, id: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let starting = self.st().containers.get(id).is_some_and(|c| c.state.status == berth_core::model::RunState::Starting);
            if !starting {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Writes `ops` to the store (`durable`: wait for fsync). After an I/O
    /// error (a full disk) the store is reopened and rewritten from the
    /// in-memory state first; while that fails, every write fails with the
    /// reason and a retry runs in the background.
    pub fn commit(&self, ops: &[Op], durable: bool) -> Result<()> {
        if self.store.needs_recovery() {
            self.recover_store()?;
        }
        let r = self.store.commit(ops, durable);
        if self.store.needs_recovery() {
            self.retry_store_in_background();
        }
        // Containers changed: the cluster hears about their endpoints.
        if let Some(cl) = &self.cluster {
            if ops.iter().any(|o| matches!(o, Op::PutContainer(_) | Op::DelContainer(_))) {
                cl.kick();
            }
        }
        r
    }

    /// Reopens the store after an I/O error and writes back every record
    /// from the in-memory state (which requests keep right: see `store`).
    pub fn recover_store(&self) -> Result<()> {
        let truth = {
            let st = self.st();
            crate::store::Snapshot {
                networks: st.networks.values().cloned().collect(),
                containers: st.containers.values().cloned().collect(),
                policies: st.policies.clone(),
            }
        };
        self.store.recover(&truth)?;
        info!("store at {} is writable again: {} networks, {} containers and {} policies written back", self.cfg.root.display(), truth.networks.len(), truth.containers.len(), truth.policies.len());
        Ok(())
    }

    /// While the store is broken, tries to recover it every 2 s, so the
    /// state reaches the disk once space is freed even if no request comes.
    fn retry_store_in_background(&self) {
        if self.store_retrying.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(me) = self.me.get().and_then(|w| w.upgrade()) else {
            self.store_retrying.store(false, Ordering::SeqCst);
            return;
        };
        warn!("the store cannot be written; berth keeps serving from memory and retries every 2 s");
        std::thread::spawn(move || {
            while me.store.needs_recovery() {
                std::thread::sleep(std::time::Duration::from_secs(2));
                if let Err(e) = me.recover_store() {
                    tracing::debug!("store still not writable: {e}");
                }
            }
            me.store_retrying.store(false, Ordering::SeqCst);
        });
    }

    /// Records `intent` in the store, then runs `apply` while the intent is
    /// made durable on another thread; returns once both are done. See
    /// `store` for why overlapping the fsync with the kernel work is safe.
    pub fn with_intent<T: Send>(&self, intent: &[crate::store::Op], apply: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        self.commit(intent, false)?;
        std::thread::scope(|s| {
            let flush = s.spawn(|| self.commit(&[], true));
            let applied = apply();
            let flushed = flush.join().unwrap_or_else(|_| Err(crate::error::DaemonError::Internal("store flush panicked".into())));
            match (applied, flushed) {
                (Ok(v), Ok(())) => Ok(v),
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            }
        })
    }

    /// Bridges of all berth networks (to exclude their own routes when
    /// looking for free subnets).
    pub fn bridge_names(&self) -> Vec<String> {
        self.st().networks.values().filter(|n| n.has_bridge()).flat_map(|n| [Some(n.bridge().to_string()), n.tunnel().map(str::to_string)]).flatten().collect()
    }
}
