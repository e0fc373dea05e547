//! The plugin requests dockerd 20.10 really sent (captured with a logging
//! plugin, `tests/fixtures/dockerd-20.10/`), parsed and mapped.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use super::ipam::{request_address, request_pool, Pool};
use super::network::{plan_network, NetworkPlan};
use super::ports::{expose_specs, publish_specs};
use super::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dockerd-20.10")
}

/// (method, request body) of capture `NNN`.
fn capture(n: u32) -> (String, Vec<u8>) {
    let prefix = format!("{n:03}-");
    let f = std::fs::read_dir(dir()).unwrap().flatten().find(|e| e.file_name().to_string_lossy().starts_with(&prefix)).expect("capture");
    let v: Value = serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap();
    (v["method"].as_str().unwrap().trim_start_matches('/').to_string(), serde_json::to_vec(&v["request"]).unwrap())
}

fn call(n: u32) -> Call {
    let (m, b) = capture(n);
    parse_call(&m, &b).unwrap_or_else(|e| panic!("capture {n}: {e}")).expect("a known method")
}

#[test]
fn every_captured_request_parses() {
    let mut n = 0;
    for e in std::fs::read_dir(dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        let v: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let m = v["method"].as_str().unwrap().trim_start_matches('/');
        let body = serde_json::to_vec(&v["request"]).unwrap();
        assert!(parse_call(m, &body).unwrap_or_else(|e| panic!("{name}: {e}")).is_some(), "{name}: unknown method");
        n += 1;
    }
    assert_eq!(n, 144);
    // dockerd sends no body at all for the calls without arguments.
    assert_eq!(parse_call("Plugin.Activate", b"").unwrap(), Some(Call::Activate));
    assert_eq!(parse_call("NetworkDriver.AllocateNetwork", b"{}").unwrap(), None);
}

#[test]
fn malformed_requests_are_refused_by_name() {
    let e = parse_call("NetworkDriver.Join", b"{\"NetworkID\": 5}").unwrap_err().to_string();
    assert!(e.starts_with("NetworkDriver.Join:"), "{e}");
    assert!(parse_call("IpamDriver.RequestPool", b"[").is_err());
}

fn no_range(_: &ipnet::IpNet) -> Option<ipnet::IpNet> {
    None
}

#[test]
fn create_network_with_options_subnet_and_range() {
    let Call::CreateNetwork(c) = call(7) else { panic!() };
    let range = |s: &ipnet::IpNet| (s.to_string() == "10.66.0.0/24").then(|| "10.66.0.128/25".parse().unwrap());
    let NetworkPlan::Create(n) = plan_network(&c, &range).unwrap() else { panic!() };
    assert_eq!(n.name, "docker-327f5a165614");
    assert_eq!(n.id.as_deref(), Some(c.network_id.as_str()));
    let cfg = &n.ipam.as_ref().unwrap().config;
    assert_eq!(cfg.len(), 1);
    assert_eq!((cfg[0].subnet.as_deref(), cfg[0].gateway.as_deref(), cfg[0].ip_range.as_deref()), (Some("10.66.0.0/24"), Some("10.66.0.1"), Some("10.66.0.128/25")));
    assert_eq!(n.options.get("com.docker.network.bridge.enable_icc").map(String::as_str), Some("false"));
    assert_eq!(n.options.get("com.docker.network.bridge.name").map(String::as_str), Some("brx"));
    assert_eq!(n.options.get("com.docker.network.driver.mtu").map(String::as_str), Some("1400"));
    assert!(!n.internal && !n.enable_ipv6);
}

#[test]
fn create_network_internal_dual_stack() {
    let Call::CreateNetwork(c) = call(12) else { panic!() };
    let NetworkPlan::Create(n) = plan_network(&c, &no_range).unwrap() else { panic!() };
    assert!(n.internal && n.enable_ipv6);
    let subnets: Vec<_> = n.ipam.unwrap().config.iter().map(|c| (c.subnet.clone().unwrap(), c.gateway.clone().unwrap())).collect();
    assert_eq!(subnets, vec![("10.68.0.0/24".into(), "10.68.0.1".into()), ("fd00:68::/64".into(), "fd00:68::1".into())]);
}

