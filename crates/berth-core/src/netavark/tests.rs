//! Edge cases of the netavark contract, field by field (the captured
//! podman inputs are tested in `crates/berth/tests/podman_inputs.rs`).

use serde_json::{json, Value};

use super::create::{create, BerthNetworks, CreateInput};
use super::*;

const CID: &str = "ec1b118f2da1a7a71b8dd3952af94fefa6b73eb14680495eba7a1662c3c4e3aa";
const NID: &str = "580bd3cf0b4432b56946f56b3dddb5ab89ccdd48256c9e9bd76cc3f75870c9f6";

/// A podman 4.3 setup input with one network, changed by `f`.
fn input(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = json!({
        "container_id": CID, "container_name": "alpha",
        "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": 8080, "range": 1, "protocol": "tcp"}],
        "networks": {"n1": {"static_ips": ["10.89.0.2"], "aliases": ["ec1b118f2da1"], "interface_name": "eth0"}},
        "network_info": {"n1": {"name": "n1", "id": NID, "driver": "bridge", "network_interface": "podman1", "created": "2026-12-01T17:01:00Z",
            "subnets": [{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}], "ipv6_enabled": false, "internal": false, "dns_enabled": true,
            "ipam_options": {"driver": "host-local"}}},
    });
    f(&mut v);
    v
}

fn plan(v: &Value) -> Result<SetupPlan, Refusal> {
    plan_setup(&parse_input(v.to_string().as_bytes())?)
}

fn refused(v: &Value, words: &str) {
    let e = plan(v).expect_err("should be refused");
    assert!(e.0.contains(words), "{e} should say {words:?}");
}

#[test]
fn options_berth_honours() {
    let p = plan(&input(|v| v["network_info"]["n1"]["options"] = json!({"mtu": "1400", "isolate": "true", "com.docker.network.bridge.name": "podman1", "mode": "managed"}))).unwrap();
    assert_eq!(p.networks[0].mtu, Some(1400));
    assert_eq!(p.networks[0].create_body()["MTU"], 1400);
    assert_eq!(p.networks[0].create_body()["Options"], json!({"bridge_name": "podman1"}));
    let p = plan(&input(|v| v["network_info"]["n1"]["options"] = json!({"mtu": "0", "isolate": "strict"}))).unwrap();
    assert_eq!(p.networks[0].mtu, None, "mtu 0 is netavark's default");
}

#[test]
fn options_berth_refuses() {
    for (k, val, words) in [
        ("isolate", "false", "isolates every network"),
        ("isolate", "maybe", "use true, strict or false"),
        ("vlan", "7", "VLANs"),
        ("metric", "50", "metric"),
        ("mtu", "big", "not a number"),
        ("mtu", "40", "MTU"),
        ("mode", "unmanaged", "unmanaged"),
        ("no_default_route", "true", "leave that route out"),
        ("vrf", "blue", "VRF"),
        ("com.docker.network.bridge.name", "other0", "give one name"),
        ("outbound_addr4", "10.0.0.1", "not supported by berth"),
    ] {
        refused(&input(|v| v["network_info"]["n1"]["options"] = json!({k: val})), words);
    }
}

