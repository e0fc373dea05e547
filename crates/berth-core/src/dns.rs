//! Name matching for berth's embedded DNS, pure so it can be property-tested.
//!
//! Names are compared case-insensitively without the trailing dot. A query
//! `web` matches a container or alias `web`; `web.backend` matches `web` on
//! network `backend`; `2.0.18.172.in-addr.arpa` asks for the name of
//! 172.18.0.2.

use std::net::{IpAddr, Ipv4Addr};

/// Lowercase, without the trailing dot; None for names that cannot be ours
/// (empty, too long, or with characters container names never have).
pub fn normalize(qname: &str) -> Option<String> {
    let n = qname.strip_suffix('.').unwrap_or(qname);
    if n.is_empty() || n.len() > 253 {
        return None;
    }
    Some(n.to_ascii_lowercase())
}

/// Every way to read `name` as `CONTAINER.NETWORK`: (container, network)
/// pairs, splitting at each dot (container names may contain dots too).
pub fn split_network_suffix(name: &str) -> Vec<(&str, &str)> {
    name.match_indices('.').map(|(i, _)| (&name[..i], &name[i + 1..])).filter(|(a, b)| !a.is_empty() && !b.is_empty()).collect()
}

/// The address a reverse (PTR) IPv4 name asks for.
pub fn parse_reverse_v4(name: &str) -> Option<IpAddr> {
    let body = name.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<&str> = body.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, p) in parts.iter().rev().enumerate() {
        if p.is_empty() || p.len() > 3 || (p.len() > 1 && p.starts_with('0')) {
            return None;
        }
        octets[i] = p.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// The reverse name of an IPv4 address.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize("Web.Backend.").as_deref(), Some("web.backend"));
        assert_eq!(normalize("."), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn splits_suffixes() {
        assert_eq!(split_network_suffix("web.back.end"), vec![("web", "back.end"), ("web.back", "end")]);
        assert!(split_network_suffix("web").is_empty());
        assert!(split_network_suffix("web.").is_empty());
    }

    #[test]
    fn reverse_names() {
        assert_eq!(parse_reverse_v4("2.0.18.172.in-addr.arpa"), Some("172.18.0.2".parse().unwrap()));
        assert_eq!(parse_reverse_v4("2.0.18.in-addr.arpa"), None);
        assert_eq!(parse_reverse_v4("256.0.18.172.in-addr.arpa"), None);
        assert_eq!(parse_reverse_v4("02.0.18.172.in-addr.arpa"), None);
        assert_eq!(reverse_name("172.18.0.2".parse().unwrap()), "2.0.18.172.in-addr.arpa");
    }

    proptest! {
        #[test]
        fn reverse_roundtrip(a in any::<[u8; 4]>()) {
            let ip = Ipv4Addr::from(a);
            prop_assert_eq!(parse_reverse_v4(&reverse_name(ip)), Some(IpAddr::V4(ip)));
        }

        #[test]
        fn matching_is_case_insensitive_and_total(s in "[a-zA-Z0-9_.-]{0,80}\\.?") {
            if let Some(n) = normalize(&s) {
                prop_assert_eq!(normalize(&s.to_ascii_uppercase()), Some(n.clone()));
                for (c, net) in split_network_suffix(&n) {
                    prop_assert_eq!(format!("{c}.{net}"), n.clone());
                }
            }
            let _ = parse_reverse_v4(&s);
        }
    }
}
