//! The announcer: this host's endpoints on global networks, written to the
//! store on the liveness lease. It compares what the daemon's state wants
//! announced with what it last wrote and sends only the difference (a put
//! per new or changed endpoint, a delete per gone one), in transactions
//! of at most 100 operations. A container start kicks it right after the
//! start is recorded, so another host can resolve the new name within
//! milliseconds; while etcd is unreachable it waits and sends everything
//! once the session is back.

use std::sync::{Arc, Weak};
use std::time::Duration;

use berth_core::cluster::records::own_endpoints;
use etcd_client::{PutOptions, Txn, TxnOp};

use super::Cluster;
use crate::daemon::Daemon;

/// etcd's default `--max-txn-ops` is 128.
const MAX_OPS: usize = 100;

pub async fn run(cl: Arc<Cluster>, d: Weak<Daemon>) {
    let mut retry = false;
    loop {
        if retry {
            tokio::select! {
                _ = cl.kick.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        } else {
            cl.kick.notified().await;
        }
        let Some(daemon) = d.upgrade() else { return };
        if !cl.connected() {
            // The session kicks us when it is back.
            retry = false;
            continue;
        }
        match announce(&cl, &daemon).await {
            Ok(()) => retry = false,
            Err(e) => {
                tracing::warn!("cluster store {}: announcing this host's endpoints: {e}; retrying", cl.desc);
                retry = true;
            }
        }
    }
}

async fn announce(cl: &Cluster, d: &Daemon) -> Result<(), String> {
    let me = cl.node();
    let desired = {
        let st = d.st();
        own_endpoints(st.containers.values(), &st.networks, &me)
    };
    let (live, stale) = {
        let l = cl.leases.lock().unwrap();
        (l.live.ok_or("not registered")?, l.stale_live)
    };
    let mut c = cl.client().await?;
    let mut announced = cl.announced.lock().await;
    let puts: Vec<(&String, &String)> = desired.iter().filter(|(k, v)| announced.get(*k) != Some(*v)).collect();
    let dels: Vec<String> = announced.keys().filter(|k| !desired.contains_key(*k)).cloned().collect();
    let ops: Vec<(String, Option<String>)> =
        puts.into_iter().map(|(k, v)| (k.clone(), Some(v.clone()))).chain(dels.into_iter().map(|k| (k, None))).collect();
    for chunk in ops.chunks(MAX_OPS) {
        let txn_ops: Vec<TxnOp> = chunk
            .iter()
            .map(|(k, v)| match v {
                Some(v) => TxnOp::put(k.as_str(), v.as_str(), Some(PutOptions::new().with_lease(live))),
                None => TxnOp::delete(k.as_str(), None),
            })
            .collect();
        cl.count(chunk.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len)).sum());
        c.txn(Txn::new().and_then(txn_ops)).await.map_err(|e| super::etcd::humanize(&e))?;
        for (k, v) in chunk {
            match v {
                Some(v) => announced.insert(k.clone(), v.clone()),
                None => announced.remove(k),
            };
        }
    }
    drop(announced);
    if let Some(old) = stale {
        // Everything is on the new lease: what is left on the old one is stale.
        cl.count(16);
        match c.lease_revoke(old).await {
            Ok(_) => tracing::info!("cluster store: revoked the previous run's liveness lease {old:x}"),
            Err(e) => tracing::debug!("revoking lease {old:x}: {}", super::etcd::humanize(&e)),
        }
        cl.leases.lock().unwrap().stale_live = None;
    }
    Ok(())
}
