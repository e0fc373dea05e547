//! The CNI error object (spec section 5, "Error"): what a plugin prints on
//! stdout, with a non-zero exit, when a command fails. It is data on the
//! wire, not a Rust error enum: the codes are the spec's, so a runtime can
//! act on them (3: nothing to clean up, 11: try again later, 50/51: STATUS).

use serde_json::{json, Value};

/// Well-known error codes (0-99 are reserved by the spec).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration (the message names key and value).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist: the runtime need not clean up.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (the message names them).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure, e.g. reading stdin.
    pub const IO: u32 = 5;
    /// Failed to decode content (JSON).
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// A transient condition: the runtime should retry later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS (1.1): the plugin cannot service ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS (1.1): not available, and existing containers may have limited connectivity.
    pub const NOT_AVAILABLE_LIMITED: u32 = 51;
    /// berth's own (100+): the berth daemon refused the request; the message is its answer.
    pub const DAEMON_REFUSED: u32 = 100;
    /// berth's own: a delegated (IPAM) plugin failed; the message is its error.
    pub const DELEGATE_FAILED: u32 = 101;
    /// berth's own: the state in the kernel is not what the result says (CHECK).
    pub const CHECK_FAILED: u32 = 102;
    /// Anything else (the Go library's ErrInternal).
    pub const INTERNAL: u32 = 999;
}

/// One CNI error: `{"cniVersion", "code", "msg", "details"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError { code, msg: msg.into(), details: details.into() }
    }

    pub fn config(details: impl Into<String>) -> CniError {
        CniError::new(code::INVALID_CONFIG, "invalid network configuration", details)
    }

    pub fn decode(details: impl Into<String>) -> CniError {
        CniError::new(code::DECODE, "failed to decode content", details)
    }

    /// An unsupported field: the spec wants its key and value in the message.
    pub fn unsupported(key: &str, value: &Value) -> CniError {
        let mut v = value.to_string();
        if v.len() > 200 {
            v.truncate(v.char_indices().take_while(|(i, _)| *i < 200).last().map_or(0, |(i, c)| i + c.len_utf8()));
            v.push('…');
        }
        CniError::new(code::UNSUPPORTED_FIELD, format!("unsupported field {key:?}: {v}"), "berth's configuration keys: see docs/cni.md (network, subnet, gateway, bridge, mtu, icc, ipMasq, internal, ipv6, ...)")
    }

    pub fn env(vars: &[&str], why: &str) -> CniError {
        CniError::new(code::INVALID_ENV, format!("invalid or missing environment variables: {}", vars.join(",")), why)
    }

    /// The error object as printed, labelled with `version` (the
    /// configuration's, as the spec says).
    pub fn to_json(&self, version: &str) -> Value {
        let mut v = json!({"cniVersion": version, "code": self.code, "msg": self.msg});
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.details.is_empty() {
            write!(f, "{} (code {})", self.msg, self.code)
        } else {
            write!(f, "{}: {} (code {})", self.msg, self.details, self.code)
        }
    }
}

impl std::error::Error for CniError {}
