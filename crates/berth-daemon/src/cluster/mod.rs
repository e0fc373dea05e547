//! This host's membership of a cluster: the connection to etcd, the
//! picture of what the other hosts keep there ([`ClusterView`]), and the
//! work that keeps the two in step.
//!
//! Three loops run for the whole life of the daemon:
//! - the *session* (`session.rs`, async): connects, registers this host on
//!   its leases, lists the store, then watches it from that revision,
//!   re-listing when the watch is compacted away and starting over after
//!   any error. It only updates the view and says what changed;
//! - the *syncer* (a thread, `sync.rs`): turns what changed into kernel
//!   and firewall work (global networks taken up or down, tunnel peers,
//!   other hosts' containers for names and links, cluster policies), with
//!   the same code paths requests use;
//! - the *announcer* (async, `announce.rs`): writes this host's endpoints
//!   on global networks to the store, from the daemon's state, whenever a
//!   container changes and after every reconnection.
//!
//! Nothing a container start needs waits on etcd: addresses come from
//! blocks this host already holds (`blocks.rs` leases more ahead of
//! need), and announcements go out after the start has answered. With
//! etcd unreachable the view stays as it was (tunnels and names keep
//! working), starts keep working, and what needs the store fails with
//! [`DaemonError::ClusterUnavailable`] naming it.

mod announce;
pub mod blocks;
mod etcd;
pub mod identity;
pub mod networks;
mod persist;
mod session;
pub mod sync;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::cluster::view::Changed;
use berth_core::cluster::ClusterView;
use berth_core::config::ClusterConfig;
use berth_linux::kernel::Underlay;

use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};

pub use identity::Identity;

/// Whether this host is talking to the store now, and if not, why.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub connected: bool,
    /// The last failure (cleared on reconnection).
    pub error: Option<String>,
    /// Seconds since the epoch of the last change of `connected`.
    pub since: u64,
}

/// The leases this host's records live on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leases {
    /// Short (`discovery.ttl`): the host record and its endpoints.
    pub live: Option<i64>,
    /// Long (`blocks.grace`): its address blocks and `nodeinfo`.
    pub grace: Option<i64>,
    /// The previous run's liveness lease, revoked once this run has
    /// announced everything again (its stale endpoints go with it).
    pub stale_live: Option<i64>,
}

pub struct Cluster {
    pub cfg: ClusterConfig,
    /// This host's name and id.
    pub identity: Mutex<Identity>,
    /// Where tunnels end here (`--cluster-advertise` resolved).
    pub underlay: Underlay,
    /// `etcd://HOST:PORT,...` for messages.
    pub desc: String,
    pub view: Mutex<ClusterView>,
    /// The view has been listed from etcd in this run (before that it is
    /// the persisted picture: nothing is taken down because it lacks it).
    pub listed: AtomicBool,
    pub status: Mutex<Status>,
    pub leases: Mutex<Leases>,
    client: tokio::sync::Mutex<Option<etcd_client::Client>>,
    /// Wakes the announcer.
    kick: tokio::sync::Notify,
    /// To the syncer.
    sync_tx: Mutex<std::sync::mpsc::Sender<Changed>>,
    sync_rx: Mutex<Option<std::sync::mpsc::Receiver<Changed>>>,
    /// What the announcer last wrote (key → JSON).
    announced: tokio::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// Networks a block is being leased for in the background.
    pub topping_up: Mutex<BTreeSet<String>>,
    /// Taking a global network up or down, one at a time (the syncer and a
    /// request may both try).
    pub adopting: Mutex<()>,
    /// Firewall owners of other hosts' containers now in the books.
    pub remote_owners: Mutex<BTreeSet<String>>,
    /// Requests to the store since start (for `berth bench --hosts`).
    pub requests: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
}

/// How long a request waits on the store before it gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);

/// One put (or, without a value, a delete) of a record that has no lease.
pub async fn store_put(cl: &Cluster, key: &str, value: Option<&str>) -> std::result::Result<(), String> {
    let mut c = cl.client().await?;
    cl.count(key.len() + value.map_or(0, str::len));
    match value {
        Some(v) => c.put(key, v, None).await.map(|_| ()),
        None => c.delete(key, None).await.map(|_| ()),
    }
    .map_err(|e| etcd::humanize(&e))
}

