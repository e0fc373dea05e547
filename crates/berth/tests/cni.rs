//! Root tests of berth as a CNI plugin: exec'd directly as libcni execs it
//! (every command and version, malformed input, capabilities, IPAM
//! delegation, chaining with the reference plugins, captured requests),
//! against the reference bridge + host-local + portmap (differential), and
//! driven by real runtimes: podman 4.3's CNI backend and containerd 1.6's
//! `ctr run --cni`. Each test runs in its own network and mount namespace
//! and skips when not root (or, for the runtimes, when they are missing).

mod cni_support;
mod common;

use cni_support::*;
use common::*;
use serde_json::{json, Value};

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn ps_names(s: &Sandbox) -> String {
    s.ok(&["ps", "-a"])
}

#[test]
fn every_command_in_every_version() {
    let Some(s) = Sandbox::new() else { return };
    for (i, v) in VERSIONS.iter().enumerate() {
        let ns = netns(&format!("v{i}"));
        let c = json!({"cniVersion": v, "name": "vers", "type": "berth", "subnet": "10.88.7.0/24"});
        let env = CniEnv::new("ADD", &format!("ctr{i}"), &ns, "eth0");
        let r = berth(&s, &env, &c).expect_ok();
        assert_eq!(r["cniVersion"], *v, "answered in the version asked: {r}");
        assert_eq!(r["ips"][0].get("version").is_some(), v.starts_with("0."), "{r}");
        assert_eq!(r["interfaces"][2]["sandbox"], ns.as_str());
        assert_eq!(r["interfaces"][0].get("mtu").is_some(), *v == "1.1.0", "{r}");
        let ip = ip4(&r);
        assert!(sh(&format!("ip -n v{i} -4 -o addr show eth0")).contains(&format!("{ip}/24")));
        let check = berth(&s, &env.with("CHECK"), &with_prev(&c, Some(&r)));
        if v.starts_with("0.3") {
            check.expect_err(1);
        } else {
            check.expect_ok();
        }
        let status = berth(&s, &CniEnv { command: "STATUS".into(), ..Default::default() }, &c);
        let gc = berth(&s, &CniEnv { command: "GC".into(), path: Some(REF_DIR.into()), ..Default::default() }, &c);
        if *v == "1.1.0" {
            assert!(status.ok && gc.ok, "{} {}", status.stdout, gc.stdout);
            assert!(ps_names(&s).contains("10.88.7."), "GC without cni.dev/valid-attachments removes nothing");
        } else {
            status.expect_err(1);
            gc.expect_err(1);
        }
        berth(&s, &env.with("DEL"), &with_prev(&c, Some(&r))).expect_ok();
        berth(&s, &env.with("DEL"), &c).expect_ok();
        assert!(!ps_names(&s).contains("cni-"), "DEL released the attachment");
        poll_gone(&format!("v{i}"));
    }
    // podman's probe: dummy values, no daemon (the socket points nowhere).
    let env = CniEnv { command: "VERSION".into(), id: Some(String::new()), netns: Some("dummy".into()), ifname: Some("dummy".into()), args: Some(String::new()), path: Some("dummy".into()) };
    let mut fastest = f64::MAX;
    for _ in 0..5 {
        let c = exec(std::path::Path::new(BERTH), &env, br#"{"cniVersion":"1.0.0"}"#, &[("BERTH_HOST", "unix:///nonexistent/berth.sock".into())]);
        fastest = fastest.min(c.ms);
        let out = c.expect_ok();
        assert_eq!(out, json!({"cniVersion": "1.0.0", "supportedVersions": VERSIONS}));
    }
    assert!(fastest < 50.0, "VERSION took {fastest} ms");
}

/// Until the namespace's eth0 is gone (berth deletes veths in the background).
fn poll_gone(ns: &str) {
    cni_support::runtimes::poll("the veth to go", 10, || !ok(&format!("ip -n {ns} link show eth0 >/dev/null 2>&1")));
}

#[test]
fn malformed_input_and_environment() {
    let Some(s) = Sandbox::new() else { return };
    let ns = netns("bad");
    let env = CniEnv::new("ADD", "bad1", &ns, "eth0");
    let good = conf("badnet", json!({"subnet": "10.88.8.0/24"}));
    let e = berth(&s, &env, &conf("badnet", json!({"subnett": "10.88.8.0/24"})));
    e.expect_err(2);
    assert!(e.out["msg"].as_str().unwrap().contains("subnett") && e.out["msg"].as_str().unwrap().contains("10.88.8.0/24"));
    assert_eq!(e.out["cniVersion"], "1.0.0");
    let e = exec(std::path::Path::new(BERTH), &env, b"{\"cniVersion\": \"1.0.0\", ", &[("BERTH_HOST", format!("unix://{}", s.socket().display()))]);
    e.expect_err(6);
    let mut old = good.clone();
    old["cniVersion"] = json!("0.2.0");
    let e = berth(&s, &env, &old);
    e.expect_err(1);
    assert_eq!(e.out["cniVersion"], "0.2.0", "errors carry the configuration's version");
    let e = berth(&s, &CniEnv { id: None, netns: None, ..env.clone() }, &good);
    e.expect_err(4);
    assert!(e.stdout.contains("CNI_CONTAINERID") && e.stdout.contains("CNI_NETNS"), "{}", e.stdout);
    berth(&s, &CniEnv { ifname: Some("eth0:1".into()), ..env.clone() }, &good).expect_err(4);
    berth(&s, &CniEnv { id: Some("-x".into()), ..env.clone() }, &good).expect_err(4);
    berth(&s, &env.with("FROB"), &good).expect_err(4);
    berth(&s, &env, &with_prev(&good, Some(&json!({"ips": [{"address": "10.0.0.1"}]})))).expect_err(6);
    berth(&s, &env, &with_prev(&good, Some(&json!("nope")))).expect_err(6);
    // Through to the daemon, which refuses: a path that is not a namespace.
    let e = berth(&s, &CniEnv { netns: Some(s.dir.display().to_string()), ..env.clone() }, &good);
    e.expect_err(100);
    // An IPAM plugin that is nowhere on CNI_PATH, and ones whose results are malformed.
    berth(&s, &env, &conf("badnet", json!({"ipam": {"type": "no-such-ipam"}}))).expect_err(7);
    let bin = scratch(&s, "ipam-bin");
    for (name, script) in [("garbage", "echo 'not json'"), ("noaddr", "echo '{\"cniVersion\":\"1.0.0\",\"ips\":[]}'"), ("badaddr", "echo '{\"ips\":[{\"address\":\"10.0.0.300/24\"}]}'"), ("fails", "echo '{\"code\":11,\"msg\":\"busy\"}'; exit 1")] {
        std::fs::write(bin.join(name), format!("#!/bin/sh\ncat >/dev/null\n{script}\n")).unwrap();
        sh(&format!("chmod +x {}/{name}", bin.display()));
    }
    let ienv = CniEnv { path: Some(bin.display().to_string()), ..env.clone() };
    for (name, code) in [("garbage", 6), ("noaddr", 101), ("badaddr", 6), ("fails", 11)] {
        berth(&s, &ienv, &conf("badnet", json!({"ipam": {"type": name}}))).expect_err(code);
    }
    // Each failed delegated ADD was followed by the delegate's DEL.
    std::fs::write(bin.join("fails"), format!("#!/bin/sh\ncat >/dev/null\necho $CNI_COMMAND >> {}/calls\n[ $CNI_COMMAND = DEL ] && exit 0\necho '{{\"code\":11,\"msg\":\"busy\"}}'; exit 1\n", bin.display())).unwrap();
    berth(&s, &ienv, &conf("badnet", json!({"ipam": {"type": "fails"}}))).expect_err(11);
    assert_eq!(std::fs::read_to_string(bin.join("calls")).unwrap(), "ADD\nDEL\n");
    // CHECK needs a prevResult, and a container berth knows.
    berth(&s, &env.with("CHECK"), &good).expect_err(7);
    berth(&s, &env.with("CHECK"), &with_prev(&good, Some(&json!({"cniVersion": "1.0.0"})))).expect_err(3);
    assert!(!ps_names(&s).contains("cni-"), "no failed ADD left a container");
    // An existing network with another subnet: refused, and released.
    berth(&s, &env, &good).expect_ok();
    berth(&s, &env.with("DEL"), &good).expect_ok();
    let e = berth(&s, &CniEnv { id: Some("bad2".into()), ..env.clone() }, &conf("badnet", json!({"subnet": "10.88.9.0/24"})));
    e.expect_err(7);
    assert!(e.stdout.contains("10.88.8.0/24"), "{}", e.stdout);
    assert!(!ps_names(&s).contains("cni-"), "{}", ps_names(&s));
    // A second ADD of the same attachment is an error (spec), the first stays.
    let first = berth(&s, &env, &good).expect_ok();
    berth(&s, &env, &good).expect_err(7);
    berth(&s, &env.with("CHECK"), &with_prev(&good, Some(&first))).expect_ok();
    berth(&s, &env.with("DEL"), &good).expect_ok();
}

#[test]
fn del_without_namespace_releases_everything_and_gc_the_rest() {
    let Some(s) = Sandbox::new() else { return };
    let c = conf("gcnet", json!({"subnet": "10.88.10.0/24", "capabilities": {"portMappings": true}, "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}}));
    let a = CniEnv::new("ADD", "default-a", &netns("gca"), "eth0");
    berth(&s, &a, &c).expect_ok();
    assert!(sh("nft list table inet berth").contains("18080"));
    let plain = conf("gcnet", json!({"subnet": "10.88.10.0/24", "cniVersion": "1.1.0"}));
    let b = CniEnv::new("ADD", "default-b", &netns("gcb"), "eth0");
    let cc = CniEnv::new("ADD", "default-c", &netns("gcc"), "eth0");
    berth(&s, &b, &plain).expect_ok();
    berth(&s, &cc, &plain).expect_ok();
    // ctr's DEL after the task is gone: no namespace, no prevResult.
    sh("ip netns del gca");
    berth(&s, &CniEnv { netns: Some(String::new()), ..a.with("DEL") }, &c).expect_ok();
    assert!(!sh("nft list table inet berth").contains("18080"), "the port's map element went with the DEL");
    assert!(!s.ok(&["ps"]).contains("10.88.10.2 "), "{}", s.ok(&["ps"]));
    // GC: keeps what is listed, removes the rest, and only of this network.
    let other = CniEnv::new("ADD", "default-c", &netns("gco"), "eth0");
    berth(&s, &other, &conf("othernet", json!({"subnet": "10.88.11.0/24"}))).expect_ok();
    let mut gc = plain.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "default-b", "ifname": "eth0"}]);
    berth(&s, &CniEnv { command: "GC".into(), path: Some(REF_DIR.into()), ..Default::default() }, &gc).expect_ok();
    let ps = s.ok(&["ps"]);
    assert!(ps.contains("gcnet:10.88.10.3") && !ps.contains("gcnet:10.88.10.4") && ps.contains("othernet:"), "{ps}");
    // The key of the 1.1.0 text works too.
    let mut gc = plain.clone();
    gc["cni.dev/attachments"] = json!([]);
    berth(&s, &CniEnv { command: "GC".into(), ..Default::default() }, &gc).expect_ok();
    assert!(!s.ok(&["ps"]).contains("gcnet:"));
}

#[test]
fn capabilities_names_and_published_ports() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&[]);
    let caps = json!({"portMappings": true, "aliases": true, "ips": true, "mac": true, "dns": true, "ipRanges": true});
    let c = conf("names", json!({"subnet": "10.88.12.0/24", "capabilities": caps, "runtimeConfig": {
        "portMappings": [{"hostPort": 18081, "containerPort": 80, "protocol": "tcp"}], "aliases": {"names": ["web", "www"]}}}));
    let web = CniEnv { args: Some("IgnoreUnknown=1;K8S_POD_NAME=webpod;IP=10.88.12.10;MAC=92:d0:c6:0a:29:33".into()), ..CniEnv::new("ADD", &"a".repeat(64), &netns("web"), "eth0") };
    let r = berth(&s, &web, &c).expect_ok();
    assert_eq!(r["ips"][0]["address"], "10.88.12.10/24");
    assert_eq!(r["interfaces"][2]["mac"], "92:d0:c6:0a:29:33");
    assert_eq!(r["dns"]["nameservers"], json!(["10.88.12.1"]), "the network's resolver");
    let _srv = tcp_server("web", 80, "ok-web");
    assert_eq!(tcp_from(Some("outside"), "10.99.0.1", 18081).as_deref(), Some("ok-web"), "published port from another machine");
    assert_eq!(tcp_from(None, "127.0.0.1", 18081).as_deref(), Some("ok-web"), "published port from the host");
    // runtimeConfig ips and mac; names through berth's resolver.
    let c2 = conf("names", json!({"subnet": "10.88.12.0/24", "runtimeConfig": {"ips": ["10.88.12.20/24"], "mac": "92:d0:c6:0a:29:44"}}));
    let r2 = berth(&s, &CniEnv::new("ADD", "client", &netns("client"), "eth0"), &c2).expect_ok();
    assert_eq!((r2["ips"][0]["address"].as_str(), r2["interfaces"][2]["mac"].as_str()), (Some("10.88.12.20/24"), Some("92:d0:c6:0a:29:44")));
    for name in ["web", "www", "webpod"] {
        let o = sh(&format!("nsenter --net=/run/netns/client dig +short +tries=2 +time=2 @10.88.12.1 {name}"));
        assert_eq!(o.trim(), "10.88.12.10", "{name} resolves through berth's resolver");
    }
    assert_eq!(tcp_from(Some("client"), "10.88.12.10", 80).as_deref(), Some("ok-web"));
    // ipRanges create the network; dns capability where berth has no resolver.
    let c3 = conf("ranged", json!({"runtimeConfig": {"ipRanges": [[{"subnet": "10.88.13.0/24", "gateway": "10.88.13.1", "rangeStart": "10.88.13.128", "rangeEnd": "10.88.13.255"}]],
        "dns": {"servers": ["10.0.0.53"], "searches": ["example.test"], "options": ["ndots:1"]}}}));
    let r3 = berth(&s, &CniEnv::new("ADD", "ranged", &netns("ranged"), "eth0"), &c3).expect_ok();
    assert!(r3["ips"][0]["address"].as_str().unwrap().starts_with("10.88.13.128/24"), "{r3}");
    let d = conf("defnet", json!({"network": "bridge", "runtimeConfig": {"dns": {"servers": ["10.0.0.53"], "searches": ["example.test"]}, "aliases": {"defnet": ["x"]}}}));
    let r4 = berth(&s, &CniEnv::new("ADD", "dflt", &netns("dflt"), "eth0"), &d).expect_ok();
    assert_eq!(r4["dns"], json!({"nameservers": ["10.0.0.53"], "search": ["example.test"]}), "{r4}");
}

