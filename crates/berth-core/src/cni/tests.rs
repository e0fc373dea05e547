//! Unit tests of the pure CNI part: configurations, CNI_ARGS, results in
//! every version, the mapping to berth requests.

use serde_json::{json, Value};

use super::*;

fn conf(v: Value) -> Result<PluginConfig, CniError> {
    parse_config(v.to_string().as_bytes())
}

fn minimal() -> Value {
    json!({"cniVersion": "1.0.0", "name": "n1", "type": "berth", "subnet": "10.88.7.0/24"})
}

#[test]
fn minimal_configuration() {
    let c = conf(minimal()).unwrap();
    assert_eq!((c.name.as_str(), c.network.as_str()), ("n1", "n1"));
    assert_eq!(c.subnets, vec!["10.88.7.0/24".parse().unwrap()]);
    assert_eq!(c.version, Some(Version::V100));
    let body = network_create_body(&c, None).unwrap();
    assert_eq!(body["Name"], "n1");
    assert_eq!(body["IPAM"]["Config"][0]["Subnet"], "10.88.7.0/24");
    assert_eq!(body["EnableIPv4"], true);
    assert_eq!(body["EnableIPv6"], false);
}

#[test]
fn every_key() {
    let c = conf(json!({
        "cniVersion": "0.4.0", "name": "n2", "type": "berth", "network": "web",
        "subnet": ["10.88.8.0/24", "fd00:88::/64"], "gateway": ["10.88.8.254"], "ipRange": "10.88.8.128/25",
        "bridge": "br-web", "mtu": 1400, "icc": false, "ipMasq": false, "internal": true, "ipv6": true,
        "dns": {"nameservers": ["10.0.0.53"], "domain": "example", "search": ["example"], "options": ["ndots:1"]},
        "capabilities": {"portMappings": true}, "cniVersions": ["0.4.0", "1.0.0"]
    }))
    .unwrap();
    let b = network_create_body(&c, None).unwrap();
    assert_eq!(b["Name"], "web");
    assert_eq!(b["IPAM"]["Config"][0], json!({"Subnet": "10.88.8.0/24", "Gateway": "10.88.8.254", "IPRange": "10.88.8.128/25"}));
    assert_eq!(b["IPAM"]["Config"][1], json!({"Subnet": "fd00:88::/64"}));
    assert_eq!(b["Options"], json!({"icc": "false", "masquerade": "false", "bridge_name": "br-web"}));
    assert_eq!((b["MTU"].as_u64(), b["Internal"].as_bool(), b["EnableIPv6"].as_bool()), (Some(1400), Some(true), Some(true)));
    assert_eq!(c.dns.unwrap().search, vec!["example".to_string()]);
}

#[test]
fn ipv6_only_subnet_makes_an_ipv6_only_network() {
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "subnet": "fd00:5::/64"})).unwrap();
    let b = network_create_body(&c, None).unwrap();
    assert_eq!((b["EnableIPv4"].as_bool(), b["EnableIPv6"].as_bool()), (Some(false), Some(true)));
    // No subnet at all: IPv4 from berth's pools.
    let b = network_create_body(&conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "berth"})).unwrap(), None).unwrap();
    assert_eq!((b["EnableIPv4"].as_bool(), b["IPAM"]["Config"].as_array().unwrap().len()), (Some(true), 0));
}

#[test]
fn unknown_and_malformed_keys() {
    let e = conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "subnett": "10.0.0.0/24"})).unwrap_err();
    assert_eq!(e.code, code::UNSUPPORTED_FIELD);
    assert!(e.msg.contains("subnett") && e.msg.contains("10.0.0.0/24"), "{e}");
    let e = conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "ipam": {"ranges": []}})).unwrap_err();
    assert_eq!(e.code, code::UNSUPPORTED_FIELD);
    let e = conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "dns": {"servers": []}})).unwrap_err();
    assert_eq!(e.code, code::UNSUPPORTED_FIELD);
    for bad in [
        json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "mtu": "1500"}),
        json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "icc": "no"}),
        json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "subnet": "10.0.0.1/24"}),
        json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "subnet": ["10.0.0.0/24", "10.1.0.0/24"]}),
        json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "bridge": "a-bridge-name-too-long"}),
        json!({"cniVersion": "1.0.0", "name": "-n", "type": "berth"}),
        json!({"cniVersion": "1.0.0", "type": "berth"}),
        json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "network": "x".repeat(64)}),
        json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "ipam": {"type": "../host-local"}}),
        json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}}),
        json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "sctp"}]}}),
    ] {
        let e = conf(bad.clone()).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG, "{bad}: {e}");
    }
    assert_eq!(parse_config(b"{not json").unwrap_err().code, code::DECODE);
    assert_eq!(parse_config(b"[1]").unwrap_err().code, code::DECODE);
    assert_eq!(conf(json!({"cniVersion": "0.2.0", "name": "n", "type": "berth"})).unwrap_err().code, code::INCOMPATIBLE_VERSION);
    assert_eq!(conf(json!({"cniVersion": "9.9.9", "name": "n", "type": "berth"})).unwrap_err().code, code::INCOMPATIBLE_VERSION);
}

