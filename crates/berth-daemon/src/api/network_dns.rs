//! `POST /networks/{key}/dns` with `{"Servers": ["IP", ...]}`: the upstream
//! servers of the network's resolver (see `service::network_dns`); an
//! empty list goes back to the host's. 204 on success.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{blocking, parse, ApiResult, Shared};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Servers {
    #[serde(rename = "Servers")]
    servers: Vec<IpAddr>,
}

pub async fn set(State(d): State<Shared>, Path(key): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let req: Servers = parse(&body)?;
    blocking(move || d.network_set_dns(&key, &req.servers)).await?;
    Ok(StatusCode::NO_CONTENT)
}
