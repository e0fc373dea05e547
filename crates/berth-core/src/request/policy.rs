//! `POST /policies`: `berth policy deny|allow --from CIDR --to CONTAINER[:PORT[-END][/PROTO]]`.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{Policy, PolicyAction, PolicyTarget, Proto};
use crate::names::validate_name;
use crate::{CoreError, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PolicyRequest {
    pub action: String,
    pub from: String,
    pub to: String,
}

/// Validates a policy request (the container need not exist yet: policies
/// name containers and apply whenever one of that name runs). The source
/// is an address or a CIDR of either family.
pub fn validate_policy(req: &PolicyRequest, id: &str) -> Result<Policy> {
    let action = match req.action.as_str() {
        "deny" => PolicyAction::Deny,
        "allow" => PolicyAction::Allow,
        other => return Err(CoreError::InvalidPolicyAction(other.to_string())),
    };
    let from = req.from.trim();
    let from: IpNet = if from.contains('/') { crate::subnets::parse_cidr_any(from)? } else { IpNet::from(crate::subnets::parse_ip(from)?) };
    let (container, rest) = match req.to.split_once(':') {
        Some((c, r)) => (c, Some(r)),
        None => (req.to.as_str(), None),
    };
    validate_name(container)?;
    let (ports, proto) = match rest {
        None => (None, None),
        Some(r) => {
            let (p, proto) = match r.split_once('/') {
                Some((p, "tcp")) => (p, Some(Proto::Tcp)),
                Some((p, "udp")) => (p, Some(Proto::Udp)),
                Some((_, other)) => return Err(CoreError::InvalidPort { spec: req.to.clone(), reason: format!("unknown protocol {other:?}") }),
                None => (r, Some(Proto::Tcp)),
            };
            let range = crate::ports::parse_expose(&format!("{p}/tcp"))
                .map_err(|_| CoreError::InvalidPort { spec: req.to.clone(), reason: format!("{p:?} is not a port or port range") })?;
            (Some((range[0].port, range[range.len() - 1].port)), proto)
        }
    };
    Ok(Policy { id: id.to_string(), action, from: from.trunc(), to: PolicyTarget { container: container.to_string(), ports, proto } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(a: &str, f: &str, t: &str) -> PolicyRequest {
        PolicyRequest { action: a.into(), from: f.into(), to: t.into() }
    }

    #[test]
    fn parses_targets() {
        let p = validate_policy(&req("deny", "10.200.55.3", "fourcentos:80"), "x").unwrap();
        assert_eq!(p.from.to_string(), "10.200.55.3/32");
        assert_eq!((p.to.container.as_str(), p.to.ports, p.to.proto), ("fourcentos", Some((80, 80)), Some(Proto::Tcp)));
        let p = validate_policy(&req("allow", "10.0.0.0/8", "db"), "x").unwrap();
        assert_eq!((p.to.ports, p.to.proto), (None, None));
        let p = validate_policy(&req("deny", "10.1.2.3/16", "dns:53/udp"), "x").unwrap();
        assert_eq!(p.from.to_string(), "10.1.0.0/16");
        assert_eq!(p.to.proto, Some(Proto::Udp));
        let p = validate_policy(&req("deny", "10.1.2.3", "web:8000-8010"), "x").unwrap();
        assert_eq!(p.to.ports, Some((8000, 8010)));
        let p = validate_policy(&req("deny", "2001:db8::1", "web:80"), "x").unwrap();
        assert_eq!(p.from.to_string(), "2001:db8::1/128", "IPv6 sources");
        let p = validate_policy(&req("allow", "2001:db8:1:2::5/48", "web"), "x").unwrap();
        assert_eq!(p.from.to_string(), "2001:db8:1::/48");
    }

    #[test]
    fn refuses_bad_policies() {
        for (a, f, t) in [("drop", "10.0.0.1", "x"), ("deny", "nonsense", "x"), ("deny", "::1/129", "x"), ("deny", "10.0.0.1", "x;y"), ("deny", "10.0.0.1", "x:0"), ("deny", "10.0.0.1", "x:80/icmp"), ("deny", "10.0.0.1", "x:90-80")] {
            assert!(validate_policy(&req(a, f, t), "x").is_err(), "{a} {f} {t}");
        }
        assert_eq!(validate_policy(&req("drop", "10.0.0.1", "x"), "x"), Err(CoreError::InvalidPolicyAction("drop".into())));
    }
}