#[test]
fn create_network_bound_to_a_berth_network() {
    let Call::CreateNetwork(c) = call(15) else { panic!() };
    assert_eq!(plan_network(&c, &no_range).unwrap(), NetworkPlan::Bind { network: "overlay1".into(), subnets: vec!["10.77.4.0/24".parse().unwrap()] });
    // With the default IPAM (capture 16) the subnet is Docker's.
    let Call::CreateNetwork(c) = call(16) else { panic!() };
    let NetworkPlan::Create(n) = plan_network(&c, &no_range).unwrap() else { panic!() };
    assert_eq!(n.ipam.unwrap().config[0].subnet.as_deref(), Some("10.69.0.0/24"));
}

#[test]
fn create_network_refusals() {
    let Call::CreateNetwork(mut c) = call(7) else { panic!() };
    c.network_id = "nothex".into();
    assert!(plan_network(&c, &no_range).unwrap_err().to_string().contains("not a Docker id"));
    let Call::CreateNetwork(mut c) = call(15) else { panic!() };
    c.options.get_mut("com.docker.network.generic").unwrap().as_object_mut().unwrap().insert("icc".into(), "false".into());
    assert!(plan_network(&c, &no_range).unwrap_err().to_string().contains("drop icc"));
    let Call::CreateNetwork(mut c) = call(7) else { panic!() };
    c.ipv4_data.as_mut().unwrap()[0].aux_addresses = Some([("a".to_string(), "10.66.0.9".to_string())].into());
    assert!(plan_network(&c, &no_range).is_err());
}

#[test]
fn ports_of_an_endpoint() {
    let Call::CreateEndpoint(e) = call(18) else { panic!() };
    assert_eq!(publish_specs(e.options.as_ref()).unwrap(), vec!["8080:80/tcp", "127.0.0.1::81/tcp", "5353:53/udp"]);
    assert_eq!(expose_specs(e.options.as_ref()).unwrap(), vec!["53/udp", "80/tcp", "81/tcp", "90/tcp"]);
    // Join carries the same map in another order.
    let Call::Join(j) = call(19) else { panic!() };
    assert_eq!(publish_specs(j.options.as_ref()).unwrap(), publish_specs(e.options.as_ref()).unwrap());
    // A range arrives one entry per port and leaves as one spec.
    let Call::CreateEndpoint(e) = call(55) else { panic!() };
    assert_eq!(publish_specs(e.options.as_ref()).unwrap(), vec!["20000-20009:20000-20009/tcp"]);
    // -P: the driver picks the host ports.
    let Call::CreateEndpoint(e) = call(61) else { panic!() };
    assert_eq!(publish_specs(e.options.as_ref()).unwrap(), vec!["7000/tcp", "7001/udp"]);
    let Call::CreateEndpoint(e) = call(67) else { panic!() };
    assert!(publish_specs(e.options.as_ref()).unwrap().is_empty());
    for s in publish_specs(call_opts(18).as_ref()).unwrap() {
        crate::ports::parse_publish(&s).unwrap();
    }
}

fn call_opts(n: u32) -> Option<std::collections::BTreeMap<String, Value>> {
    match call(n) {
        Call::CreateEndpoint(e) => e.options,
        _ => None,
    }
}

#[test]
fn ports_refusals_and_ipv6_host_addresses() {
    let m = |v: Value| Some([(ports::PORTMAP.to_string(), v)].into_iter().collect::<std::collections::BTreeMap<_, _>>());
    let e = publish_specs(m(serde_json::json!([{"Proto": 132, "Port": 80, "HostPort": 80}])).as_ref()).unwrap_err();
    assert!(e.to_string().contains("sctp"));
    let v6 = publish_specs(m(serde_json::json!([{"Proto": 6, "Port": 80, "HostIP": "::1", "HostPort": 8080}])).as_ref()).unwrap();
    assert_eq!(v6, vec!["[::1]:8080:80/tcp"]);
    crate::ports::parse_publish(&v6[0]).unwrap();
    assert!(publish_specs(m(serde_json::json!([{"Proto": 6, "Port": 80, "HostIP": "x", "HostPort": 1}])).as_ref()).is_err());
    assert!(publish_specs(m(serde_json::json!("nope")).as_ref()).is_err());
}

