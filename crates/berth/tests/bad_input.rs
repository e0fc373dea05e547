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
}

#[test]
fn no_daemon_is_said_plainly() {
    let o = std::process::Command::new(BERTH).args(["ps"]).env("BERTH_HOST", "unix:///nonexistent/berth.sock").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?"), "{err}");
}
