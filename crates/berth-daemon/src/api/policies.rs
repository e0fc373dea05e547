//! `/policies...`

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use berth_core::model::Policy;
use berth_core::request::PolicyRequest;
use serde_json::{json, Value};

use super::{blocking, parse, ApiResult, Shared};

fn view(p: &Policy, applies: usize, scope: &str) -> Value {
    let mut to = p.to.container.clone();
    if let Some((a, b)) = p.to.ports {
        to.push_str(&if a == b { format!(":{a}") } else { format!(":{a}-{b}") });
    }
    if let Some(proto) = p.to.proto {
        to.push_str(&format!("/{proto}"));
    }
    json!({"Id": p.id, "Action": p.action.as_str(), "From": p.from.to_string(), "To": to, "Container": p.to.container, "Live": applies, "Scope": scope})
}

pub async fn list(State(d): State<Shared>) -> ApiResult<Json<Value>> {
    let v = blocking(move || {
        let st = d.st();
        // Live: containers of that name running here (and, for a cluster
        // policy, on the other hosts).
        let live = |name: &str| st.named(&name.to_ascii_lowercase()).iter().filter(|c| c.name == name && c.state.status.is_live()).count();
        let mut v: Vec<Value> = st.policies.iter().map(|p| view(p, live(&p.to.container), "local")).collect();
        v.extend(st.cluster_policies.iter().map(|p| view(p, live(&p.to.container), "global")));
        Ok(json!(v))
    })
    .await?;
    Ok(Json(v))
}

pub async fn add(State(d): State<Shared>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: PolicyRequest = parse(&body)?;
    let d2 = d.clone();
    let p = blocking(move || d.policy_add(&req)).await?;
    let scope = if d2.cluster.is_some() { "global" } else { "local" };
    Ok((StatusCode::CREATED, Json(view(&p, 0, scope))))
}

pub async fn remove(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    blocking(move || d.policy_remove(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
