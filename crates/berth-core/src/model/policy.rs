//! Source-address policies: `berth policy deny|allow --from CIDR --to CONTAINER[:PORT[/PROTO]]`.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::port::Proto;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAction {
    Allow,
    Deny,
}

impl PolicyAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            PolicyAction::Allow => "allow",
            PolicyAction::Deny => "deny",
        }
    }
}

/// What a policy protects: a container by name (so it applies again when a
/// container of that name is re-created), optionally one port range and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTarget {
    pub container: String,
    pub ports: Option<(u16, u16)>,
    pub proto: Option<Proto>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    pub action: PolicyAction,
    /// Sources of either family; a policy applies to the container's
    /// addresses of the same family.
    pub from: IpNet,
    pub to: PolicyTarget,
}