#[test]
fn pools_from_requests() {
    let Call::RequestPool(r) = call(5) else { panic!() };
    let mut r = r;
    r.address_space = LOCAL_SPACE.into();
    let none = |_: bool| -> Result<ipnet::IpNet> { panic!("no choice needed") };
    let p = request_pool(&r, &[], &none).unwrap();
    assert_eq!(p.id(), "berth/10.66.0.0/24@10.66.0.128/25");
    assert_eq!(Pool::parse_id(&p.id()).unwrap(), p);
    assert!(Pool::parse_id("pool-10.66.0.0/24").is_err());
    // Overlap with a berth network or another pool: refused.
    let e = request_pool(&r, &["10.66.0.0/16".parse().unwrap()], &none).unwrap_err().to_string();
    assert!(e.contains("overlaps"), "{e}");
    // Another address space (dockerd's default) is not ours.
    let Call::RequestPool(other) = call(5) else { panic!() };
    assert!(request_pool(&other, &[], &none).is_err());
    // No subnet: berth chooses.
    let Call::RequestPool(mut r) = call(13) else { panic!() };
    r.address_space = LOCAL_SPACE.into();
    let p = request_pool(&r, &[], &|v6| Ok(if v6 { "fd00::/64" } else { "172.18.0.0/16" }.parse().unwrap())).unwrap();
    assert_eq!(p.id(), "berth/172.18.0.0/16");
    let Call::RequestPool(mut r) = call(10) else { panic!() };
    r.address_space = LOCAL_SPACE.into();
    assert_eq!(request_pool(&r, &[], &none).unwrap().id(), "berth/fd00:68::/64");
    r.v6 = false;
    assert!(request_pool(&r, &[], &none).is_err());
}

#[test]
fn addresses_from_requests() {
    let p = Pool::parse_id("berth/10.66.0.0/24@10.66.0.128/25").unwrap();
    let Call::RequestAddress(gw) = call(6) else { panic!() };
    assert_eq!(request_address(&gw, &p, None, &BTreeSet::new()).unwrap().to_string(), "10.66.0.1");
    let Call::RequestAddress(gw) = call(9) else { panic!() };
    assert!(gw.is_gateway());
    let q = Pool::parse_id("berth/10.68.0.0/24").unwrap();
    assert_eq!(q.cidr(request_address(&gw, &q, None, &BTreeSet::new()).unwrap()), "10.68.0.1/24");
    // An endpoint's address comes from the range, past what is used.
    let Call::RequestAddress(ep) = call(17) else { panic!() };
    let gwip = Some("10.66.0.1".parse().unwrap());
    let used: BTreeSet<_> = ["10.66.0.128".parse().unwrap(), "10.66.0.129".parse().unwrap()].into();
    assert_eq!(request_address(&ep, &p, gwip, &used).unwrap().to_string(), "10.66.0.130");
    // A static one (--ip): checked against the subnet, gateway and used.
    let Call::RequestAddress(st) = call(66) else { panic!() };
    assert_eq!(request_address(&st, &p, gwip, &used).unwrap().to_string(), "10.66.0.150");
    let busy: BTreeSet<_> = ["10.66.0.150".parse().unwrap()].into();
    assert!(request_address(&st, &p, gwip, &busy).unwrap_err().to_string().contains("in use"));
    let mut out = st.clone();
    out.address = "10.67.0.5".into();
    assert!(request_address(&out, &p, gwip, &used).is_err());
    out.address = "10.66.0.1".into();
    assert!(request_address(&out, &p, gwip, &used).is_err());
}

#[test]
fn sandbox_and_network_names() {
    assert_eq!(sandbox_container_name("/var/run/docker/netns/71533e324ebf").unwrap(), "docker-71533e324ebf");
    assert!(sandbox_container_name("/var/run/docker/netns/").is_err());
    assert!(sandbox_container_name("/x/a b").is_err());
    assert!(network_name("abc").is_err());
}
