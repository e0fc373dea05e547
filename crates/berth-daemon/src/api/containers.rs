//! `/containers...`

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use berth_core::request::{AttachRequest, RunRequest};
use berth_core::view::{container_inspect, container_summary, endpoints_view};
use serde_json::{json, Value};

use super::{blocking, parse, ApiError, ApiResult, Shared};
use crate::error::DaemonError;

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("1" | "true"))
}

pub async fn list(State(d): State<Shared>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<Value>> {
    let all = flag(&q, "all");
    let v = blocking(move || {
        let st = d.st();
        let now = crate::util::now();
        Ok(json!(st
            .containers
            .values()
            .filter(|c| all || c.state.status.is_live())
            .map(|c| container_summary(c, &st.networks, now))
            .collect::<Vec<_>>()))
    })
    .await?;
    Ok(Json(v))
}

pub async fn run(State(d): State<Shared>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: RunRequest = parse(&body)?;
    let id = blocking(move || d.run(&req)).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))))
}

/// Answers with the endpoints as made (`Endpoints`, see
/// `endpoints_view`), so a front end needs no second request to report them.
pub async fn attach(State(d): State<Shared>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: AttachRequest = parse(&body)?;
    let (id, eps) = blocking(move || {
        let id = d.attach(&req)?;
        let st = d.st();
        let eps = st.containers.get(&id).map(|c| endpoints_view(c, &st.networks, crate::daemon::Daemon::dns_addresses));
        Ok((id, eps))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Endpoints": eps.unwrap_or(json!([]))}))))
}

pub async fn inspect(State(d): State<Shared>, Path(key): Path<String>) -> ApiResult<Json<Value>> {
    let v = blocking(move || {
        let st = d.st();
        Ok(container_inspect(st.container(&key)?, &st.networks))
    })
    .await?;
    Ok(Json(v))
}

pub async fn start(State(d): State<Shared>, Path(key): Path<String>) -> ApiResult<StatusCode> {
    blocking(move || d.start(&key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stop(State(d): State<Shared>, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<StatusCode> {
    let t = match q.get("t") {
        Some(v) => v.parse::<u64>().map_err(|_| ApiError(DaemonError::BadRequest(format!("invalid timeout {v:?}"))))?,
        None => 10,
    };
    blocking(move || d.stop(&key, Duration::from_secs(t))).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn detach(State(d): State<Shared>, Path(key): Path<String>) -> ApiResult<StatusCode> {
    blocking(move || d.detach(&key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(State(d): State<Shared>, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<StatusCode> {
    let force = flag(&q, "force");
    blocking(move || d.remove(&key, force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The log from byte `since` on. Headers tell the client whether more may
/// come (`X-Berth-State`) and the exit code once it has exited; `berth run`
/// and `berth logs -f` poll this.
pub async fn logs(State(d): State<Shared>, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<(HeaderMap, Vec<u8>)> {
    let since: u64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    let (bytes, state, code) = blocking(move || {
        let (id, status, code) = {
            let st = d.st();
            let c = st.container(&key)?;
            (c.id.clone(), c.state.status, c.state.exit_code)
        };
        let mut out = Vec::new();
        if let Ok(mut f) = std::fs::File::open(d.log_path(&id)) {
            let _ = f.seek(SeekFrom::Start(since));
            let _ = f.take(4 << 20).read_to_end(&mut out);
        }
        Ok((out, status, code))
    })
    .await?;
    let mut h = HeaderMap::new();
    h.insert("x-berth-state", HeaderValue::from_static(if state.is_live() { "running" } else { "exited" }));
    if let Some(c) = code.filter(|_| !state.is_live()) {
        h.insert("x-berth-exit-code", HeaderValue::from_str(&c.to_string()).unwrap());
    }
    Ok((h, bytes))
}
