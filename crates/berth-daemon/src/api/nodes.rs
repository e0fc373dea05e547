//! `/nodes`: the cluster's hosts as this host sees them (`berth node ls`).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{blocking, ApiResult, Shared};
use crate::error::DaemonError;

/// Every host the store knows: alive (on its liveness lease) or not (only
/// its `nodeinfo` and blocks are left), with its address blocks per
/// network and how many containers it has on global networks.
pub async fn list(State(d): State<Shared>) -> ApiResult<Json<Value>> {
    let v = blocking(move || {
        let cl = d.cluster.clone().ok_or_else(|| DaemonError::BadRequest("this host is not in a cluster (start the daemon with --cluster-store)".into()))?;
        let me = cl.node();
        let status = cl.status.lock().unwrap().clone();
        let v = cl.view();
        let mut names: std::collections::BTreeSet<String> = v.nodes.keys().chain(v.infos.keys()).cloned().collect();
        names.extend(v.blocks.values().flat_map(|m| m.values().cloned()));
        let net_name = |id: &str| v.networks.get(id).map(|n| n.name.clone()).unwrap_or_else(|| id[..12.min(id.len())].to_string());
        let nodes: Vec<Value> = names
            .iter()
            .map(|n| {
                let rec = v.nodes.get(n);
                let info = v.infos.get(n);
                let blocks: Vec<String> = v
                    .blocks
                    .iter()
                    .flat_map(|(net, m)| m.iter().filter(|(_, h)| *h == n).map(move |(b, _)| (net.clone(), *b)))
                    .map(|(net, b)| format!("{}:{b}", net_name(&net)))
                    .collect();
                let containers: std::collections::BTreeSet<&str> =
                    v.endpoints.iter().filter(|((_, node, _), _)| node == n).map(|(_, r)| r.container.as_str()).collect();
                json!({
                    "Name": n,
                    "Self": *n == me,
                    "Alive": rec.is_some(),
                    "Advertise": rec.map(|r| r.advertise).or(info.map(|i| i.advertise)).map(|a| a.to_string()),
                    "Started": rec.map(|r| r.started),
                    "LastSeen": info.map(|i| i.last_seen),
                    "Blocks": blocks,
                    "Containers": containers.len(),
                })
            })
            .collect();
        Ok(json!({
            "Store": cl.desc,
            "Connected": status.connected,
            "Error": status.error,
            "Since": status.since,
            "Revision": v.revision,
            "Self": me,
            "Nodes": nodes,
        }))
    })
    .await?;
    Ok(Json(v))
}
