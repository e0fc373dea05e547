//! The plugin's line to the daemon of the caller's network namespace
//! (`crate::autostart` finds its socket). The first request is sent
//! straight away — no probe first, so an ADD or a DEL is one request —
//! and only when nothing answers is the daemon started (detached) and the
//! request sent again.

use berth_core::cni::{code, CniError};
use hyper::Method;
use serde_json::Value;

use crate::autostart::{self, Target};
use crate::client::{Client, Reply};

pub struct Daemon {
    pub target: Target,
    client: Client,
}

/// A daemon's error answer as a CNI error: a full store is transient
/// (507: try again later), everything else is the daemon refusing.
pub fn refused(r: &Reply, what: &str) -> CniError {
    let msg = serde_json::from_slice::<Value>(&r.body).ok().and_then(|v| v["message"].as_str().map(str::to_string)).unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned());
    let c = if r.status.as_u16() == 507 { code::TRY_AGAIN } else { code::DAEMON_REFUSED };
    CniError::new(c, format!("berth daemon: {what} failed"), msg)
}

/// The daemon's message of an error answer.
pub fn message(r: &Reply) -> String {
    serde_json::from_slice::<Value>(&r.body).ok().and_then(|v| v["message"].as_str().map(str::to_string)).unwrap_or_default()
}

fn unreachable(e: impl std::fmt::Display) -> CniError {
    CniError::new(code::TRY_AGAIN, "the berth daemon cannot be reached", e.to_string())
}

impl Daemon {
    pub fn new() -> Result<Daemon, CniError> {
        let target = autostart::target().map_err(|e| CniError::new(code::INTERNAL, "finding the berth daemon", format!("{e:#}")))?;
        let client = Client::new(Some(&format!("unix://{}", target.socket.display()))).map_err(unreachable)?;
        Ok(Daemon { target, client })
    }

    /// Whether a daemon of this namespace ever kept state (its store exists):
    /// DEL and GC have nothing to release otherwise, and start no daemon.
    pub fn has_state(&self) -> bool {
        self.target.root.join("berth.db").exists()
    }

    /// One request; when nothing answers, starts the daemon and sends it again.
    pub async fn request(&mut self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply, CniError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        match self.client.raw(method.clone(), path, bytes.clone()).await {
            Ok(r) => Ok(r),
            Err(_) => {
                self.client = autostart::connect_or_start(&self.target).await.map_err(|e| unreachable(format!("{e:#}")))?;
                self.client.raw(method, path, bytes).await.map_err(unreachable)
            }
        }
    }

    /// One request, or None when no daemon answers (none is started).
    pub async fn request_if_running(&self, method: Method, path: &str, body: Option<&Value>) -> Option<Reply> {
        self.client.raw(method, path, body.map(|b| b.to_string().into_bytes())).await.ok()
    }
}
