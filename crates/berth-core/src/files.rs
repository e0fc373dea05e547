//! Files a `berth run` container sees in place of the host's: `/etc/hosts`
//! and `/etc/resolv.conf`. Rendered here, bind-mounted by the shim.

use std::net::IpAddr;

/// One line of extra hosts: `IP NAME...`.
pub struct HostsEntry {
    pub ip: IpAddr,
    pub names: Vec<String>,
}

/// The container's `/etc/hosts`: loopback, its own addresses under its
/// hostname, then links (`IP ALIAS NAME`).
pub fn render_hosts(hostname: &str, own: &[IpAddr], extra: &[HostsEntry]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for e in extra {
        s.push_str(&format!("{}\t{}\n", e.ip, e.names.join(" ")));
    }
    for ip in own {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

/// The container's `/etc/resolv.conf`, derived from the host's as Docker
/// does: nameservers on host loopback cannot be reached from a container
/// and are dropped; if none remain, Google's public resolvers are used
/// (Docker's fallback). `override_ns` (`--dns`) replaces the nameservers.
pub fn render_resolv(host: &str, override_ns: &[IpAddr]) -> String {
    let mut out = String::new();
    let mut ns = Vec::new();
    for line in host.lines() {
        let t = line.trim();
        let mut words = t.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                    if !ip.is_loopback() {
                        ns.push(ip);
                    }
                }
            }
            Some("search") | Some("domain") | Some("options") => {
                out.push_str(t);
                out.push('\n');
            }
            _ => {}
        }
    }
    if !override_ns.is_empty() {
        ns = override_ns.to_vec();
    }
    if ns.is_empty() {
        ns = vec!["8.8.8.8".parse().unwrap(), "8.8.4.4".parse().unwrap()];
    }
    let mut s: String = ns.iter().map(|n| format!("nameserver {n}\n")).collect();
    s.push_str(&out);
    s
}

/// resolv.conf of a container on a user-defined network: berth's resolver
/// for that network (which forwards what is not a container name to the
/// `--dns` servers or the host's) on each of its gateways, then the
/// host's search and options.
pub fn render_resolv_embedded(host: &str, servers: &[IpAddr]) -> String {
    let mut s: String = servers.iter().map(|ip| format!("nameserver {ip}\n")).collect();
    for line in host.lines() {
        let t = line.trim();
        if t.starts_with("search ") || t.starts_with("domain ") || t.starts_with("options ") {
            s.push_str(t);
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_has_own_name_and_links() {
        let h = render_hosts(
            "web",
            &["172.17.0.3".parse().unwrap()],
            &[HostsEntry { ip: "172.17.0.2".parse().unwrap(), names: vec!["db".into(), "mysql".into()] }],
        );
        assert!(h.contains("172.17.0.3\tweb\n"));
        assert!(h.contains("172.17.0.2\tdb mysql\n"));
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn resolv_embedded() {
        let r = render_resolv_embedded("nameserver 127.0.0.53\nsearch corp\n", &["172.18.0.1".parse().unwrap()]);
        assert_eq!(r, "nameserver 172.18.0.1\nsearch corp\n");
        let r = render_resolv_embedded("", &["172.18.0.1".parse().unwrap(), "fd00::1".parse().unwrap()]);
        assert_eq!(r, "nameserver 172.18.0.1\nnameserver fd00::1\n");
    }

    #[test]
    fn resolv_drops_loopback() {
        let r = render_resolv("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.org\n", &[]);
        assert_eq!(r, "nameserver 10.0.0.2\nsearch example.org\n");
        let r = render_resolv("nameserver 127.0.0.53\n", &[]);
        assert!(r.contains("8.8.8.8"));
        let r = render_resolv("nameserver 10.0.0.2\n", &["1.1.1.1".parse().unwrap()]);
        assert_eq!(r, "nameserver 1.1.1.1\n");
    }
}
