//! Real dockerd (Debian's 20.10, its own containerd and runc) with berth
//! as its network and IPAM plugin, end to end: `docker network create -d
//! berth --ipam-driver berth`, `docker run -p`, names through Docker's
//! resolver, `docker rm -f` leaving nothing behind. Each test runs in its
//! own network and mount namespace with dockerd's state under the sandbox
//! directory (`docker/harness.rs`); they skip when not root or docker is
//! missing.

mod common;
#[path = "docker/harness.rs"]
mod harness;

use harness::{curl, get, DockerBox};
use serde_json::Value;

const HELLO: &str = "hello-from-container";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn dk_network_run_publish_names_and_rm() {
    let Some(b) = DockerBox::new(false) else { return };
    let before = b.s.kernel_view();
    b.s.outside(&[]);
    let nid = b.network("dn1", &["--subnet", "10.66.0.0/24", "--gateway", "10.66.0.1"]);
    // The Docker network is a berth network with Docker's id.
    let n = &json(&b.s.ok(&["network", "inspect", &nid]))[0];
    assert_eq!(n["Id"], nid.as_str());
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.66.0.0/24");
    b.httpd("web", &["--network", "dn1", "-p", "8080:80"], &[80]);
    let ip = b.ip("web", "dn1");
    assert!(ip.starts_with("10.66.0."), "{ip}");
    // berth made the interface and the port: reachable from the host,
    // from another machine, and from another container by name.
    assert_eq!(curl(None, "http://127.0.0.1:8080/index.html").as_deref(), Some(HELLO), "from the host\n{}", b.s.daemon_log());
    assert_eq!(curl(Some("outside"), "http://10.99.0.1:8080/index.html").as_deref(), Some(HELLO), "from another machine");
    b.run("cli", &["--network", "dn1"], "true");
    assert_eq!(get(&b, "cli", &ip, 80).as_deref(), Some(HELLO), "by address");
    assert_eq!(get(&b, "cli", "web", 80).as_deref(), Some(HELLO), "by name, through Docker's resolver");
    // No docker-proxy.
    assert!(!common::ok("pgrep -x docker-proxy"), "a docker-proxy runs");
    // The container's default route is dockerd's, via berth's gateway.
    let route = String::from_utf8_lossy(&b.exec("web", "ip route show default").stdout).into_owned();
    assert!(route.contains("via 10.66.0.1"), "{route}");
    assert_eq!(b.s.ok(&["ps", "-q"]).lines().count(), 2);
    // rm -f and network rm leave nothing of berth's behind.
    b.ok(&["rm", "-f", "web", "cli"]);
    b.eventually("berth's containers gone", || b.s.ok(&["ps", "-a", "-q"]).trim().is_empty());
    b.ok(&["network", "rm", "dn1"]);
    let after = b.s.kernel_view();
    assert!(!after.contains("bth"), "berth's bridge or veths are left:\n{after}");
    let _ = before;
}
