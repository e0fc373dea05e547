//! Parsing of `-p`/`--publish` and `--expose` specifications (Docker's forms).
//!
//! `-p [HOSTIP:][HOSTPORT[-END]:]CPORT[-END][/tcp|/udp]`, where HOSTIP may be
//! an IPv6 address in brackets. A host range with a single container port
//! means "any one free host port of that range", as in Docker.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{PortProto, Proto};
use crate::{CoreError, Result};

/// One `-p` argument, before host ports are allocated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishSpec {
    pub host_ip: Option<IpAddr>,
    /// None: random host ports from the ephemeral range.
    pub host_ports: Option<(u16, u16)>,
    pub container_ports: (u16, u16),
    pub proto: Proto,
}

impl PublishSpec {
    pub fn container_count(&self) -> u32 {
        (self.container_ports.1 - self.container_ports.0) as u32 + 1
    }
}

fn bad(spec: &str, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidPort { spec: spec.to_string(), reason: reason.into() }
}

fn parse_proto(spec: &str, s: &str) -> Result<Proto> {
    match s {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        other => Err(bad(spec, format!("unknown protocol {other:?} (use tcp or udp)"))),
    }
}

fn parse_port(spec: &str, s: &str) -> Result<u16> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) && !s.starts_with('+') => Ok(p as u16),
        _ => Err(bad(spec, format!("{s:?} is not a port number between 1 and 65535"))),
    }
}

/// `P` or `P1-P2` with P1 <= P2.
fn parse_range(spec: &str, s: &str) -> Result<(u16, u16)> {
    match s.split_once('-') {
        None => {
            let p = parse_port(spec, s)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let (a, b) = (parse_port(spec, a)?, parse_port(spec, b)?);
            if a > b {
                return Err(bad(spec, format!("range {a}-{b} ends before it starts")));
            }
            Ok((a, b))
        }
    }
}

/// Splits off `/proto`, defaulting to tcp.
fn split_proto<'a>(spec: &str, s: &'a str) -> Result<(&'a str, Proto)> {
    match s.rsplit_once('/') {
        Some((rest, p)) => Ok((rest, parse_proto(spec, p)?)),
        None => Ok((s, Proto::Tcp)),
    }
}

/// Parses one `-p` argument.
pub fn parse_publish(spec: &str) -> Result<PublishSpec> {
    if spec.is_empty() {
        return Err(bad(spec, "empty"));
    }
    let (body, proto) = split_proto(spec, spec)?;
    // An IPv6 host address is bracketed: [::1]:8080:80
    let (host_ip, rest) = if let Some(stripped) = body.strip_prefix('[') {
        let (ip, rest) = stripped.split_once("]:").ok_or_else(|| bad(spec, "unterminated [IPv6] address"))?;
        let ip: IpAddr = ip.parse().map_err(|_| bad(spec, format!("{ip:?} is not an IP address")))?;
        (Some(ip), rest)
    } else {
        let parts: Vec<&str> = body.split(':').collect();
        match parts.len() {
            1 | 2 => (None, body),
            3 => {
                let ip: IpAddr = parts[0].parse().map_err(|_| bad(spec, format!("{:?} is not an IP address", parts[0])))?;
                (Some(ip), &body[parts[0].len() + 1..])
            }
            _ => return Err(bad(spec, "too many ':' (use [IPv6]:HOSTPORT:PORT for IPv6)")),
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (if h.is_empty() { None } else { Some(parse_range(spec, h)?) }, parse_range(spec, c)?),
        None if host_ip.is_some() => return Err(bad(spec, "missing container port")),
        None => (None, parse_range(spec, rest)?),
    };
    // 0.0.0.0 and :: mean "every address", as in Docker.
    let host_ip = host_ip.filter(|ip| !ip.is_unspecified());
    if let Some((h1, h2)) = host {
        let (c1, c2) = container;
        if c1 != c2 && (h2 - h1) != (c2 - c1) {
            return Err(bad(spec, format!("host range {h1}-{h2} and container range {c1}-{c2} differ in length")));
        }
    }
    Ok(PublishSpec { host_ip, host_ports: host, container_ports: container, proto })
}

/// Parses one `--expose` argument: `PORT[-END][/PROTO]`.
pub fn parse_expose(spec: &str) -> Result<Vec<PortProto>> {
    let (body, proto) = split_proto(spec, spec)?;
    let (a, b) = parse_range(spec, body)?;
    Ok((a..=b).map(|port| PortProto { port, proto }).collect())
}

/// `--expose` and `-p` arguments of one request: exposed ports sorted and
/// without repeats, publish specs in order.
pub fn parse_ports(expose: &[String], publish: &[String]) -> Result<(Vec<PortProto>, Vec<PublishSpec>)> {
    let mut e = Vec::new();
    for x in expose {
        e.extend(parse_expose(x)?);
    }
    e.sort();
    e.dedup();
    let p = publish.iter().map(|x| parse_publish(x)).collect::<Result<Vec<_>>>()?;
    Ok((e, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> PublishSpec {
        parse_publish(s).unwrap()
    }

    #[test]
    fn docker_forms() {
        assert_eq!(p("80"), PublishSpec { host_ip: None, host_ports: None, container_ports: (80, 80), proto: Proto::Tcp });
        assert_eq!(p("32768:80").host_ports, Some((32768, 32768)));
        let s = p("127.0.0.1:8080:80/udp");
        assert_eq!((s.host_ip, s.host_ports, s.proto), (Some("127.0.0.1".parse().unwrap()), Some((8080, 8080)), Proto::Udp));
        let s = p("127.0.0.1::80");
        assert_eq!((s.host_ip.is_some(), s.host_ports), (true, None));
        assert_eq!(p("0.0.0.0:8080:80").host_ip, None);
        let s = p("8000-8009:9000-9009");
        assert_eq!((s.host_ports, s.container_ports), (Some((8000, 8009)), (9000, 9009)));
        assert_eq!(p("8000-8009:80").container_count(), 1);
        assert_eq!(p("[::1]:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p("80-82").container_count(), 3);
    }

    #[test]
    fn refusals() {
        for s in ["", "0", "65536", "80/sctp", "a:80", "8080:", "1.2.3.4:80", "1:2:3:4", "90-80", "8000-8001:80-89", "x.y.z.w:1:2", "[::1:80:80", "-1", "+80"] {
            assert!(matches!(parse_publish(s), Err(CoreError::InvalidPort { .. })), "{s:?} should fail");
        }
    }

    #[test]
    fn expose() {
        assert_eq!(parse_expose("80").unwrap(), vec![PortProto { port: 80, proto: Proto::Tcp }]);
        assert_eq!(parse_expose("53/udp").unwrap()[0].proto, Proto::Udp);
        assert_eq!(parse_expose("7000-7002").unwrap().len(), 3);
        assert!(parse_expose("0").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_publish(&s);
            let _ = parse_expose(&s);
        }

        #[test]
        fn roundtrip(hp in 1u16..60000, cp in 1u16..60000, n in 0u16..100, udp in any::<bool>()) {
            let proto = if udp { "udp" } else { "tcp" };
            let s = format!("{}-{}:{}-{}/{}", hp, hp + n.min(65535 - hp), cp, cp + n.min(65535 - hp).min(65535 - cp), proto);
            if let Ok(spec) = parse_publish(&s) {
                prop_assert_eq!(spec.host_ports.unwrap().0, hp);
                prop_assert_eq!(spec.container_ports.0, cp);
            }
        }
    }
}
