//! The one error type of berth-linux.

use std::io;

pub type Result<T, E = LinuxError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// A kernel request failed; `what` names it like the equivalent command.
    #[error("{what}: {source}")]
    Kernel { what: String, source: io::Error },
    #[error("{0} is not a network namespace")]
    NotNetns(String),
    #[error("{0} is the daemon's own network namespace (the host's); containers need their own")]
    OwnNamespace(String),
    #[error("nft: {0}")]
    Nft(String),
    #[error("malformed netlink reply: {0}")]
    Decode(String),
}

impl LinuxError {
    pub fn kernel(what: impl Into<String>, source: io::Error) -> Self {
        LinuxError::Kernel { what: what.into(), source }
    }

    /// The errno of a failed kernel request, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinuxError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Adds the equivalent command to an io::Error.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| LinuxError::kernel(what(), e))
    }
}
