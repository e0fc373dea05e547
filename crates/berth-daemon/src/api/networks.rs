//! `/networks...`

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use berth_core::request::{NetworkConnect, NetworkCreate};
use berth_core::view::network_inspect;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, parse, ApiResult, Shared};

pub async fn list(State(d): State<Shared>) -> ApiResult<Json<Value>> {
    let v = blocking(move || {
        let st = d.st();
        Ok(json!(st.networks.values().map(|n| network_inspect(n, st.containers.values())).collect::<Vec<_>>()))
    })
    .await?;
    Ok(Json(v))
}

pub async fn create(State(d): State<Shared>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: NetworkCreate = parse(&body)?;
    let n = blocking(move || d.network_create(&req)).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": n.id, "Name": n.name}))))
}

pub async fn inspect(State(d): State<Shared>, Path(key): Path<String>) -> ApiResult<Json<Value>> {
    let v = blocking(move || {
        let st = d.st();
        Ok(network_inspect(st.network(&key)?, st.containers.values()))
    })
    .await?;
    Ok(Json(v))
}

pub async fn remove(State(d): State<Shared>, Path(key): Path<String>) -> ApiResult<StatusCode> {
    blocking(move || d.network_remove(&key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune(State(d): State<Shared>) -> ApiResult<Json<Value>> {
    let v = blocking(move || d.network_prune()).await?;
    Ok(Json(json!({"NetworksDeleted": v})))
}

pub async fn connect(State(d): State<Shared>, Path(key): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let req: NetworkConnect = parse(&body)?;
    blocking(move || d.network_connect(&key, &req)).await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Disconnect {
    #[serde(rename = "Container")]
    container: String,
    #[serde(rename = "Force", default)]
    _force: bool,
}

pub async fn disconnect(State(d): State<Shared>, Path(key): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let req: Disconnect = parse(&body)?;
    blocking(move || d.network_disconnect(&key, &req.container)).await?;
    Ok(StatusCode::OK)
}