#[test]
fn network_fields_berth_refuses() {
    refused(&input(|v| v["network_info"]["n1"]["driver"] = json!("macvlan")), "bridge networks only");
    refused(&input(|v| v["network_info"]["n1"]["ipam_options"] = json!({"driver": "dhcp"})), "ipam driver \"dhcp\"");
    refused(&input(|v| v["network_info"]["n1"]["ipam_options"] = json!({"driver": "none"})), "host-local only");
    refused(&input(|v| v["network_info"]["n1"]["routes"] = json!([{"destination": "10.9.0.0/16", "gateway": "10.89.0.9"}])), "static routes");
    refused(&input(|v| v["network_info"]["n1"]["subnets"][0]["gateway"] = Value::Null), "has no gateway");
    refused(&input(|v| v["network_info"]["n1"]["subnets"][0]["subnet"] = json!("10.89.0.5/24")), "not a network address");
    refused(&input(|v| v["network_info"]["n1"]["subnets"] = json!([])), "no subnets");
    refused(
        &input(|v| v["network_info"]["n1"]["subnets"] = json!([{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}, {"subnet": "10.90.0.0/24", "gateway": "10.90.0.1"}])),
        "more than one IPv4 subnet",
    );
    refused(&input(|v| v["network_info"]["n1"]["ipv6_enabled"] = json!(true)), "ipv6_enabled is true but it has no");
    refused(&input(|v| v["network_info"]["n1"]["network_interface"] = Value::Null), "network_interface");
    refused(&input(|v| v["network_info"]["n1"]["id"] = json!("abc")), "64-digit");
    refused(&input(|v| v["network_info"]["n1"]["name"] = json!("other")), "describes a network named other");
    refused(&input(|v| v["network_info"]["n1"]["frobnicate"] = json!(1)), "unknown field `frobnicate`");
}

#[test]
fn container_fields() {
    refused(&input(|v| v["networks"]["n1"]["static_ips"] = json!([])), "no static ip");
    refused(&input(|v| v["networks"]["n1"]["static_ips"] = json!(["10.89.0.2", "10.89.0.3"])), "one address per subnet");
    refused(&input(|v| v["networks"]["n1"]["static_ips"] = json!(["10.89.0.2", "10.77.0.3"])), "none of its subnets");
    refused(&input(|v| v["networks"]["n1"]["static_mac"] = json!("01:00:5e:00:00:01")), "unicast");
    refused(&input(|v| v["networks"]["n1"]["interface_name"] = json!("")), "no container interface name");
    refused(&input(|v| v["networks"]["n1"]["options"] = json!({"x": "y"})), "per-container option");
    refused(&input(|v| v["networks"]["n1"]["aliases"] = json!(["bad alias"])), "alias");
    refused(&input(|v| v["container_name"] = json!("no/slash")), "container name");
    refused(&input(|v| v["container_id"] = json!("xyz")), "container id");
    refused(&input(|v| v["network_info"] = json!({})), "network info for network n1 not found");
    refused(&input(|v| v["networks"] = json!({})), "network options for network n1 not found");
    // Aliases mean names: none on a network without DNS.
    let p = plan(&input(|v| v["network_info"]["n1"]["dns_enabled"] = json!(false))).unwrap();
    assert!(p.networks[0].aliases.is_empty());
    // The container's own servers: upstreams, and netavark's answer without DNS.
    let p = plan(&input(|v| v["dns_servers"] = json!(["9.9.9.9"]))).unwrap();
    assert_eq!(p.attach_body("/run/netns/x")["Dns"], json!(["9.9.9.9"]));
}

#[test]
fn port_mappings() {
    let pm = |host_ip: &str, c: u16, h: u16, range: u16, proto: &str| PortMapping { host_ip: host_ip.into(), container_port: c, host_port: h, range, protocol: proto.into() };
    assert_eq!(publish_specs(&[pm("", 80, 8080, 1, "tcp")]).unwrap(), ["8080:80/tcp"]);
    assert_eq!(publish_specs(&[pm("", 9000, 9000, 3, "tcp")]).unwrap(), ["9000-9002:9000-9002/tcp"]);
    assert_eq!(publish_specs(&[pm("127.0.0.1", 80, 8081, 1, "udp")]).unwrap(), ["127.0.0.1:8081:80/udp"]);
    assert_eq!(publish_specs(&[pm("::1", 80, 8089, 1, "tcp")]).unwrap(), ["[::1]:8089:80/tcp"]);
    assert_eq!(publish_specs(&[pm("", 53, 5353, 1, "tcp,udp")]).unwrap(), ["5353:53/tcp", "5353:53/udp"]);
    for (p, words) in [
        (pm("", 80, 8080, 1, "sctp"), "sctp"),
        (pm("", 80, 8080, 1, "icmp"), "unknown protocol"),
        (pm("", 80, 8080, 0, "tcp"), "range 0"),
        (pm("", 80, 0, 1, "tcp"), "podman chooses"),
        (pm("", 65535, 8080, 2, "tcp"), "past 65535"),
        (pm("localhost", 80, 8080, 1, "tcp"), "not an IP address"),
    ] {
        let e = publish_specs(&[p]).unwrap_err();
        assert!(e.0.contains(words), "{e}");
    }
    refused(&input(|v| v["network_info"]["n1"]["internal"] = json!(true)), "only on internal networks");
}

