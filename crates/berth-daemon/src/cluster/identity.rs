//! This host's identity in the cluster, kept in `ROOT/node.json`: its name
//! (`--node-name`, else the hostname at the first start), a random id
//! that tells it apart from another host claiming the same name, and the
//! leases of its last run. The grace lease holds its address blocks: a
//! daemon that restarts (or a host that reboots) within the grace finds
//! that lease still alive and keeps its blocks, so its containers keep
//! their addresses.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DaemonError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub grace_lease: Option<i64>,
    #[serde(default)]
    pub live_lease: Option<i64>,
}

fn path(root: &Path) -> PathBuf {
    root.join("node.json")
}

/// The kernel's hostname (`uname -n`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The identity kept in `root`, or a new one. A `--node-name` different
/// from the kept name makes a new identity (a new host, as far as the
/// cluster can tell); without one the kept name stays even if the
/// hostname changed.
pub fn load(root: &Path, want: Option<&str>) -> Result<Identity> {
    let kept: Option<Identity> = std::fs::read(path(root)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    match (kept, want) {
        (Some(k), None) => Ok(k),
        (Some(k), Some(w)) if k.name == w => Ok(k),
        (k, w) => {
            let name = match w {
                Some(w) => w.to_string(),
                None => hostname(),
            };
            berth_core::names::validate_name(&name).map_err(|_| {
                DaemonError::BadRequest(format!("hostname {name:?} cannot name this host in the cluster: give --node-name NAME ([a-zA-Z0-9][a-zA-Z0-9_.-]{{0,62}})"))
            })?;
            if let Some(k) = k {
                tracing::warn!("node name changes from {} to {name}: this host joins the cluster as a new host", k.name);
            }
            let id = crate::util::new_id()[..16].to_string();
            let fresh = Identity { name, id, grace_lease: None, live_lease: None };
            save(root, &fresh)?;
            Ok(fresh)
        }
    }
}

/// Written to a temporary file and renamed: a crash never leaves half a file.
pub fn save(root: &Path, id: &Identity) -> Result<()> {
    let tmp = root.join("node.json.tmp");
    let text = serde_json::to_vec_pretty(id).expect("identity serializes");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path(root)))
        .map_err(|e| DaemonError::StoreUnavailable(crate::store::io_message(root, &e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_across_restarts_and_renames() {
        let dir = std::env::temp_dir().join(format!("berth-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = load(&dir, Some("host-a")).unwrap();
        assert_eq!(load(&dir, None).unwrap(), a, "no name given: the kept one");
        assert_eq!(load(&dir, Some("host-a")).unwrap(), a);
        let b = load(&dir, Some("host-b")).unwrap();
        assert!(b.name == "host-b" && b.id != a.id, "a new name is a new host");
        assert!(load(&dir, Some("bad/name")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
