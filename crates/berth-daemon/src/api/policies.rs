//! `/policies...`

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use berth_core::model::Policy;
use berth_core::request::PolicyRequest;
use serde_json::{json, Value};

use super::{blocking, parse, ApiResult, Shared};

fn view(p: &Policy, applies: usize) -> Value {
    let mut to = p.to.container.clone();
    if let Some((a, b)) = p.to.ports {
        to.push_str(&if a == b { format!(":{a}") } else { format!(":{a}-{b}") });
    }
    if let Some(proto) = p.to.proto {
        to.push_str(&format!("/{proto}"));
    }
    json!({"Id": p.id, "Action": p.action.as_str(), "From": p.from.to_string(), "To": to, "Container": p.to.container, "Live": applies})
}

pub async fn list(State(d): State<Shared>) -> ApiResult<Json<Value>> {
    let v = blocking(move || {
        let st = d.st();
        Ok(json!(st
            .policies
            .iter()
            .map(|p| view(p, st.container_by_name(&p.to.container).filter(|c| c.state.status.is_live()).map_or(0, |_| 1)))
            .collect::<Vec<_>>()))
    })
    .await?;
    Ok(Json(v))
}

pub async fn add(State(d): State<Shared>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: PolicyRequest = parse(&body)?;
    let p = blocking(move || d.policy_add(&req)).await?;
    Ok((StatusCode::CREATED, Json(view(&p, 0))))
}

pub async fn remove(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    blocking(move || d.policy_remove(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