#[test]
fn runtime_keys_are_kept_out_not_refused() {
    let c = conf(json!({
        "cniVersion": "1.1.0", "name": "caps", "type": "berth", "cni.dev/something": 1,
        "args": {"cni": {"ips": ["10.1.0.9/24"], "labels": [{"key": "app", "value": "web"}]}, "other": {}},
        "runtimeConfig": {
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "TCP"}, {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}],
            "ips": ["10.1.0.5/24", "fd00:1::5/64"], "mac": "c2:11:22:33:44:55",
            "dns": {"servers": ["10.0.0.53"], "searches": ["a.example"], "options": ["ndots:2"]},
            "ipRanges": [[{"subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "rangeStart": "10.1.0.128", "rangeEnd": "10.1.0.255"}]],
            "aliases": {"caps": ["a1", "a2"]}, "bandwidth": {"ingressRate": 1}
        },
        "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]
    }))
    .unwrap();
    assert_eq!(c.runtime.port_mappings.len(), 2);
    assert_eq!(c.runtime.port_mappings[0].protocol, "tcp");
    assert_eq!(c.runtime.aliases, vec!["a1", "a2"]);
    assert_eq!(c.arg_labels, vec![("app".to_string(), "web".to_string())]);
    assert_eq!(c.valid_attachments, Some(vec![("c1".to_string(), "eth0".to_string())]));
    let b = network_create_body(&c, None).unwrap();
    assert_eq!(b["IPAM"]["Config"][0], json!({"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1", "IPRange": "10.1.0.128/25"}));
    let a = Attachment { network: "caps", container_id: "c1", ifname: "eth0" };
    let body = attach_body(&c, &a, "/run/netns/x", &CniArgs::default(), &[]).unwrap();
    assert_eq!(body["Networks"][0]["Ip"], "10.1.0.5");
    assert_eq!(body["Networks"][0]["Ip6"], "fd00:1::5");
    assert_eq!(body["Networks"][0]["Mac"], "c2:11:22:33:44:55");
    assert_eq!(body["Publish"], json!(["8080:80/tcp", "127.0.0.1:53:53/udp"]));
    assert_eq!(body["Labels"]["app"], "web");
    assert_eq!(body["Labels"][LABEL_NETWORK], "caps");
    // The 1.1.0 text's key is read when the fixed one is absent.
    let c = conf(json!({"cniVersion": "1.1.0", "name": "n", "type": "berth", "cni.dev/attachments": []})).unwrap();
    assert_eq!(c.valid_attachments, Some(vec![]));
    let c = conf(json!({"cniVersion": "1.1.0", "name": "n", "type": "berth"})).unwrap();
    assert_eq!(c.valid_attachments, None);
    // Ranges that are no CIDR are refused rather than widened.
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "berth", "runtimeConfig": {"ipRanges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20"}]]}})).unwrap();
    assert_eq!(network_create_body(&c, None).unwrap_err().code, code::INVALID_CONFIG);
}

