//! The netavark parser and planner on what podman really sends (the
//! captures in `fixtures/podman/`, see its README): every input parses,
//! plans into the berth requests meant, and the StatusBlock built from the
//! endpoints netavark reported is byte for byte netavark's answer. Pure:
//! no root, no daemon.

use std::path::PathBuf;

use berth_core::netavark::create::{create, BerthNetworks, CreateInput};
use berth_core::netavark::{parse_input, plan_setup, status_block, Facts, NetInfo, SetupPlan};
use serde_json::{json, Value};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/podman")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn plan(name: &str) -> SetupPlan {
    plan_setup(&parse_input(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What netavark reported, as berth's endpoint facts (its MACs, its addresses).
fn facts_of(stdout: &Value) -> Vec<Facts> {
    stdout
        .as_object()
        .unwrap()
        .iter()
        .map(|(net, b)| {
            let (_, i) = b["interfaces"].as_object().unwrap().iter().next().unwrap();
            Facts {
                network: net.clone(),
                mac: i["mac_address"].as_str().unwrap().into(),
                addrs: i["subnets"].as_array().unwrap().iter().map(|s| s["ipnet"].as_str().unwrap().parse().unwrap()).collect(),
            }
        })
        .collect()
}

#[test]
fn every_capture_parses_plans_and_answers_as_netavark() {
    let mut n = 0;
    for e in std::fs::read_dir(dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".stdin.json") else { continue };
        if stem.starts_with("21-") || stem.starts_with("22-") {
            continue;
        }
        let input = parse_input(&read(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = plan_setup(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.networks.len(), input.networks.len(), "{name}");
        if let Ok(out) = std::fs::read(dir().join(format!("{stem}.stdout.json"))) {
            let want: Value = serde_json::from_slice(&out).unwrap();
            let all: Vec<usize> = (0..p.networks.len()).collect();
            let got = status_block(&p, &all, &facts_of(&want)).unwrap();
            assert_eq!(got, want, "{name}: the StatusBlock");
            assert_eq!(serde_json::to_string(&got).unwrap(), String::from_utf8_lossy(&out).trim(), "{name}: byte for byte");
        }
        n += 1;
    }
    assert!(n >= 12, "only {n} inputs");
}

#[test]
fn ports_as_podman_merges_them() {
    assert_eq!(plan("01-setup-port.stdin.json").publish, ["8080:80/tcp"]);
    assert_eq!(plan("02-setup-port-range.stdin.json").publish, ["9000-9002:9000-9002/tcp"]);
    assert_eq!(plan("03-setup-static-ip-mac-aliases-udp-hostip.stdin.json").publish, ["127.0.0.1:8081:80/udp", "8082-8083:80-81/tcp"]);
    assert_eq!(plan("04-setup-two-networks-isolate-mtu-lease-range.stdin.json").publish, ["8084-8085:84-85/tcp", "8086:86/udp"]);
    assert!(plan("06-setup-internal.stdin.json").publish.is_empty());
    assert_eq!(plan("10-setup-dual-stack-alias-ipv6-hostip.stdin.json").publish, ["8088:80/tcp", "[::1]:8089:80/tcp"]);
    assert_eq!(plan("20-setup-list-form-v2.stdin.json").publish, ["127.0.0.1:5353:53/tcp", "127.0.0.1:5353:53/udp"]);
}

#[test]
fn networks_and_attachments() {
    let p = plan("01-setup-port.stdin.json");
    let n = &p.networks[0];
    assert_eq!((n.name.as_str(), n.bridge.as_str(), n.ifname.as_str()), ("n1", "podman1", "eth0"));
    assert_eq!(n.create_body()["Id"], "580bd3cf0b4432b56946f56b3dddb5ab89ccdd48256c9e9bd76cc3f75870c9f6");
    assert_eq!(n.create_body()["IPAM"]["Config"], json!([{"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1"}]));
    let body = p.attach_body("/run/netns/netns-x");
    assert_eq!(body["Networks"], json!([{"Network": "n1", "Ip": "10.89.0.2", "Ifname": "eth0", "Aliases": ["ec1b118f2da1"]}]));
    assert_eq!(body["Labels"]["podman.containerID"], "ec1b118f2da1a7a71b8dd3952af94fefa6b73eb14680495eba7a1662c3c4e3aa");
    assert_eq!(body["Name"], "alpha");

    let p = plan("03-setup-static-ip-mac-aliases-udp-hostip.stdin.json");
    assert_eq!(p.networks[0].mac.as_deref(), Some("02:11:22:33:44:55"));
    assert_eq!(p.networks[0].aliases, ["web", "www", "87b5ee3e45fd"]);

    // Two networks: in interface order (n3 is eth0), n3's mtu, isolate and lease range honoured.
    let p = plan("04-setup-two-networks-isolate-mtu-lease-range.stdin.json");
    assert_eq!(p.networks.iter().map(|n| (n.name.as_str(), n.ifname.as_str())).collect::<Vec<_>>(), [("n3", "eth0"), ("n1", "eth1")]);
    assert_eq!(p.networks[0].create_body()["MTU"], 1400);

    // podman's default network: no DNS, so no aliases and no resolver in the answer.
    let p = plan("05-setup-default-network-podman.stdin.json");
    assert_eq!((p.networks[0].name.as_str(), p.networks[0].bridge.as_str(), p.networks[0].dns_enabled), ("podman", "podman0", false));
    assert!(p.networks[0].aliases.is_empty());

    assert!(plan("06-setup-internal.stdin.json").networks[0].create_body()["Internal"].as_bool().unwrap());

    let p = plan("10-setup-dual-stack-alias-ipv6-hostip.stdin.json");
    assert_eq!(p.networks[0].attach_entry()["Ip6"], "fd00:90::2");
    assert_eq!((p.networks[0].create_body()["EnableIPv6"].as_bool(), p.networks[0].create_body()["EnableIPv4"].as_bool()), (Some(true), Some(true)));

    // netavark 2.x: networks as a list, network DNS servers, the container's own.
    let p = plan("20-setup-list-form-v2.stdin.json");
    assert_eq!(p.networks.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["v2a", "v2b"]);
    assert_eq!(p.networks[0].create_body()["Options"]["dns_servers"], "192.0.2.53");
    assert_eq!(p.attach_body("/x")["Dns"], json!(["192.0.2.1"]));
}

#[test]
fn what_berth_cannot_honour_is_refused() {
    let e = plan_setup(&parse_input(&read("21-setup-refused-v2.stdin.json")).unwrap()).unwrap_err();
    assert!(e.0.contains("static routes"), "{e}");
    // podman's network files: every one plans as a network of a container, but n6's vlan.
    for f in ["n1", "n2", "n3", "n4", "n6"] {
        let info: NetInfo = serde_json::from_slice(&read(&format!("networks/{f}.json"))).unwrap();
        let ip = info.subnets.as_ref().unwrap()[0].subnet.hosts().nth(130).unwrap();
        let input = json!({"container_id": "a".repeat(64), "container_name": "c", "networks": {f: {"static_ips": [ip], "interface_name": "eth0"}}, "network_info": {f: info}});
        let r = plan_setup(&parse_input(input.to_string().as_bytes()).unwrap());
        if f == "n6" {
            assert!(r.unwrap_err().0.contains("VLANs"));
        } else {
            r.unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
}

#[test]
fn create_completes_what_podman_5_sends() {
    let input: CreateInput = serde_json::from_slice(&read("22-create-v2.stdin.json")).unwrap();
    let n = create(&input, &BerthNetworks::default(), &[], "2026-12-01T19:00:00Z").unwrap();
    assert_eq!(n.network_interface.as_deref(), Some("podman2"));
    let subnets = n.subnets.unwrap();
    assert_eq!((subnets[0].subnet.to_string(), subnets[0].gateway.map(|g| g.to_string())), ("10.89.1.0/24".into(), Some("10.89.1.1".into())));
    assert!(subnets[1].subnet.addr().is_ipv6() && n.ipv6_enabled);
    assert_eq!(n.options.unwrap()["mtu"], "1400");
}
