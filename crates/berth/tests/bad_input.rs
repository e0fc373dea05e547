//! Every bad request gets a specific error, a non-zero exit, and leaves the
//! store and the kernel exactly as they were.

mod common;

use common::*;

/// Runs `args`, expects failure mentioning `needle`, and checks that neither
/// the store nor the kernel changed.
fn refused(s: &Sandbox, args: &[&str], needle: &str) {
    let (store, kernel) = (s.store_dump(), s.kernel_view());
    let err = s.fails(args);
    assert!(err.contains(needle), "berth {args:?}: expected {needle:?} in {err:?}");
    assert_eq!(s.store_dump(), store, "store changed by failed berth {args:?}");
    assert_eq!(s.kernel_view(), kernel, "kernel changed by failed berth {args:?}");
}

#[test]
fn bad_requests_change_nothing() {
    let Some(s) = Sandbox::new() else { return };
    s.ok(&["network", "create", "--subnet", "10.40.0.0/24", "used"]);
    s.ok(&["network", "create", "--subnet", "10.41.0.0/30", "tiny"]);
    s.run("one", &["--network", "used", "--ip", "10.40.0.5"], "sleep 1000");
    s.run("only", &["--network", "tiny"], "sleep 1000");
    s.ok(&["network", "create", "--ipv6", "--subnet", "10.42.0.0/24", "--subnet", "fd00:42::/64", "used6"]);
    s.run("six", &["--network", "used6", "--ip6", "fd00:42::5"], "sleep 1000");

    refused(&s, &["network", "create", "--subnet", "10.0.0.0/33", "x"], "invalid CIDR \"10.0.0.0/33\"");
    refused(&s, &["network", "create", "--subnet", "10.0.0/8", "x"], "invalid CIDR");
    refused(&s, &["network", "create", "--subnet", "10.50.0.0/24", "--gateway", "10.51.0.1", "x"], "gateway 10.51.0.1 is not in subnet 10.50.0.0/24");
    refused(&s, &["network", "create", "--subnet", "10.50.0.0/24", "--ip-range", "10.51.0.0/26", "x"], "ip-range 10.51.0.0/26 is not inside subnet 10.50.0.0/24");
    refused(&s, &["network", "create", "--subnet", "10.40.0.128/25", "x"], "overlaps with network \"used\"");
    refused(&s, &["network", "create", "used"], "network with name used already exists");
    refused(&s, &["network", "create", "bad name!"], "invalid name");
    refused(&s, &["network", "create", "-o", "icc=perhaps", "x"], "invalid network option \"icc\"");
    refused(&s, &["network", "create", "-d", "weave", "x"], "unknown driver");
    refused(&s, &["run", "-d", "--name", "one", "--", "true"], "container name \"one\" is already in use");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used", "--ip", "10.99.0.5", "--", "true"], "address 10.99.0.5 is not in subnet 10.40.0.0/24");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used", "--ip", "10.40.0.5", "--", "true"], "address 10.40.0.5 is already in use");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used", "--ip", "10.40.0.1", "--", "true"], "is the gateway");
    refused(&s, &["run", "-d", "--name", "x", "--network", "nosuch", "--", "true"], "network nosuch not found");
    refused(&s, &["run", "-d", "--name", "x", "--network", "tiny", "--", "true"], "no available IPv4 addresses on network tiny");
    refused(&s, &["run", "-d", "--name", "x;rm -rf", "--", "true"], "invalid name");
    refused(&s, &["run", "-d", "--name", "x"], "no command given");
    refused(&s, &["run", "-d", "--name", "x", "--link", "ghost:g", "--", "true"], "no such container: ghost");
    refused(&s, &["stop", "ghost"], "no such container: ghost");
    refused(&s, &["inspect", "ghost"], "no such container: ghost");
    refused(&s, &["network", "rm", "used"], "network used has active endpoints (one)");
    refused(&s, &["network", "rm", "berth0"], "predefined network");
    refused(&s, &["network", "connect", "nosuch", "one"], "network nosuch not found");
    refused(&s, &["network", "connect", "used", "one"], "already connected");
    refused(&s, &["attach", "--netns", "/etc/hostname", "--name", "x"], "/etc/hostname is not a network namespace");
    refused(&s, &["attach", "--netns", "/proc/self/ns/mnt", "--name", "x"], "is not a network namespace");
    refused(&s, &["attach", "--netns", "/nonexistent", "--name", "x"], "is not a network namespace");
    refused(&s, &["rm", "one"], "You cannot remove a running container");
    // IPv6.
    refused(&s, &["network", "create", "--ipv6", "--subnet", "fd00:42:0:0:1::/80", "x"], "overlaps with network \"used6\"");
    refused(&s, &["network", "create", "--ipv6", "--subnet", "fd00:43::/64", "--gateway", "fd00:44::1", "x"], "gateway fd00:44::1 is not in subnet fd00:43::/64");
    refused(&s, &["network", "create", "--subnet", "10.50.0.0/24", "--gateway", "fd00:44::1", "x"], "not inside any of the given subnets");
    refused(&s, &["network", "create", "--ipv6", "--subnet", "fd00:43::/127", "x"], "is too small");
    refused(&s, &["network", "create", "--ipv6", "--subnet", "fe80::/64", "x"], "link-local range");
    refused(&s, &["network", "create", "--ipv6", "--subnet", "ff05::/64", "x"], "multicast range");
    refused(&s, &["network", "create", "--subnet", "fd00:43::/64", "--subnet", "fd00:44::/64", "x"], "more than one IPv6 subnet");
    refused(&s, &["network", "create", "--ipv4=false", "x"], "needs IPv4 or IPv6");
    refused(&s, &["network", "create", "--ipv6", "--mtu", "1200", "x"], "invalid MTU 1200");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used", "--ip6", "fd00:40::5", "--", "true"], "network used has no IPv6 subnet, so --ip6 cannot be used on it");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used6", "--ip", "fd00:42::9", "--", "true"], "--ip takes an IPv4 address");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used6", "--ip6", "fd00:42::5", "--", "true"], "address fd00:42::5 is already in use");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used6", "--ip6", "fd00:99::5", "--", "true"], "is not in subnet fd00:42::/64");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used", "-p", "[::1:8080:80", "--", "true"], "unterminated [IPv6] address");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used", "-p", "[fd00::zz]:8080:80", "--", "true"], "is not an IP address");
    refused(&s, &["run", "-d", "--name", "x", "--network", "used", "-p", "[::1]:8080:80", "--", "true"], "the container has no IPv6 address");
    refused(&s, &["network", "connect", "--ip6", "10.42.0.9", "used6", "one"], "--ip6 takes an IPv6 address");
    refused(&s, &["policy", "deny", "--from", "fd00::/129", "--to", "six"], "invalid CIDR");
}