#[test]
fn ipam_delegated_to_host_local() {
    let Some(s) = Sandbox::new() else { return };
    let data = scratch(&s, "ipam");
    let ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.88.14.0/24"}]], "dataDir": data});
    let c = conf("hl", json!({"ipam": ipam}));
    // Two directories, the plugin in the second (as ctr passes CNI_PATH).
    let env = CniEnv { path: Some(format!("{}:{REF_DIR}", s.dir.display())), ..CniEnv::new("ADD", "hl1", &netns("hl1"), "eth0") };
    let r = berth(&s, &env, &c).expect_ok();
    let ip = ip4(&r);
    assert!(ip.starts_with("10.88.14."), "{r}");
    assert!(data.join("hl").join(&ip).exists(), "host-local holds the lease");
    assert!(sh("ip -n hl1 -4 -o addr show eth0").contains(&ip));
    let n: Value = serde_json::from_str(&s.ok(&["network", "inspect", "hl"])).unwrap();
    assert_eq!(n[0]["IPAM"]["Config"][0]["Subnet"], "10.88.14.0/24", "the network follows the IPAM plugin's subnet");
    berth(&s, &env.with("CHECK"), &with_prev(&c, Some(&r))).expect_ok();
    berth(&s, &env.with("DEL"), &c).expect_ok();
    assert!(!data.join("hl").join(&ip).exists(), "DEL reached the IPAM plugin");
    // A failed ADD gives the address back: the range is not berth's network's.
    let c2 = conf("hl", json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.15.0/24"}]], "dataDir": data}}));
    let e = berth(&s, &CniEnv { id: Some("hl2".into()), ..env.clone() }, &c2);
    e.expect_err(100);
    assert!(!data.join("hl").join("10.88.15.2").exists(), "the IPAM ADD was undone");
    assert!(!ps_names(&s).contains("cni-"));
}

#[test]
fn chained_with_the_reference_plugins() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&[]);
    let list = json!({"cniVersion": "1.0.0", "name": "chain", "plugins": [
        {"type": "berth", "subnet": "10.88.16.0/24"},
        {"type": "tuning", "mac": "92:d0:c6:0a:29:55", "sysctl": {"net.core.somaxconn": "512"}},
        {"type": "bandwidth", "ingressRate": 100_000_000, "ingressBurst": 1_000_000, "egressRate": 100_000_000, "egressBurst": 1_000_000},
        {"type": "firewall", "backend": "iptables"},
        {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
    ]});
    let rt = [(4, json!({"portMappings": [{"hostPort": 18090, "containerPort": 80, "protocol": "tcp"}]}))];
    let env = CniEnv::new("ADD", "chained", &netns("chained"), "eth0");
    let r = chain_add(&s, &env, &list, &rt);
    let host_veth = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    assert_eq!(r["interfaces"][2]["mac"], "92:d0:c6:0a:29:55", "tuning's MAC in the final result: {r}");
    assert!(sh("ip -n chained link show eth0").contains("92:d0:c6:0a:29:55"));
    assert_eq!(sh("nsenter --net=/run/netns/chained sysctl -n net.core.somaxconn").trim(), "512");
    assert!(sh(&format!("tc qdisc show dev {host_veth}")).contains("tbf"), "bandwidth found berth's host interface");
    assert!(sh("iptables-save -t filter").contains("CNI-FORWARD"), "firewall added its chain");
    let ip = ip4(&r);
    assert!(sh("iptables-save -t nat").contains(&format!("{ip}:80")), "portmap's DNAT");
    let _srv = tcp_server("chained", 80, "ok-chained");
    assert_eq!(tcp_from(Some("outside"), "10.99.0.1", 18090).as_deref(), Some("ok-chained"), "through portmap's mapping");
    assert_eq!(tcp_from(None, &ip, 80).as_deref(), Some("ok-chained"), "direct from the host");
    // CHECK with the chain's final result: berth allows for tuning's change.
    let mut me = list["plugins"][0].clone();
    me["cniVersion"] = json!("1.0.0");
    me["name"] = json!("chain");
    berth(&s, &env.with("CHECK"), &with_prev(&me, Some(&r))).expect_ok();
    chain_del(&s, &env, &list, &rt, &r);
    assert!(!sh("iptables-save -t nat").contains(&format!("{ip}:80")));
    assert!(!ps_names(&s).contains("cni-"));
}