#[test]
fn networks_map_or_list_in_interface_order() {
    let list = input(|v| {
        v["networks"] = json!([
            {"name": "n2", "static_ips": ["10.89.1.2"], "interface_name": "eth10"},
            {"name": "n1", "static_ips": ["10.89.0.2"], "interface_name": "eth2"},
        ]);
        let mut n2 = v["network_info"]["n1"].clone();
        n2["name"] = json!("n2");
        n2["network_interface"] = json!("podman2");
        n2["subnets"] = json!([{"subnet": "10.89.1.0/24", "gateway": "10.89.1.1"}]);
        v["network_info"]["n2"] = n2;
    });
    let p = plan(&list).unwrap();
    assert_eq!(p.networks.iter().map(|n| n.ifname.as_str()).collect::<Vec<_>>(), ["eth2", "eth10"]);
    let twice = input(|v| v["networks"] = json!([{"name": "n1", "interface_name": "eth0"}, {"name": "n1", "interface_name": "eth1"}]));
    assert!(parse_input(twice.to_string().as_bytes()).unwrap_err().0.contains("given twice"));
    assert!(parse_input(b"[").unwrap_err().0.starts_with("failed to load network options"));
}

fn berth_view(p: &NetPlan) -> Value {
    json!({"Id": p.id, "Driver": "bridge", "Internal": p.internal, "IPAM": {"Config": [{"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1"}]},
           "Options": {"bridge_name": p.bridge}, "Berth": {"Bridge": p.bridge, "MTU": 1500, "Icc": true, "Masquerade": true}})
}

#[test]
fn existing_networks_match_or_collide() {
    let p = plan(&input(|_| {})).unwrap();
    let n = &p.networks[0];
    assert_eq!(check_network(n, &berth_view(n)).unwrap(), NetworkMatch { ours: true, dns_update: None });
    let mut other = berth_view(n);
    other["Id"] = json!("f".repeat(64));
    assert!(!check_network(n, &other).unwrap().ours, "same settings, another id: used as it is");
    let mut v = berth_view(n);
    v["IPAM"]["Config"][0] = json!({"Subnet": "10.5.0.0/24", "Gateway": "10.5.0.1"});
    v["Berth"]["Bridge"] = json!("bth-0123456789");
    let e = check_network(n, &v).unwrap_err();
    assert!(e.0.contains("collides with berth's network n1") && e.0.contains("10.5.0.0/24") && e.0.contains("bth-0123456789") && e.0.contains("berth network rm n1"), "{e}");
    let p = plan(&input(|v| v["network_info"]["n1"]["network_dns_servers"] = json!(["192.0.2.53"]))).unwrap();
    assert_eq!(check_network(&p.networks[0], &berth_view(&p.networks[0])).unwrap().dns_update, Some(vec!["192.0.2.53".parse().unwrap()]));
}

fn ctr(label: &str, netns: &str, nets: &[&str]) -> Value {
    let n: serde_json::Map<String, Value> = nets.iter().map(|n| (n.to_string(), json!({"NetworkID": NID}))).collect();
    json!({"Name": "/alpha", "Config": {"Labels": {LABEL_CONTAINER_ID: label}}, "Berth": {"Kind": "attached", "Netns": netns}, "NetworkSettings": {"Networks": n}})
}

