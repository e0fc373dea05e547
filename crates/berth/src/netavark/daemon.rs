//! The front end's line to the berth daemon of the caller's network
//! namespace (`crate::autostart`): found, and started detached when none
//! answers, before the call's requests. Every failure becomes a
//! [`Refusal`], the error podman shows.

use berth_core::netavark::Refusal;
use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::autostart::{self, Target};
use crate::client::{seg, Client, Reply};

pub struct Daemon {
    client: Client,
    pub target: Target,
}

/// The daemon's message of an error answer (or its body as text).
pub fn message(r: &Reply) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&r.body).trim().to_string())
}

fn target(rootless: bool) -> Result<Target, Refusal> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    autostart::target_as(root && !rootless).map_err(|e| Refusal(format!("finding the berth daemon: {e:#}")))
}

impl Daemon {
    /// The daemon of this namespace, started when none answers. Without
    /// BERTH_HOST the socket is this namespace's by construction (autostart
    /// names it by the namespace), so a daemon that answers there is asked
    /// nothing more; a socket BERTH_HOST names is asked which namespace its
    /// daemon serves first (`autostart::connect_or_start`).
    pub async fn connect(rootless: bool) -> Result<Daemon, Refusal> {
        let t = target(rootless)?;
        if std::env::var_os("BERTH_HOST").is_none() {
            let client = Client::new(Some(&format!("unix://{}", t.socket.display()))).map_err(|e| Refusal(e.to_string()))?;
            if client.raw(Method::GET, "/_ping", None).await.is_ok() {
                return Ok(Daemon { client, target: t });
            }
        }
        let client = autostart::connect_or_start(&t).await.map_err(|e| Refusal(format!("{e:#}")))?;
        Ok(Daemon { client, target: t })
    }

    /// The daemon when one answers or ever kept state here (it then has
    /// records to serve); None when berth never ran in this namespace, so
    /// a call with nothing to undo starts no daemon.
    pub async fn connect_if_used(rootless: bool) -> Result<Option<Daemon>, Refusal> {
        let t = target(rootless)?;
        let client = Client::new(Some(&format!("unix://{}", t.socket.display()))).map_err(|e| Refusal(e.to_string()))?;
        let answers = client.raw(Method::GET, "/_ping", None).await.is_ok();
        if !answers && !t.root.join("berth.db").exists() {
            return Ok(None);
        }
        if answers && std::env::var_os("BERTH_HOST").is_none() {
            return Ok(Some(Daemon { client, target: t }));
        }
        Self::connect(rootless).await.map(Some)
    }

    /// A lock on podman network `name`, shared by setups and taken alone by
    /// the removal of an unused network (see `setup::finish`), so a
    /// network is never removed between a setup's look at it and its attach.
    pub fn lock_network(&self, name: &str, exclusive: bool) -> Result<std::fs::File, Refusal> {
        use std::os::fd::AsRawFd;
        let path = self.target.exec_root.join(format!("podman-network-{name}.lock"));
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Refusal(format!("{}: {e}", path.display())))?;
        // SAFETY: flock on an fd we own; released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), if exclusive { libc::LOCK_EX } else { libc::LOCK_SH }) } != 0 {
            return Err(Refusal(format!("locking {}: {}", path.display(), std::io::Error::last_os_error())));
        }
        Ok(f)
    }

    /// The right to remove unused network `name` (see `setup::finish`):
    /// None when another remover already waits for it.
    pub fn try_lock_remover(&self, name: &str) -> Option<std::fs::File> {
        use std::os::fd::AsRawFd;
        let path = self.target.exec_root.join(format!("podman-network-{name}.remover"));
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).ok()?;
        // SAFETY: flock on an fd we own; released when the file is closed.
        (unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0).then_some(f)
    }

    /// One request; only transport failures are errors here.
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply, Refusal> {
        self.client.raw(method, path, body.map(|b| b.to_string().into_bytes())).await.map_err(|e| Refusal(format!("berth daemon: {e:#}")))
    }

    /// A request that must succeed: an error answer becomes a refusal
    /// saying what was asked (`what`) and the daemon's answer.
    pub async fn must(&self, method: Method, path: &str, body: Option<&Value>, what: &str) -> Result<Reply, Refusal> {
        let r = self.request(method, path, body).await?;
        if r.status.is_success() {
            Ok(r)
        } else {
            Err(Refusal(format!("{what}: {}", message(&r))))
        }
    }

    /// `GET PATH` of a named object; None when berth has none of that
    /// name (a lookup by a hex name can also find an id prefix: only an
    /// exact name counts).
    pub async fn get_named(&self, kind: &str, name: &str) -> Result<Option<Value>, Refusal> {
        let path = match kind {
            "networks" => format!("/networks/{}", seg(name)),
            _ => format!("/containers/{}/json", seg(name)),
        };
        let r = self.request(Method::GET, &path, None).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status.is_success() {
            return Err(Refusal(format!("looking up {name}: {}", message(&r))));
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| Refusal(format!("berth daemon: unexpected answer: {e}")))?;
        let found = v["Name"].as_str().map(|n| n.trim_start_matches('/'));
        Ok((found == Some(name)).then_some(v))
    }

    /// `berth reconcile`: makes the kernel match the store again, for
    /// a request that failed in the kernel (someone ran `nft flush ruleset`).
    pub async fn reconcile(&self) -> Result<(), Refusal> {
        self.must(Method::POST, "/reconcile", None, "reconcile").await.map(|_| ())
    }
}
