//! Errors as HTTP answers: `{"message": "..."}` with a status that says
//! what kind of failure it was. The mapping lives here, in the API layer;
//! the core and the request flows only say what went wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_core::CoreError;
use berth_linux::LinuxError;
use serde_json::json;

use crate::error::DaemonError;

/// 404 for things that do not exist, 409 for conflicts with existing
/// state, 400 for bad requests, 507 when the store cannot be written,
/// 500 for the kernel's and berth's own failures.
pub fn status(e: &DaemonError) -> StatusCode {
    use CoreError::*;
    match e.cause() {
        DaemonError::Invalid(c) => match c {
            NoSuchNetwork(_) | NoSuchContainer(_) => StatusCode::NOT_FOUND,
            DuplicateNetwork(_) | DuplicateContainer(_) | NetworkInUse { .. } | IpInUse { .. } | AlreadyConnected { .. }
            | SubnetOverlapsNetwork { .. } | Conflict(_) | PredefinedNetwork(_) | VniInUse { .. } => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        },
        DaemonError::Conflict(_) => StatusCode::CONFLICT,
        DaemonError::NotFound(_) => StatusCode::NOT_FOUND,
        DaemonError::BadRequest(_) => StatusCode::BAD_REQUEST,
        DaemonError::Kernel(LinuxError::NotNetns(_) | LinuxError::OwnNamespace(_)) => StatusCode::BAD_REQUEST,
        DaemonError::StoreUnavailable(_) => StatusCode::INSUFFICIENT_STORAGE,
        DaemonError::ClusterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        DaemonError::Kernel(_) | DaemonError::Store(_) | DaemonError::Internal(_) | DaemonError::RollbackFailed { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// An error answered as `{"message": "..."}` with the right status.
pub struct ApiError(pub DaemonError);

impl<E: Into<DaemonError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (status(&self.0), Json(json!({"message": self.0.to_string()}))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let s = |e: DaemonError| status(&e).as_u16();
        assert_eq!(s(CoreError::NoSuchNetwork("x".into()).into()), 404);
        assert_eq!(s(CoreError::IpInUse { ip: "10.0.0.2".parse().unwrap(), network: "n".into() }.into()), 409);
        assert_eq!(s(CoreError::InvalidName("x y".into()).into()), 400);
        assert_eq!(s(LinuxError::NotNetns("/x".into()).into()), 400);
        assert_eq!(s(DaemonError::StoreUnavailable("disk full".into())), 507);
        assert_eq!(s(DaemonError::ClusterUnavailable("etcd://x:2379: down".into())), 503);
        let both = DaemonError::from(CoreError::DuplicateNetwork("n".into())).with_rollback(Err(DaemonError::Internal("x".into())));
        assert_eq!(s(both), 409, "a failed rollback keeps the request's own status");
    }
}
