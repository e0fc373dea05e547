//! Name matching for berth's embedded DNS, pure so it can be property-tested.
//!
//! Names are compared case-insensitively without the trailing dot. A query
//! `web` matches a container or alias `web`; `web.backend` matches `web` on
//! network `backend`; `2.0.18.172.in-addr.arpa` asks for the name of
//! 172.18.0.2.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Lowercase, without the trailing dot; None for names that cannot be ours
/// (empty, too long, or with characters container names never have).
pub fn normalize(qname: &str) -> Option<String> {
    let n = qname.strip_suffix('.').unwrap_or(qname);
    if n.is_empty() || n.len() > 253 {
        return None;
    }
    Some(n.to_ascii_lowercase())
}

/// podman's search domain (`search dns.podman` in its containers'
/// resolv.conf): `NAME.dns.podman` means `NAME`.
pub fn strip_podman_domain(name: &str) -> &str {
    name.strip_suffix(".dns.podman").filter(|n| !n.is_empty()).unwrap_or(name)
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

/// The address a reverse (PTR) IPv6 name asks for: 32 nibbles, least
/// significant first, then `ip6.arpa`.
pub fn parse_reverse_v6(name: &str) -> Option<IpAddr> {
    let body = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<&str> = body.split('.').collect();
    if nibbles.len() != 32 {
        return None;
    }
    let mut v: u128 = 0;
    for n in nibbles.iter().rev() {
        if n.len() != 1 {
            return None;
        }
        v = (v << 4) | u128::from(u8::from_str_radix(n, 16).ok()?);
    }
    Some(IpAddr::V6(Ipv6Addr::from(v)))
}

/// The address a reverse name of either family asks for.
pub fn parse_reverse(name: &str) -> Option<IpAddr> {
    parse_reverse_v4(name).or_else(|| parse_reverse_v6(name))
}

/// The reverse name of an address: `d.c.b.a.in-addr.arpa` or 32 nibbles
/// and `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::with_capacity(72);
            for b in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
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
    fn podman_domain() {
        assert_eq!(strip_podman_domain("web.dns.podman"), "web");
        assert_eq!(strip_podman_domain("web.n1"), "web.n1");
        assert_eq!(strip_podman_domain(".dns.podman"), ".dns.podman");
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
        let v6: IpAddr = "fd00:1::2".parse().unwrap();
        let r = reverse_name(v6);
        assert_eq!(r, "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa");
        assert_eq!(parse_reverse(&r), Some(v6));
        assert_eq!(parse_reverse_v6("2.0.ip6.arpa"), None);
        assert_eq!(parse_reverse_v6(&r.replacen('2', "22", 1)), None);
    }

    proptest! {
        #[test]
        fn reverse_roundtrip(a in any::<[u8; 4]>(), b in any::<[u8; 16]>()) {
            let ip = IpAddr::V4(Ipv4Addr::from(a));
            prop_assert_eq!(parse_reverse(&reverse_name(ip)), Some(ip));
            let ip = IpAddr::V6(Ipv6Addr::from(b));
            prop_assert_eq!(parse_reverse(&reverse_name(ip)), Some(ip));
        }

        #[test]
        fn matching_is_case_insensitive_and_total(s in "[a-zA-Z0-9_.-]{0,80}\\.?") {
            if let Some(n) = normalize(&s) {
                prop_assert_eq!(normalize(&s.to_ascii_uppercase()), Some(n.clone()));
                for (c, net) in split_network_suffix(&n) {
                    prop_assert_eq!(format!("{c}.{net}"), n.clone());
                }
            }
            let _ = parse_reverse(&s);
        }
    }
}