#[test]
fn no_daemon_is_said_plainly() {
    let o = std::process::Command::new(BERTH).args(["ps"]).env("BERTH_HOST", "unix:///nonexistent/berth.sock").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?"), "{err}");
}

/// Hostile requests straight to the API: each gets a 4xx with a clear
/// message and leaves the store byte-identical and the kernel unchanged.
#[test]
fn api_bad_requests_change_nothing() {
    let Some(s) = Sandbox::new() else { return };
    s.ok(&["network", "create", "--subnet", "10.40.0.0/24", "used"]);
    s.run("one", &["--network", "used", "-p", "8080:80"], "sleep 1000");
    s.ok(&["network", "create", "--ipv6", "--ipv4=false", "--subnet", "fd00:43::/64", "six"]);
    let huge = format!("{{\"Name\":\"{}\"}}", "x".repeat(2 << 20));
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("POST", "/networks/create", b"{".to_vec(), "invalid request body"),
        ("POST", "/networks/create", b"[]".to_vec(), "invalid request body"),
        ("POST", "/networks/create", br#"{"Name":5}"#.to_vec(), "invalid request body"),
        ("POST", "/networks/create", br#"{"Name":"x","Unknown":1}"#.to_vec(), "unknown field"),
        ("POST", "/networks/create", huge.into_bytes(), "length limit exceeded"),
        ("POST", "/networks/create", br#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.9.0.0/16","Gateway":"nope"}]}}"#.to_vec(), "invalid IP address"),
        ("POST", "/networks/create", br#"{"Name":"x","MTU":70000}"#.to_vec(), "invalid MTU"),
        ("POST", "/networks/create", br#"{"Name":"x","Options":{"icc":"yes"}}"#.to_vec(), "invalid network option"),
        ("POST", "/networks/create", br#"{"Name":"x","Options":{"bridge_name":"eth0;reboot"}}"#.to_vec(), "not a valid interface name"),
        ("POST", "/networks/create", br#"{"Name":"x","Options":{"bridge_name":"berth0"}}"#.to_vec(), "already used by network berth0"),
        ("POST", "/networks/create", br#"{"Name":"a/b"}"#.to_vec(), "invalid name"),
        ("POST", "/networks/create", br#"{"Name":"x","Driver":"ipvlan"}"#.to_vec(), "unknown driver"),
        // Single host: an overlay is refused, saying what it needs.
        ("POST", "/networks/create", br#"{"Name":"x","Driver":"overlay"}"#.to_vec(), "need a cluster store"),
        // A macvlan network needs its parent and the LAN's subnet.
        ("POST", "/networks/create", br#"{"Name":"x","Driver":"macvlan","IPAM":{"Config":[{"Subnet":"192.168.77.0/24"}]}}"#.to_vec(), "-o parent=IFACE"),
        ("POST", "/networks/create", br#"{"Name":"x","Driver":"macvlan","Options":{"parent":"eth0"}}"#.to_vec(), "give the LAN's subnet"),
        ("POST", "/networks/create", br#"{"Name":"x","Options":{"vni":"5"}}"#.to_vec(), "applies to overlay networks only"),
        ("POST", "/networks/create", br#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.1.0.0/16"},{"Subnet":"10.2.0.0/16"}]}}"#.to_vec(), "more than one IPv4 subnet"),
        ("POST", "/networks/create", br#"{"Name":"x","IPAM":{"Config":[{"Subnet":"fe80::/64"}]}}"#.to_vec(), "link-local range"),
        ("POST", "/networks/create", br#"{"Name":"x","EnableIPv6":true,"IPAM":{"Config":[{"Subnet":"fd00:9::/64","Gateway":"fd00:8::1"}]}}"#.to_vec(), "is not in subnet"),
        ("POST", "/networks/create", br#"{"Name":"x","EnableIPv4":false}"#.to_vec(), "needs IPv4 or IPv6"),
        ("POST", "/networks/create", br#"{"Name":"x","EnableIPv6":"yes"}"#.to_vec(), "invalid request body"),
        ("POST", "/networks/create", br#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.40.0.0/16"}]}}"#.to_vec(), "overlaps with network"),
        ("POST", "/networks/create", br#"{"Name":"x","IPAM":{"Config":[{"Gateway":"10.9.0.1"}]}}"#.to_vec(), "needs --subnet"),
        ("POST", "/containers/run", br#"{"Cmd":[]}"#.to_vec(), "no command given"),
        ("POST", "/containers/run", br#"{"Cmd":"true"}"#.to_vec(), "invalid request body"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Publish":["70000:80"]}"#.to_vec(), "not a port number"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Publish":["0:80"]}"#.to_vec(), "not a port number"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Publish":["8000-8010:80-85"]}"#.to_vec(), "differ in length"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Publish":["9000:80","9000:81"]}"#.to_vec(), "port is already allocated"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Publish":["8075-8085:8075-8085"]}"#.to_vec(), "Bind for 0.0.0.0:8080 failed: port is already allocated"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Name":"$(rm -rf /)"}"#.to_vec(), "invalid name"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Name":"a\";flush ruleset;\""}"#.to_vec(), "invalid name"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Network":"none","Ip":"10.0.0.1"}"#.to_vec(), "--network none takes no --ip"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Network":"host"}"#.to_vec(), "not supported"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Expose":["0"]}"#.to_vec(), "not a port number"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Expose":["80/sctp"]}"#.to_vec(), "unknown protocol"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Hostname":"bad_host!"}"#.to_vec(), "invalid hostname"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Env":["NOEQUALS"]}"#.to_vec(), "invalid environment variable"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Links":["ghost"]}"#.to_vec(), "no such container: ghost"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Links":["one:bad alias"]}"#.to_vec(), "invalid name"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Dns":["not-an-ip"]}"#.to_vec(), "invalid request body"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Network":"berth0","NetworkAliases":["a"]}"#.to_vec(), "user defined networks"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Network":"used","Ip":"10.40.0.0"}"#.to_vec(), "network or broadcast address"),
        ("POST", "/containers/attach", br#"{"Netns":"/etc/passwd","Name":"x"}"#.to_vec(), "is not a network namespace"),
        ("POST", "/containers/attach", br#"{"Netns":"/proc/self/ns/net","Name":"x"}"#.to_vec(), "the daemon's own network namespace"),
        ("POST", "/containers/attach", br#"{"Netns":"/run/netns/../../etc","Name":"x"}"#.to_vec(), "is not a network namespace"),
        ("POST", "/containers/attach", br#"{"Netns":"","Name":"x"}"#.to_vec(), "is not a network namespace"),
        ("POST", "/containers/attach", br#"{"Netns":"/proc/1/ns/mnt","Name":"x"}"#.to_vec(), "is not a network namespace"),
        ("POST", "/policies", br#"{"Action":"drop","From":"10.0.0.1","To":"one"}"#.to_vec(), "use allow or deny"),
        ("POST", "/policies", br#"{"Action":"deny","From":"10.0.0.0/33","To":"one"}"#.to_vec(), "invalid CIDR"),
        ("POST", "/policies", br#"{"Action":"deny","From":"10.0.0.1","To":"one:99999"}"#.to_vec(), "not a port or port range"),
        ("POST", "/policies", br#"{"Action":"deny","From":"10.0.0.1","To":"one two"}"#.to_vec(), "invalid name"),
        ("POST", "/policies", br#"{"Action":"deny","From":"fd00::/129","To":"one"}"#.to_vec(), "invalid CIDR"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Network":"used","Ip6":"fd00::5"}"#.to_vec(), "has no IPv6 subnet"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Network":"used","Publish":["[::1]:8081:80"]}"#.to_vec(), "the container has no IPv6 address"),
        ("POST", "/containers/run", br#"{"Cmd":["true"],"Publish":["[::1:8081:80"]}"#.to_vec(), "unterminated"),
        ("POST", "/networks/six/connect", br#"{"Container":"one","IPv6Address":"10.40.0.9"}"#.to_vec(), "--ip6 takes an IPv6 address"),
        ("POST", "/networks/six/connect", br#"{"Container":"one","IPAddress":"10.40.0.9"}"#.to_vec(), "network six has no IPv4 subnet"),
        ("POST", "/networks/create", br#"{"Name":"x","EnableIPv6":true,"IPAM":{"Config":[{"Subnet":"fd00:43:0:0:8000::/65"}]}}"#.to_vec(), "overlaps with network"),
        ("DELETE", "/policies/nosuch", b"".to_vec(), "no such policy"),
        ("POST", "/networks/used/connect", br#"{"Container":"ghost"}"#.to_vec(), "no such container: ghost"),
        ("POST", "/networks/used/connect", br#"{"Container":"one","IPAddress":"300.1.1.1"}"#.to_vec(), "invalid request body"),
        ("POST", "/networks/used/disconnect", br#"{"Container":"one","Extra":1}"#.to_vec(), "unknown field"),
        ("DELETE", "/networks/berth0", b"".to_vec(), "predefined network"),
        ("DELETE", "/networks/used", b"".to_vec(), "has active endpoints"),
        ("DELETE", "/containers/ghost", b"".to_vec(), "no such container"),
        ("POST", "/containers/one/stop?t=abc", b"".to_vec(), "invalid timeout"),
        ("GET", "/containers/%2e%2e%2fetc/json", b"".to_vec(), "no such container"),
        ("POST", "/containers/one/detach", b"".to_vec(), "started by berth"),
    ];
    assert!(cases.len() >= 40, "at least 40 hostile inputs");
    for (method, path, body, needle) in &cases {
        let (store, kernel) = (s.store_dump(), s.kernel_view());
        let (status, reply) = http(&s, method, path, body);
        assert!((400..500).contains(&status), "{method} {path}: status {status}, reply {reply}");
        assert!(reply.contains(needle), "{method} {path}: expected {needle:?} in {reply:?}");
        assert_eq!(s.store_dump(), store, "store changed by {method} {path}");
        assert_eq!(s.kernel_view(), kernel, "kernel changed by {method} {path}");
    }
    eprintln!("{} hostile API requests refused, store and kernel unchanged", cases.len());
}
