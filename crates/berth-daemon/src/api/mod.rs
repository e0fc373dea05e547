//! The HTTP/JSON API on a Unix socket (mode 0660). Shapes follow Docker's
//! Engine API where one exists. Every handler runs its request on a blocking
//! thread: the service code does synchronous netlink and disk I/O.

mod containers;
pub mod error;
mod network_dns;
mod networks;
mod nodes;
mod policies;
mod system;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::daemon::Daemon;
use crate::error::DaemonError;

/// Request bodies larger than this are refused (413).
pub const MAX_BODY: usize = 1 << 20;

pub type Shared = Arc<Daemon>;

pub use error::ApiError;

pub type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON body with a clear error (instead of axum's plain-text rejection).
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError(DaemonError::BadRequest(format!("invalid request body: {e}"))))
}

/// Runs blocking service code off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, DaemonError> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError(DaemonError::Internal(format!("request task failed: {e}"))))?.map_err(ApiError)
}

pub fn router(d: Shared) -> Router {
    Router::new()
        .route("/_ping", get(system::ping))
        .route("/info", get(system::info))
        .route("/reconcile", post(system::reconcile))
        .route("/rules", get(system::rules))
        .route("/debug/store", get(system::store_dump))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route("/networks/{key}", get(networks::inspect).delete(networks::remove))
        .route("/networks/{key}/connect", post(networks::connect))
        .route("/networks/{key}/disconnect", post(networks::disconnect))
        .route("/networks/{key}/dns", post(network_dns::set))
        .route("/nodes", get(nodes::list))
        .route("/policies", get(policies::list).post(policies::add))
        .route("/policies/{id}", delete(policies::remove))
        .route("/containers/json", get(containers::list))
        .route("/containers/run", post(containers::run))
        .route("/containers/attach", post(containers::attach))
        .route("/containers/{key}/json", get(containers::inspect))
        .route("/containers/{key}/start", post(containers::start))
        .route("/containers/{key}/stop", post(containers::stop))
        .route("/containers/{key}/detach", post(containers::detach))
        .route("/containers/{key}/logs", get(containers::logs))
        .route("/containers/{key}", delete(containers::remove))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(d)
}