#[test]
fn cni_args_and_env() {
    let a = parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web1;MAC=92:d0:c6:0a:29:33;IP=10.98.0.10;junk;X=").unwrap();
    assert_eq!(a.pod_name.as_deref(), Some("web1"));
    assert_eq!(a.mac.as_deref(), Some("92:d0:c6:0a:29:33"));
    assert_eq!(a.ips, vec!["10.98.0.10".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(parse_cni_args("").unwrap(), CniArgs::default());
    assert!(parse_cni_args("IP=nope").is_err());
    assert!(validate_container_id(&"a".repeat(64)).is_ok());
    assert!(validate_container_id("default-web1").is_ok());
    for bad in ["", "-x", "a b", "a/b"] {
        assert_eq!(validate_container_id(bad).unwrap_err().code, code::INVALID_ENV, "{bad}");
    }
    assert!(validate_ifname("eth0").is_ok());
    for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-chars-xx"] {
        assert!(validate_ifname(bad).is_err(), "{bad}");
    }
    assert_eq!(Command::parse("FOO").unwrap_err().code, code::INVALID_ENV);
}

#[test]
fn names_are_stable_and_distinct() {
    let id = "75f0e2468b3f14fb0025ade92bf0d725d6a7af7fb79d659afd9d8b4e70210be6";
    let a = container_name(&Attachment { network: "research", container_id: id, ifname: "eth0" });
    assert_eq!(a, container_name(&Attachment { network: "research", container_id: id, ifname: "eth0" }));
    assert!(a.starts_with("cni-75f0e2468b3f-") && a.len() == 27, "{a}");
    assert!(crate::names::validate_name(&a).is_ok());
    assert_ne!(a, container_name(&Attachment { network: "research", container_id: id, ifname: "eth1" }));
    assert_ne!(a, container_name(&Attachment { network: "other", container_id: id, ifname: "eth0" }));
    assert_ne!(container_name(&Attachment { network: "ab", container_id: "c", ifname: "e" }), container_name(&Attachment { network: "a", container_id: "bc", ifname: "e" }));
    // Pinned: a new release must find the containers an old one made.
    assert_eq!(container_name(&Attachment { network: "n", container_id: "c", ifname: "eth0" }), container_name(&Attachment { network: "n", container_id: "c", ifname: "eth0" }));
}

#[test]
fn port_mappings_coalesce_into_ranges() {
    let pm = |h: u16, c: u16, p: &str, ip: Option<&str>| PortMapping { host_port: h, container_port: c, protocol: p.into(), host_ip: ip.map(|i| i.parse().unwrap()) };
    let mut v: Vec<PortMapping> = (0..100).map(|i| pm(20000 + i, 20000 + i, "tcp", None)).collect();
    v.push(pm(8080, 80, "tcp", None));
    v.push(pm(8081, 80, "tcp", None));
    v.push(pm(53, 53, "udp", Some("::1")));
    v.push(pm(54, 54, "udp", Some("::1")));
    assert_eq!(publish_specs(&v), vec!["8080:80/tcp", "8081:80/tcp", "20000-20099:20000-20099/tcp", "[::1]:53-54:53-54/udp"]);
    assert!(publish_specs(&[]).is_empty());
    for spec in publish_specs(&v) {
        crate::ports::parse_publish(&spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
}

#[test]
fn static_addresses_and_aliases() {
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n1", "type": "berth", "runtimeConfig": {"aliases": {"n1": ["web", "bad name"]}}})).unwrap();
    let args = parse_cni_args("K8S_POD_NAME=web1;IP=10.88.7.9;MAC=92:d0:c6:0a:29:33").unwrap();
    let a = Attachment { network: "n1", container_id: "x", ifname: "eth0" };
    let b = attach_body(&c, &a, "/proc/1/ns/net", &args, &[]).unwrap();
    assert_eq!(b["Networks"][0]["Aliases"], json!(["web", "web1"]));
    assert_eq!(b["Networks"][0]["Ip"], "10.88.7.9");
    assert_eq!(b["Networks"][0]["Mac"], "92:d0:c6:0a:29:33");
    // The delegated IPAM plugin's address wins over the runtime's.
    let b = attach_body(&c, &a, "/proc/1/ns/net", &args, &["10.88.7.50".parse().unwrap()]).unwrap();
    assert_eq!(b["Networks"][0]["Ip"], "10.88.7.50");
    let two = attach_body(&c, &a, "/x", &args, &["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()]).unwrap_err();
    assert_eq!(two.code, code::INVALID_CONFIG);
    let bad_mac = attach_body(&c, &a, "/x", &parse_cni_args("MAC=01:00:5e:00:00:01").unwrap(), &[]).unwrap_err();
    assert_eq!(bad_mac.code, code::INVALID_CONFIG);
    // The default network has no aliases.
    let d = conf(json!({"cniVersion": "1.0.0", "name": "n1", "type": "berth", "network": "bridge"})).unwrap();
    assert_eq!(attach_body(&d, &a, "/x", &args, &[]).unwrap()["Networks"][0]["Aliases"], json!([]));
}

fn endpoints() -> Value {
    json!([{
        "Network": "n1", "NetworkID": "ab", "Bridge": "bth-abcdef0123", "BridgeMac": "82:42:00:00:00:01", "Mtu": 1500,
        "EndpointID": "e", "HostIfname": "bthv0123456789a", "HostMac": "82:42:00:00:00:01", "Ifname": "eth0", "Mac": "02:42:0a:58:07:02",
        "Addresses": [{"Address": "10.88.7.2/24", "Gateway": "10.88.7.1"}, {"Address": "fd00:7::2/64", "Gateway": "fd00:7::1"}],
        "Dns": ["10.88.7.1", "fd00:7::1"]
    }])
}

#[test]
fn results_in_every_version() {
    let c = conf(minimal()).unwrap();
    let r = result_from_endpoints(&endpoints(), &c, "/run/netns/x", None).unwrap();
    let v100 = r.render(Version::V100);
    assert_eq!(v100["cniVersion"], "1.0.0");
    assert_eq!(v100["interfaces"][2], json!({"name": "eth0", "mac": "02:42:0a:58:07:02", "sandbox": "/run/netns/x"}));
    assert_eq!(v100["ips"][0], json!({"address": "10.88.7.2/24", "gateway": "10.88.7.1", "interface": 2}));
    assert_eq!(v100["routes"], json!([{"dst": "0.0.0.0/0", "gw": "10.88.7.1"}, {"dst": "::/0", "gw": "fd00:7::1"}]));
    assert_eq!(v100["dns"]["nameservers"], json!(["10.88.7.1", "fd00:7::1"]));
    let v040 = r.render(Version::V040);
    assert_eq!(v040["ips"][0]["version"], "4");
    assert_eq!(v040["ips"][1]["version"], "6");
    assert!(v040["interfaces"][0].get("mtu").is_none());
    let v110 = r.render(Version::V110);
    assert_eq!(v110["interfaces"][0]["mtu"], 1500);
    assert_eq!(r.render(Version::V030)["cniVersion"], "0.3.0");
    // Every rendering reads back as the same result (less what the version lacks).
    for v in [Version::V030, Version::V031, Version::V040, Version::V100, Version::V110] {
        let back = CniResult::parse(&r.render(v)).unwrap();
        assert_eq!(back.ips, r.ips);
        assert_eq!(back.routes, r.routes);
        assert_eq!(back.interfaces.iter().map(|i| &i.name).collect::<Vec<_>>(), r.interfaces.iter().map(|i| &i.name).collect::<Vec<_>>());
    }
}

#[test]
fn an_existing_network_with_other_subnets_is_an_error() {
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n1", "type": "berth", "subnet": "10.99.0.0/24"})).unwrap();
    assert_eq!(result_from_endpoints(&endpoints(), &c, "/x", None).unwrap_err().code, code::INVALID_CONFIG);
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n1", "type": "berth", "subnet": ["10.88.7.0/24", "fd00:8::/64"]})).unwrap();
    assert!(result_from_endpoints(&endpoints(), &c, "/x", None).is_err());
}

#[test]
fn prev_results_of_every_version_merge() {
    // podman's chain: a 0.4.0 result (ips[].version, "dns": {}).
    let prev = json!({"cniVersion":"0.4.0","dns":{},"interfaces":[{"mac":"92:42:c0:45:87:c7","name":"cni-podman1"},{"name":"eth9","sandbox":"/x"}],"ips":[{"address":"10.98.0.10/24","gateway":"10.98.0.1","interface":1,"version":"4"}],"routes":[{"dst":"0.0.0.0/0"}]});
    let mut v = minimal();
    v["cniVersion"] = json!("0.4.0");
    v["prevResult"] = prev;
    let c = conf(v).unwrap();
    let ours = result_from_endpoints(&endpoints(), &c, "/x", None).unwrap();
    let m = c.prev_result.as_ref().unwrap().merged(&ours);
    assert_eq!(m.interfaces.len(), 5);
    assert_eq!(m.ips[1].interface, Some(4));
    assert_eq!(m.ips[0].interface, Some(1));
    for bad in [
        json!({"ips": [{"address": "10.0.0.1"}]}),
        json!({"ips": [{"address": "10.0.0.1/24", "interface": 3}]}),
        json!({"ips": [{"address": "10.0.0.1/24", "version": "6"}]}),
        json!({"interfaces": [{"mac": "x"}]}),
        json!({"ip4": {"ip": "10.0.0.1/24"}}),
        json!({"routes": [{"dst": "nope"}]}),
        json!([]),
    ] {
        let mut v = minimal();
        v["prevResult"] = bad.clone();
        assert_eq!(conf(v).unwrap_err().code, code::DECODE, "{bad}");
    }
}

#[test]
fn version_answers_never_fail() {
    assert_eq!(version_answer(br#"{"cniVersion":"1.0.0"}"#)["cniVersion"], "1.0.0");
    assert_eq!(version_answer(b"")["cniVersion"], CURRENT_VERSION);
    assert_eq!(version_answer(br#"{"cniVersion":"0.2.0"}"#)["cniVersion"], CURRENT_VERSION);
    assert_eq!(version_answer(b"{")["supportedVersions"], json!(SUPPORTED_VERSIONS));
}

#[test]
fn errors_carry_the_configuration_version() {
    let e = CniError::config("x");
    assert_eq!(e.to_json("0.3.1"), json!({"cniVersion": "0.3.1", "code": 7, "msg": "invalid network configuration", "details": "x"}));
    let long = CniError::unsupported("k", &json!("x".repeat(1000)));
    assert!(long.msg.len() < 300);
}
