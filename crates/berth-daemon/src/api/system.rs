//! `/_ping`, `/info`, `/reconcile`, `/rules`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{blocking, ApiResult, Shared};

pub async fn ping() -> &'static str {
    "OK"
}

pub async fn info(State(d): State<Shared>) -> ApiResult<Json<Value>> {
    let v = blocking(move || {
        let st = d.st();
        let default = st.networks.values().find(|n| n.predefined);
        Ok(json!({
            "Containers": st.containers.len(),
            "ContainersRunning": st.containers.values().filter(|c| c.state.status.is_live()).count(),
            "Networks": st.networks.len(),
            "IPForward": d.forwarding_enabled(),
            "IPv6Forward": d.ipv6_forwarding_enabled(),
            "IPForwardManaged": d.cfg.ip_forward,
            "AcceptRaKept": *d.host.ra_kept.lock().unwrap(),
            "Icc": d.cfg.icc,
            "DefaultNetwork": default.map(|n| json!({
                "Name": n.name,
                "Bridge": n.bridge(),
                "Subnet": n.ipv4().map(|c| c.subnet.to_string()),
                "Gateway": n.ipv4().map(|c| c.gateway.to_string()),
                "SubnetV6": n.ipv6().map(|c| c.subnet.to_string()),
                "GatewayV6": n.ipv6().map(|c| c.gateway.to_string()),
            })),
            "Root": d.cfg.root,
            "ExecRoot": d.cfg.exec_root,
            "Socket": d.cfg.socket,
            "NftTable": "inet berth",
            "SocketTranslation": d.kernel.socket_translation(),
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            // The network namespace this daemon serves (inode of its
            // /proc/self/ns/net): front ends check it is their own.
            "NetnsId": berth_linux::netns::own_id(),
            "Pid": std::process::id(),
            "ProcessesStarted": berth_linux::PROCESSES_STARTED.load(std::sync::atomic::Ordering::Relaxed),
            "Cluster": d.cluster.as_ref().map(|cl| {
                let s = cl.status.lock().unwrap().clone();
                json!({
                    "Store": cl.desc,
                    "Node": cl.node(),
                    "Advertise": cl.underlay.addr.to_string(),
                    "Underlay": cl.underlay.dev,
                    "Connected": s.connected,
                    "Error": s.error,
                    "StoreRequests": cl.requests.load(std::sync::atomic::Ordering::Relaxed),
                    "StoreBytes": cl.bytes.load(std::sync::atomic::Ordering::Relaxed),
                })
            }),
        }))
    })
    .await?;
    Ok(Json(v))
}

pub async fn reconcile(State(d): State<Shared>) -> ApiResult<Json<Value>> {
    let changes = blocking(move || d.reconcile()).await?;
    Ok(Json(json!({"Changes": changes})))
}

pub async fn rules(State(d): State<Shared>) -> ApiResult<String> {
    blocking(move || Ok(d.kernel.list_table()?.unwrap_or_default())).await
}

/// Every record of the store, one per line (for tests that check a failed
/// request changed nothing).
pub async fn store_dump(State(d): State<Shared>) -> ApiResult<String> {
    blocking(move || d.store.dump()).await
}