#[test]
fn captured_requests_replayed() {
    let Some(s) = Sandbox::new() else { return };
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cni");
    let read_env = |f: &str| -> CniEnv {
        let mut e = CniEnv::default();
        for l in std::fs::read_to_string(fx.join(f)).unwrap().lines().filter(|l| !l.starts_with('#')) {
            let (k, v) = l.split_once('=').unwrap();
            if k == "CNI_COMMAND" {
                e.command = v.to_string();
            }
            let v = Some(v.to_string());
            match k {
                "CNI_CONTAINERID" => e.id = v,
                "CNI_NETNS" => e.netns = v,
                "CNI_IFNAME" => e.ifname = v,
                "CNI_ARGS" => e.args = v,
                "CNI_PATH" => e.path = v,
                _ => {}
            }
        }
        e
    };
    let stdin = |f: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(fx.join(f)).unwrap()).unwrap() };
    // podman's VERSION probe, byte for byte.
    let v = exec(std::path::Path::new(BERTH), &read_env("podman-version.env"), &std::fs::read(fx.join("podman-version.stdin.json")).unwrap(), &[]);
    assert_eq!(v.expect_ok()["cniVersion"], "1.0.0");
    // podman's ADD (64-hex id, IgnoreUnknown, K8S_POD_NAME, MAC, IP) with the
    // runtime's parts of its stdin on a berth configuration.
    let mut env = read_env("podman-add.env");
    env.netns = Some(netns("podman"));
    let bridge = stdin("podman-add-bridge.stdin.json");
    let c = json!({"cniVersion": bridge["cniVersion"], "name": bridge["name"], "type": "berth", "subnet": "10.98.0.0/24", "capabilities": bridge["capabilities"]});
    let r = berth(&s, &env, &c).expect_ok();
    assert_eq!((r["cniVersion"].as_str(), r["ips"][0]["address"].as_str(), r["ips"][0]["version"].as_str()), (Some("0.4.0"), Some("10.98.0.10/24"), Some("4")));
    assert_eq!(r["interfaces"][2]["mac"], "92:d0:c6:0a:29:33");
    // berth second in a chain: the captured 0.4.0 prevResult is kept, ours appended.
    let pm = stdin("podman-add-portmap.stdin.json");
    let mut env2 = env.clone();
    env2.ifname = Some("eth1".into());
    env2.args = Some("IgnoreUnknown=1".into());
    let r2 = berth(&s, &env2, &with_prev(&c, Some(&pm["prevResult"]))).expect_ok();
    assert_eq!(r2["interfaces"].as_array().unwrap().len(), 6);
    assert_eq!(r2["ips"][0], pm["prevResult"]["ips"][0]);
    assert_eq!(r2["ips"][1]["interface"], 5);
    // podman's capability args (portMappings, aliases with the short id).
    let caps = stdin("podman-add-capabilities.stdin.json");
    let mut env3 = read_env("podman-add-capabilities.env");
    env3.netns = Some(netns("caps"));
    let c3 = json!({"cniVersion": caps["cniVersion"], "name": caps["name"], "type": "berth", "subnet": "10.96.0.0/24", "capabilities": caps["capabilities"], "runtimeConfig": caps["runtimeConfig"]});
    berth(&s, &env3, &c3).expect_ok();
    assert!(sh("nft list table inet berth").contains("18082"));
    // podman's DEL (namespace still there, prevResult), then ctr's (none, cached prevResult).
    let del = stdin("podman-del-bridge.stdin.json");
    berth(&s, &env.with("DEL"), &with_prev(&c, Some(&del["prevResult"]))).expect_ok();
    berth(&s, &env2.with("DEL"), &c).expect_ok();
    let mut cenv = read_env("ctr-add.env");
    cenv.netns = Some(netns("ctr"));
    let ctr = stdin("ctr-add-bridge.stdin.json");
    let cc = json!({"cniVersion": ctr["cniVersion"], "name": ctr["name"], "type": "berth", "subnet": "10.98.0.0/24"});
    let r = berth(&s, &cenv, &cc).expect_ok();
    assert_eq!(r["cniVersion"], "1.0.0");
    let cdel = read_env("ctr-del.env");
    assert_eq!(cdel.netns.as_deref(), Some(""));
    berth(&s, &CniEnv { id: cenv.id.clone(), ..cdel }, &with_prev(&cc, Some(&stdin("ctr-del-bridge.stdin.json")["prevResult"]))).expect_ok();
    assert!(!s.ok(&["ps"]).contains("research:"), "{}", s.ok(&["ps"]));
}

