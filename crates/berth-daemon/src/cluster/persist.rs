//! The last picture of the cluster, kept in `ROOT/cluster-view.json`, so a
//! daemon that restarts while etcd is unreachable still has the other
//! hosts: its tunnels, names and links keep working from it until the
//! store answers and a fresh listing replaces it.

use std::path::Path;

use berth_core::cluster::ClusterView;

const FILE: &str = "cluster-view.json";

pub fn load(root: &Path) -> ClusterView {
    let Ok(bytes) = std::fs::read(root.join(FILE)) else { return ClusterView::default() };
    match serde_json::from_slice::<ClusterView>(&bytes) {
        Ok(v) => {
            let (v, errors) = v.reindexed();
            for e in errors {
                tracing::warn!("cluster view kept in {}: record skipped: {e}", root.display());
            }
            v
        }
        Err(e) => {
            tracing::warn!("{}: {e}; starting without a picture of the cluster", root.join(FILE).display());
            ClusterView::default()
        }
    }
}

/// Written to a temporary file and renamed. Failing to keep it is not
/// fatal (the store is the truth): it is logged.
pub fn save(root: &Path, v: &ClusterView) {
    let tmp = root.join(format!("{FILE}.tmp"));
    let r = serde_json::to_vec(v).map_err(std::io::Error::other).and_then(|b| std::fs::write(&tmp, b)).and_then(|()| std::fs::rename(&tmp, root.join(FILE)));
    if let Err(e) = r {
        tracing::warn!("keeping the cluster view in {}: {e}", root.display());
    }
}