#[test]
fn existing_containers() {
    let p = plan(&input(|_| {})).unwrap();
    assert_eq!(existing_container(&p, "/run/netns/a", &ctr(CID, "/run/netns/a", &["n9"]), true).unwrap(), Existing::Connect(vec![0]));
    assert_eq!(existing_container(&p, "/run/netns/a", &ctr(CID, "/run/netns/old", &["n1"]), true).unwrap(), Existing::Stale);
    assert!(existing_container(&p, "/run/netns/a", &ctr(CID, "/run/netns/a", &["n1"]), true).unwrap_err().0.contains("already set up on network n1"));
    let e = existing_container(&p, "/run/netns/a", &ctr(&"b".repeat(64), "/run/netns/a", &[]), true).unwrap_err();
    assert!(e.0.contains("podman container bbbbbbbbbbbb") && e.0.contains("rename"), "{e}");
    let mut run = ctr(CID, "/run/netns/a", &[]);
    run["Berth"]["Kind"] = json!("run");
    assert!(existing_container(&p, "/run/netns/a", &run, true).unwrap_err().0.contains("berth runs itself"));
    assert!(existing_container(&p, "/run/netns/a", &run, false).is_err(), "berth's own containers are never replaced");
    // Another podman container's record whose namespace is gone: replaced.
    assert_eq!(existing_container(&p, "/run/netns/a", &ctr(&"b".repeat(64), "/run/netns/gone", &["n1"]), false).unwrap(), Existing::Stale);
}

#[test]
fn teardowns() {
    let i = parse_input(input(|_| {}).to_string().as_bytes()).unwrap();
    let (a, removable, problems) = teardown_plan(&i, "/run/netns/a", Some(&ctr(CID, "/run/netns/a", &["n1"]))).unwrap();
    assert_eq!((a, removable, problems.len()), (Teardown::Detach, vec!["n1".to_string()], 0));
    let (a, _, _) = teardown_plan(&i, "/run/netns/a", Some(&ctr(CID, "/run/netns/a", &["n1", "n4"]))).unwrap();
    assert_eq!(a, Teardown::Disconnect(vec!["n1".into()]), "network disconnect");
    let (_, _, problems) = teardown_plan(&i, "/run/netns/a", Some(&ctr(CID, "/run/netns/a", &["n4"]))).unwrap();
    assert_eq!(problems, ["container alpha is not connected to network n1"]);
    assert!(teardown_plan(&i, "/run/netns/a", None).unwrap_err().0.contains("nothing to tear down"));
    assert!(teardown_plan(&i, "/run/netns/b", Some(&ctr(CID, "/run/netns/a", &["n1"]))).unwrap_err().0.contains("set up in /run/netns/a"));
}