#[test]
fn starts_a_daemon_when_none_answers_and_survives_restarts() {
    let Some(mut s) = Sandbox::bare() else { return };
    let host = [("BERTH_HOST", format!("unix://{}", s.socket().display())), ("BERTH_ROOT", s.dir.join("root").display().to_string())];
    let c = conf("auto", json!({"subnet": "10.88.17.0/24", "runtimeConfig": {"portMappings": [{"hostPort": 18095, "containerPort": 80}]}}));
    // DEL where no daemon ever ran: success, and no daemon started.
    let env = CniEnv::new("ADD", "auto1", &netns("auto1"), "eth0");
    exec(std::path::Path::new(BERTH), &env.with("DEL"), c.to_string().as_bytes(), &host).expect_ok();
    assert!(!s.socket().exists(), "a DEL with nothing to release starts no daemon");
    let r = exec(std::path::Path::new(BERTH), &env, c.to_string().as_bytes(), &host).expect_ok();
    let pid: i32 = std::fs::read_to_string(s.dir.join("run/berth.pid")).unwrap().trim().parse().unwrap();
    let ip = ip4(&r);
    let _srv = tcp_server("auto1", 80, "ok-auto");
    assert_eq!(tcp_from(None, "127.0.0.1", 18095).as_deref(), Some("ok-auto"));
    // The autostarted daemon goes (by its pid); the harness's own takes over
    // the same state: the CNI container is a berth container like any.
    // SAFETY: the daemon this test's ADD started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    cni_support::runtimes::poll("the autostarted daemon to exit", 10, || !std::path::Path::new(&format!("/proc/{pid}")).exists());
    s.start_daemon();
    assert!(s.ok(&["ps"]).contains(&ip));
    assert_eq!(tcp_from(None, "127.0.0.1", 18095).as_deref(), Some("ok-auto"), "after a daemon restart");
    sh("nft flush ruleset");
    s.ok(&["reconcile"]);
    assert_eq!(tcp_from(None, "127.0.0.1", 18095).as_deref(), Some("ok-auto"), "after nft flush ruleset + reconcile");
    berth(&s, &env.with("DEL"), &c).expect_ok();
    assert!(!s.ok(&["ps", "-a"]).contains(&ip));
}