impl Cluster {
    /// The cluster part of a daemon starting: identity, underlay, the last
    /// picture of the cluster this host saw.
    pub fn new(cfg: ClusterConfig, root: &std::path::Path, underlay: Underlay) -> Result<Cluster> {
        let identity = identity::load(root, cfg.node_name.as_deref())?;
        let view = persist::load(root);
        let (tx, rx) = std::sync::mpsc::channel();
        Ok(Cluster {
            desc: etcd::describe(&cfg),
            cfg,
            identity: Mutex::new(identity),
            underlay,
            view: Mutex::new(view),
            listed: AtomicBool::new(false),
            status: Mutex::new(Status::default()),
            leases: Mutex::new(Leases::default()),
            client: tokio::sync::Mutex::new(None),
            kick: tokio::sync::Notify::new(),
            sync_tx: Mutex::new(tx),
            sync_rx: Mutex::new(Some(rx)),
            announced: Default::default(),
            remote_owners: Default::default(),
            topping_up: Default::default(),
            adopting: Mutex::new(()),
            requests: Default::default(),
            bytes: Default::default(),
        })
    }

    pub fn node(&self) -> String {
        self.identity.lock().unwrap().name.clone()
    }

    pub fn view(&self) -> std::sync::MutexGuard<'_, ClusterView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn connected(&self) -> bool {
        self.status.lock().unwrap().connected
    }

    /// An error for a request that needs the store while it is unreachable.
    pub fn unavailable(&self, what: &str, why: &str) -> DaemonError {
        DaemonError::ClusterUnavailable(format!("{what} needs the cluster store {}, which {why}", self.desc))
    }

    /// Tells the announcer the daemon's containers changed.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Hands what changed to the syncer.
    fn changed(&self, ch: Changed) {
        if ch.any() {
            let _ = self.sync_tx.lock().unwrap().send(ch);
        }
    }

    fn set_status(&self, connected: bool, error: Option<String>) {
        let mut s = self.status.lock().unwrap();
        if s.connected != connected {
            s.since = crate::util::now();
            if connected {
                tracing::info!("cluster store {} reached; this host is {} in it", self.desc, self.node());
            }
        }
        if let (false, Some(e)) = (connected, &error) {
            if s.error.as_deref() != Some(e) {
                tracing::warn!("cluster store {}: {e}", self.desc);
            }
        }
        s.connected = connected;
        s.error = error;
    }

    /// The client (made on first use; it connects lazily).
    async fn client(&self) -> std::result::Result<etcd_client::Client, String> {
        let mut c = self.client.lock().await;
        if c.is_none() {
            *c = Some(etcd::connect(&self.cfg).await?);
        }
        Ok(c.clone().expect("just made"))
    }

    /// Counts one request and its payload bytes.
    fn count(&self, bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Starts the session, the announcer and the syncer.
    pub fn start(self: &Arc<Self>, d: &Arc<Daemon>, rt: &tokio::runtime::Handle) {
        let rx = self.sync_rx.lock().unwrap().take().expect("started once");
        sync::spawn(Arc::downgrade(d), self.clone(), rx);
        rt.spawn(session::run(self.clone(), Arc::downgrade(d)));
        rt.spawn(announce::run(self.clone(), Arc::downgrade(d)));
    }

    /// Runs a store operation from a request's (blocking) thread, bounded
    /// in time.
    pub fn block_on<T>(&self, d: &Daemon, what: &str, f: impl std::future::Future<Output = std::result::Result<T, String>>) -> Result<T> {
        let Some(rt) = &d.rt else { return Err(DaemonError::Internal("no runtime for the cluster store".into())) };
        rt.block_on(async {
            match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(self.unavailable(what, &format!("failed: {e}"))),
                Err(_) => Err(self.unavailable(what, &format!("did not answer within {} s", REQUEST_TIMEOUT.as_secs()))),
            }
        })
    }
}