#[test]
fn status_from_endpoints() {
    let p = plan(&input(|_| {})).unwrap();
    let eps = json!([{"Network": "n1", "Mac": "02:42:0A:59:00:02", "Addresses": [{"Address": "10.89.0.2/24", "Gateway": "10.89.0.1"}]}]);
    let st = status_block(&p, &[0], &facts_from_endpoints(&eps)).unwrap();
    let want: Value = serde_json::from_str(r#"{"n1":{"dns_search_domains":["dns.podman"],"dns_server_ips":["10.89.0.1"],"interfaces":{"eth0":{"mac_address":"02:42:0a:59:00:02","subnets":[{"gateway":"10.89.0.1","ipnet":"10.89.0.2/24"}]}}}}"#).unwrap();
    assert_eq!(st, want);
    let inspect = json!({"NetworkSettings": {"Networks": {"n1": {"MacAddress": "02:42:0a:59:00:02", "IPAddress": "10.89.0.2", "IPPrefixLen": 24, "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0}}}});
    assert_eq!(status_block(&p, &[0], &facts_from_inspect(&inspect)).unwrap(), want);
    assert!(status_block(&p, &[0], &[]).is_err());
}

fn create_input(f: impl FnOnce(&mut Value)) -> CreateInput {
    let mut v = json!({
        "network": {"name": "made", "id": "d".repeat(64), "driver": "bridge", "dns_enabled": true, "internal": false, "ipv6_enabled": false},
        "used": {"interfaces": ["podman1"], "names": {"podman": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9"}, "subnets": ["10.89.0.0/24"]},
        "options": {"subnet_pools": [{"base": "10.89.0.0/16", "size": 24}], "default_interface_name": "podman", "check_used_subnets": true},
    });
    f(&mut v);
    serde_json::from_value(v).unwrap()
}

#[test]
fn create_completes_networks() {
    let berth = BerthNetworks { networks: vec![("mine".into(), "e".repeat(64), "podman2".into(), vec!["10.89.1.0/24".parse().unwrap()])] };
    let n = create(&create_input(|_| {}), &berth, &["podman3".into()], "2026-12-01T00:00:00Z").unwrap();
    assert_eq!(n.network_interface.as_deref(), Some("podman4"), "podman1 used, podman2 berth's, podman3 a host link");
    let s = &n.subnets.as_ref().unwrap()[0];
    assert_eq!((s.subnet.to_string(), s.gateway.unwrap().to_string()), ("10.89.2.0/24".into(), "10.89.2.1".into()), "skips podman's and berth's subnets");
    assert_eq!(n.ipam_options.as_ref().unwrap()["driver"], "host-local");
    assert_eq!(n.created.as_deref(), Some("2026-12-01T00:00:00Z"));
    let n = create(&create_input(|v| v["network"]["ipv6_enabled"] = json!(true)), &berth, &[], "t").unwrap();
    let v6 = n.subnets.as_ref().unwrap().iter().find(|s| s.subnet.addr().is_ipv6()).unwrap();
    assert!(v6.subnet.to_string().starts_with("fd") && v6.subnet.prefix_len() == 64);
    let n = create(&create_input(|v| v["network"]["options"] = json!({"com.docker.network.bridge.name": "br7", "com.docker.network.driver.mtu": "1400"})), &berth, &[], "t").unwrap();
    assert_eq!((n.network_interface.as_deref(), n.options.as_ref().unwrap().get("mtu").map(String::as_str)), (Some("br7"), Some("1400")));
    for (f, words) in [
        (create_input(|v| v["network"]["name"] = json!("podman")), "already exists"),
        (create_input(|v| v["network"]["name"] = json!("mine")), "already exists in berth"),
        (create_input(|v| v["network"]["driver"] = json!("ipvlan")), "bridge networks only"),
        (create_input(|v| v["network"]["network_interface"] = json!("podman2")), "already in use"),
        (create_input(|v| v["network"]["subnets"] = json!([{"subnet": "10.89.1.0/25"}])), "overlaps berth's network mine"),
        (create_input(|v| v["network"]["subnets"] = json!([{"subnet": "10.89.0.0/24"}])), "already used"),
        (create_input(|v| v["network"]["options"] = json!({"vlan": "3"})), "VLANs"),
        (create_input(|v| v["network"]["dns_enabled"] = json!(false)).with_dns(), "DNS is not enabled"),
    ] {
        let e = create(&f, &berth, &[], "t").unwrap_err();
        assert!(e.0.contains(words), "{e} should say {words:?}");
    }
}

impl CreateInput {
    fn with_dns(mut self) -> Self {
        self.network.network_dns_servers = Some(vec!["192.0.2.1".parse().unwrap()]);
        self
    }
}

#[test]
fn version_shape() {
    let v = version_json("0.1.0");
    assert_eq!(v["version"], NETAVARK_VERSION);
    assert_eq!(v["default_fw_driver"], "berth");
}