#[test]
fn same_as_the_reference_bridge_host_local_and_portmap() {
    let Some(s) = Sandbox::new() else { return };
    s.outside(&[]);
    let data = scratch(&s, "ipam");
    // The reference: bridge (gateway, masquerade) + host-local + portmap.
    let list = json!({"cniVersion": "1.0.0", "name": "refnet", "plugins": [
        {"type": "bridge", "bridge": "cniref0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.20.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data}},
        {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]});
    let pm = |p: u16| json!({"portMappings": [{"hostPort": p, "containerPort": 80, "protocol": "tcp"}]});
    let ra = chain_add(&s, &CniEnv::new("ADD", "ra", &netns("ra"), "eth0"), &list, &[(1, pm(18100))]);
    let rb = chain_add(&s, &CniEnv::new("ADD", "rb", &netns("rb"), "eth0"), &list, &[(1, pm(18102))]);
    // berth with the equivalent configuration (portMappings as its own capability).
    let bc = |p: u16| conf("bnet", json!({"subnet": "10.88.21.0/24", "capabilities": {"portMappings": true}, "runtimeConfig": pm(p)}));
    let ba = berth(&s, &CniEnv::new("ADD", "ba", &netns("ba"), "eth0"), &bc(18101)).expect_ok();
    let bb = berth(&s, &CniEnv::new("ADD", "bb", &netns("bb"), "eth0"), &bc(18103)).expect_ok();
    let reference = observe(["ra", "rb"], [&ip4(&ra), &ip4(&rb)], "10.88.20.1", 18100, "10.88.20.");
    let ours = observe(["ba", "bb"], [&ip4(&ba), &ip4(&bb)], "10.88.21.1", 18101, "10.88.21.");
    assert_eq!(ours, reference, "berth and the reference plugins differ");
    assert!(reference[1..].iter().filter(|l| l.contains("Some") || l.ends_with("true")).count() >= 5, "the reference reached things at all: {reference:?}");
    // Both results have the same shape (three interfaces, the address on the third, a default route).
    for r in [&ra, &ba] {
        assert_eq!((r["interfaces"].as_array().unwrap().len(), r["ips"][0]["interface"].as_u64()), (3, Some(2)), "{r}");
        assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0");
    }
    chain_del(&s, &CniEnv::new("DEL", "ra", "/run/netns/ra", "eth0"), &list, &[(1, pm(18100))], &ra);
    chain_del(&s, &CniEnv::new("DEL", "rb", "/run/netns/rb", "eth0"), &list, &[(1, pm(18102))], &rb);
    let _ = sh_out("ip link del cniref0");
}

/// Prints the calls the runtimes made to berth when a runtime test fails.
struct CallsOnFailure<'a>(&'a cni_support::runtimes::RuntimeEnv);

impl Drop for CallsOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- calls the runtime made to berth ---\n{}", self.0.calls());
            let _ = std::fs::write("/tmp/berth-cni-calls.log", self.0.calls());
        }
    }
}

