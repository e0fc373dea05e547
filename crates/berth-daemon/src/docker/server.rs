//! The plugin socket: `POST /Plugin.Activate`, `/NetworkDriver.X`,
//! `/IpamDriver.X`, each answered with JSON of Docker's plugin content
//! type. A failure is `{"Err": "..."}` with status 500, which dockerd
//! shows the user as the error of their command; an unknown method is a
//! 404, which dockerd takes as "not implemented" where it may.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use berth_core::docker::{parse_call, CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tracing::{debug, info, warn};

use super::DockerPlugin;
use crate::error::{DaemonError, Result};

fn answer(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], v.to_string()).into_response()
}

async fn call(State(p): State<Arc<DockerPlugin>>, UrlPath(method): UrlPath<String>, body: Bytes) -> Response {
    let parsed = match parse_call(&method, &body) {
        Ok(Some(c)) => c,
        Ok(None) => return answer(StatusCode::NOT_FOUND, &json!({"Err": format!("berth does not implement {method}")})),
        Err(e) => {
            warn!("docker plugin: {e}");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, &json!({"Err": e.to_string()}));
        }
    };
    debug!("docker plugin: {method} {}", String::from_utf8_lossy(&body));
    let p2 = p.clone();
    let r = tokio::task::spawn_blocking(move || p2.handle(parsed)).await.unwrap_or_else(|e| Err(DaemonError::Internal(format!("request task failed: {e}"))));
    match r {
        Ok(v) => answer(StatusCode::OK, &v),
        Err(e) => {
            warn!("docker plugin: {method}: {e}");
            answer(StatusCode::INTERNAL_SERVER_ERROR, &json!({"Err": e.to_string()}))
        }
    }
}

pub fn router(p: Arc<DockerPlugin>) -> Router {
    Router::new().route("/{method}", post(call)).layer(DefaultBodyLimit::max(crate::api::MAX_BODY)).with_state(p)
}

/// Binds the plugin socket (replacing a stale one) and serves it in the
/// background until the process ends.
pub fn spawn(p: Arc<DockerPlugin>, socket: &Path) -> Result<()> {
    let io = |what: &str, e: std::io::Error| DaemonError::Internal(format!("docker plugin socket {}: {what}: {e}", socket.display()));
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("mkdir", e))?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(DaemonError::Conflict(format!("another plugin is listening on {}", socket.display())));
        }
        let _ = std::fs::remove_file(socket);
    }
    let listener = UnixListener::bind(socket).map_err(|e| io("listen", e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660)).map_err(|e| io("chmod", e))?;
    info!("docker network and IPAM plugin \"berth\" on unix://{}", socket.display());
    let app = router(p);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!("docker plugin server: {e}");
        }
    });
    Ok(())
}
