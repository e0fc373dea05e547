//! The one error type of berth-daemon. Each variant maps to an HTTP status;
//! its text is what the CLI prints after "Error response from daemon: ".

use berth_core::CoreError;
use berth_linux::LinuxError;

pub type Result<T, E = DaemonError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Invalid(#[from] CoreError),
    #[error(transparent)]
    Kernel(#[from] LinuxError),
    #[error("store: {0}")]
    Store(String),
    /// The store cannot be written (a full disk, most often); the text
    /// says where and what to do. Reads keep working meanwhile.
    #[error("{0}")]
    StoreUnavailable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
}

impl DaemonError {
    pub fn status(&self) -> u16 {
        match self {
            DaemonError::Invalid(e) => e.http_status(),
            DaemonError::Conflict(_) => 409,
            DaemonError::NotFound(_) => 404,
            DaemonError::BadRequest(_) => 400,
            DaemonError::Kernel(LinuxError::NotNetns(_)) => 400,
            // 507 Insufficient Storage: the request changed nothing and can be retried.
            DaemonError::StoreUnavailable(_) => 507,
            DaemonError::Kernel(_) | DaemonError::Store(_) | DaemonError::Internal(_) => 500,
        }
    }
}