#[test]
fn podman_with_its_cni_backend() {
    let Some(s) = Sandbox::new() else { return };
    let Some(rt) = cni_support::runtimes::RuntimeEnv::new(&s) else { return };
    let _calls = CallsOnFailure(&rt);
    // After the runtimes' mounts: a tmpfs over /run hides earlier namespaces.
    s.outside(&[]);
    // berth first, a reference plugin after it (as podman's own lists have).
    rt.conflist("pnet.conflist", &json!({"cniVersion": "1.0.0", "name": "pnet", "plugins": [
        {"type": "berth", "subnet": "10.88.30.0/24", "capabilities": {"portMappings": true, "aliases": true}},
        {"type": "tuning"}]}));
    let p = cni_support::runtimes::Podman::new(&rt, &s);
    let t0 = std::time::Instant::now();
    let mark = |what: &str| eprintln!("{:>8.3}s {what}", t0.elapsed().as_secs_f64());
    assert!(p.ok(&["network", "ls"]).contains("pnet"), "podman kept the network (VERSION answered)");
    // podman 4.3 replaces the plugin's capabilities with {"ips": true} when
    // --ip is given (ports and aliases then never reach the plugin): the
    // static address and MAC are one container's, ports and alias another's.
    let id = p.run_d(&["--network", "pnet", "-p", "18110:80", "--network-alias", "web", "--name", "web1"], &["httpd", "-f", "-p", "80", "-h", "/www"]);
    assert_eq!(id.len(), 64);
    mark("podman run -d returned");
    let fixed = p.run_d(&["--network", "pnet", "--ip", "10.88.30.20", "--mac-address", "92:d0:c6:0a:29:33", "--name", "fixed"], &["sleep", "600"]);
    let net = p.ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "fixed"]);
    assert!(net.contains("10.88.30.20") && net.contains("92:d0:c6:0a:29:33"), "podman read berth's result: {net}");
    let ps = s.ok(&["ps"]);
    assert!(ps.contains(&format!("cni-{}", &id[..12])) && ps.contains(&format!("cni-{}", &fixed[..12])) && ps.contains("pnet:10.88.30.20"), "{ps}");
    let web_ip = p.ok(&["inspect", "-f", "{{.NetworkSettings.Networks.pnet.IPAddress}}", "web1"]);
    let get = |ns: Option<&str>, ip: &str, port: u16| {
        let pre = ns.map(|n| format!("nsenter --net=/run/netns/{n} ")).unwrap_or_default();
        sh_out(&format!("{pre}wget -q -T 3 -O- http://{ip}:{port}/")).stdout
    };
    cni_support::runtimes::poll("httpd in the podman container", 15, || !get(None, &web_ip, 80).is_empty());
    let diag = || format!("{}\n{}", sh("nft list table inet berth | grep -E '18110|ports_any' || true"), rt.calls());
    assert_eq!(String::from_utf8_lossy(&get(Some("outside"), "10.99.0.1", 18110)).trim(), "hello from berth cni", "published through berth's map: {}", diag());
    mark("fetched through the published port");
    // Names: another podman container asks berth's resolver for web1 (its
    // K8S_POD_NAME) and its alias.
    let parent = format!("--cgroup-parent=/{}", rt.cgroup_parent());
    let rootfs = rt.rootfs.display().to_string();
    for name in ["web1", "web"] {
        let out = p.ok(&["run", "--rm", "--cgroups=no-conmon", &parent, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "pnet", "--rootfs", &rootfs, "nslookup", name, "10.88.30.1"]);
        assert!(out.contains(&web_ip), "{name}: {out}");
    }
    // podman stop sends the DEL chain; berth releases everything.
    mark("names resolved");
    p.ok(&["stop", "-t", "1", "web1"]);
    mark("stopped");
    assert!(!s.ok(&["ps", "-a"]).contains(&format!("pnet:{web_ip}\n")), "{web_ip:?} {}\n{}\n{}", s.ok(&["ps", "-a"]).len(), s.ok(&["ps", "-a"]), s.daemon_log().lines().rev().take(30).collect::<Vec<_>>().join("\n"));
    let t = sh("nft list table inet berth");
    assert!(!t.contains("18110"), "{}", t.lines().filter(|l| l.contains("18110")).collect::<Vec<_>>().join("\n"));
    p.ok(&["rm", "web1"]);
    p.ok(&["rm", "-f", "-t", "0", "fixed"]);
    cni_support::runtimes::poll("podman's cleanup DELs", 10, || !s.ok(&["ps", "-a"]).contains("pnet:"));
    mark("removed");
}

