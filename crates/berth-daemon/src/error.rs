//! The one error type of berth-daemon. Its text is what the CLI prints
//! after "Error response from daemon: "; which HTTP status each variant
//! gets is decided in the API layer (`api::error`).

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
    /// The cluster store could not be reached or refused; the text names
    /// the store (`etcd://HOST:PORT`) and says why.
    #[error("{0}")]
    ClusterUnavailable(String),
    /// A request failed, and undoing what it had done failed too: both
    /// are reported, so nobody is left guessing what state things are in.
    #[error("{error} (undoing it failed too: {rollback}; `berth reconcile` puts the kernel right)")]
    RollbackFailed { error: Box<DaemonError>, rollback: Box<DaemonError> },
}

impl DaemonError {
    /// `self`, or — when the undo `rollback` failed too — both.
    pub fn with_rollback(self, rollback: Result<()>) -> DaemonError {
        match rollback {
            Ok(()) => self,
            Err(r) => DaemonError::RollbackFailed { error: Box::new(self), rollback: Box::new(r) },
        }
    }

    /// The request's own error, under any rollback failure.
    pub fn cause(&self) -> &DaemonError {
        match self {
            DaemonError::RollbackFailed { error, .. } => error.cause(),
            e => e,
        }
    }
}
