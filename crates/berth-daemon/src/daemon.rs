//! The daemon object: configuration, store, in-memory state, firewall books
//! and the kernel, plus start-up (default network, recovery, reconcile).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use berth_core::config::DaemonConfig;
use berth_core::model::{Driver, IpamConfig, Network, NetworkOptions, DEFAULT_NETWORK};
use berth_core::subnets::{choose_subnet, AddressPool};
use ipnet::IpNet;
use tracing::{info, warn};

use crate::error::Result;
use crate::firewall::Firewall;
use crate::kernel::Kernel;
use crate::state::State;
use crate::store::{Op, Store};
use crate::util::{new_id, now};

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
    forwarding_on: AtomicBool,
    /// A background retry of a broken store is running.
    store_retrying: AtomicBool,
    /// A handle on ourselves for watcher tasks.
    pub(crate) me: OnceLock<Weak<Daemon>>,
}

impl Daemon {
    /// Opens the store and brings kernel and store into agreement: default
    /// network, unfinished requests, then a full reconcile.
    pub fn open(cfg: DaemonConfig, kernel: Arc<dyn Kernel>, rt: Option<tokio::runtime::Handle>) -> Result<Arc<Daemon>> {
        for dir in [&cfg.root, &cfg.exec_root, &cfg.root.join("containers"), &cfg.exec_root.join("containers")] {
            std::fs::create_dir_all(dir).map_err(|e| crate::error::DaemonError::Internal(format!("mkdir {}: {e}", dir.display())))?;
        }
        let store = Store::open(&cfg.root.join("berth.db"))?;
        let state = State::from_snapshot(store.load()?);
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
            forwarding_on: AtomicBool::new(false),
            store_retrying: AtomicBool::new(false),
            me: OnceLock::new(),
        });
        let _ = d.me.set(Arc::downgrade(&d));
        d.kernel_prerequisites();
        d.init_default_network()?;
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
        Ok(d)
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

    /// Sysctls berth relies on in this namespace.
    fn kernel_prerequisites(&self) {
        // icc and links filter traffic between ports of one bridge: bridged
        // IPv4 must pass through the inet hooks (br_netfilter), as with Docker.
        match self.kernel.sysctl("net.bridge.bridge-nf-call-iptables", "1") {
            Ok(true) => info!("enabled net.bridge.bridge-nf-call-iptables (icc and links filter bridged traffic)"),
            Ok(false) => {}
            Err(e) => warn!("cannot enable bridge-nf-call-iptables, icc=false and links will not filter: {e}"),
        }
    }

    /// Turns on IPv4 forwarding the first time a network with a way out
    /// exists, unless `--ip-forward=false`.
    pub fn ensure_forwarding(&self) {
        if !self.cfg.ip_forward || self.forwarding_on.load(Ordering::Relaxed) {
            return;
        }
        let needed = self.st().networks.values().any(|n| !n.internal);
        if !needed {
            return;
        }
        match self.kernel.sysctl("net.ipv4.ip_forward", "1") {
            Ok(changed) => {
                if changed {
                    info!("enabled net.ipv4.ip_forward: containers on non-internal networks need the host to route");
                }
                self.forwarding_on.store(true, Ordering::Relaxed);
            }
            Err(e) => warn!("cannot enable net.ipv4.ip_forward: {e}"),
        }
    }

    pub fn forwarding_enabled(&self) -> bool {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|s| s.trim() == "1").unwrap_or(false)
    }

    /// Bridges of all berth networks (to exclude their own routes when
    /// looking for free subnets).
    pub fn bridge_names(&self) -> Vec<String> {
        self.st().networks.values().map(|n| n.bridge.clone()).collect()
    }

    /// Creates or adopts the default network per the configuration. Its
    /// subnet is 172.17.0.0/16 unless that collides with a host address or
    /// route (e.g. Docker's docker0), then the next free /16 of 172.18–172.31;
    /// `--bip` fixes it; an existing bridge that berth did not create
    /// (`--bridge br0`) is adopted with its address and never deleted.
    fn init_default_network(&self) -> Result<()> {
        let existing = self.st().networks.values().find(|n| n.predefined).cloned();
        if self.cfg.bridge == "none" {
            if let Some(n) = existing {
                if self.st().users_of(&n.id).is_empty() {
                    self.st().networks.remove(&n.id);
                    self.commit(&[Op::DelNetwork(&n.id)], true)?;
                    if n.bridge_owned {
                        self.kernel.delete_link(&n.bridge)?;
                    }
                }
            }
            return Ok(());
        }
        let bridge = self.cfg.bridge.clone();
        let owned = match self.kernel.link_owned(&bridge)? {
            None => true,
            Some(marked) => marked || existing.as_ref().is_some_and(|n| n.bridge == bridge && n.bridge_owned),
        };
        let (subnet, gateway) = if let Some(bip) = self.cfg.bip {
            (bip.trunc(), bip.addr())
        } else if let (false, Some(addr)) = (owned, self.kernel.link_addresses(&bridge)?.and_then(|a| a.first().copied())) {
            (addr.trunc(), addr.addr())
        } else if let Some(n) = existing.as_ref().filter(|n| n.bridge == bridge && !n.ipam[0].user_subnet) {
            (n.ipam[0].subnet, n.ipam[0].gateway)
        } else {
            let others: Vec<IpNet> = {
                let st = self.st();
                st.networks.values().filter(|n| !n.predefined).flat_map(|n| n.ipam.iter().map(|c| c.subnet)).collect()
            };
            let host = self.kernel.host_nets(&self.bridge_names())?;
            let pools: Vec<AddressPool> =
                (17..=31).map(|b| AddressPool { base: format!("172.{b}.0.0/16").parse().unwrap(), size: 16 }).collect();
            let s = choose_subnet(&pools, &others, &host)?;
            (s, berth_core::ipam::from_u128(berth_core::ipam::to_u128(s.network()) + 1, s.addr()))
        };
        if let Some(f) = self.cfg.fixed_cidr {
            if !(subnet.contains(&f.network()) && subnet.contains(&f.broadcast())) {
                return Err(berth_core::CoreError::RangeOutsideSubnet { range: f, subnet }.into());
            }
        }
        let mut want = Network {
            id: existing.as_ref().map(|n| n.id.clone()).unwrap_or_else(new_id),
            name: DEFAULT_NETWORK.to_string(),
            driver: Driver::Bridge,
            ipam: vec![IpamConfig {
                subnet,
                gateway,
                ip_range: self.cfg.fixed_cidr,
                user_subnet: self.cfg.bip.is_some() || !owned,
            }],
            internal: false,
            mtu: self.cfg.mtu,
            options: NetworkOptions { icc: self.cfg.icc, masquerade: true },
            raw_options: Default::default(),
            bridge: bridge.clone(),
            bridge_owned: owned,
            created: existing.as_ref().map(|n| n.created).unwrap_or_else(now),
            predefined: true,
        };
        if let Some(old) = &existing {
            if old.ipam != want.ipam || old.bridge != want.bridge {
                let users = self.st().users_of(&old.id);
                if !users.is_empty() {
                    warn!(
                        "default network settings changed but containers use it ({}): keeping {} on {}",
                        users.join(", "),
                        old.ipam[0].subnet,
                        old.bridge
                    );
                    want.ipam = old.ipam.clone();
                    want.bridge = old.bridge.clone();
                    want.bridge_owned = old.bridge_owned;
                } else if old.bridge != want.bridge && old.bridge_owned {
                    self.kernel.delete_link(&old.bridge)?;
                }
            }
            if *old == want {
                return Ok(());
            }
        }
        info!("default network {} on bridge {} ({}, icc={})", want.name, want.bridge, want.ipam[0].subnet, want.options.icc);
        self.commit(&[Op::PutNetwork(&want)], true)?;
        self.st().networks.insert(want.id.clone(), want);
        Ok(())
    }
}