#[test]
fn containerd_ctr_run_cni() {
    let Some(s) = Sandbox::new() else { return };
    let Some(rt) = cni_support::runtimes::RuntimeEnv::new(&s) else { return };
    let list = json!({"cniVersion": "1.0.0", "name": "cnet", "plugins": [{"type": "berth", "subnet": "10.88.40.0/24"}]});
    rt.conflist("10-berth.conflist", &list);
    let c = cni_support::runtimes::Containerd::start(&rt, &s);
    c.run_d("web1", &["httpd", "-f", "-p", "80", "-h", "/www"]);
    let pid = c.pid("web1");
    let addr = sh(&format!("nsenter -t {pid} -n ip -4 -o addr show eth0"));
    let ip = addr.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_string();
    assert!(ip.starts_with("10.88.40."), "{addr}");
    cni_support::runtimes::poll("httpd in the ctr container", 15, || ok(&format!("wget -q -T 2 -O- http://{ip}/ | grep -q hello")));
    let name = berth_core::cni::container_name(&berth_core::cni::Attachment { network: "cnet", container_id: "default-web1", ifname: "eth0" });
    let v = s.inspect(&name);
    assert_eq!(v["Berth"]["Netns"], format!("/proc/{pid}/ns/net"), "{v}");
    // -d containers never get a DEL: after the task is gone berth still
    // holds the attachment; reconcile copes, and GC releases it.
    c.remove("web1");
    assert!(s.ok(&["ps"]).contains("cni-default-web1"));
    s.ok(&["reconcile"]);
    let mut gc = list["plugins"][0].clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["name"] = json!("cnet");
    gc["cni.dev/valid-attachments"] = json!([]);
    berth(&s, &CniEnv { command: "GC".into(), path: Some(REF_DIR.into()), ..Default::default() }, &gc).expect_ok();
    assert!(!s.ok(&["ps", "-a"]).contains("cni-default-web1"));
    // The same id again after a task that never got its DEL: the leftover
    // is replaced, not an error.
    c.run_d("web2", &["sleep", "600"]);
    c.remove("web2");
    c.run_d("web2", &["sleep", "600"]);
    assert_eq!(s.ok(&["ps"]).matches("cni-default-web2").count(), 1);
    c.remove("web2");
    // A foreground run: ctr sends DEL itself once the task exited, with an
    // empty CNI_NETNS; nothing is left.
    let cg = format!("{}/fg1", rt.cgroup_parent());
    let out = c.ok(&["run", "--rm", "--cni", "--cgroup", &cg, &c.image, "fg1", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(out.contains("10.88.40."), "{out}");
    assert!(!s.ok(&["ps", "-a"]).contains("cni-default-fg1"), "{}", s.ok(&["ps", "-a"]));
}
