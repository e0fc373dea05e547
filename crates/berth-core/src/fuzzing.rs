//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the
//! regression test that replays their corpora on stable (`tests/fuzz_corpus.rs`).
//! Each takes arbitrary bytes and must never panic.

use std::collections::BTreeMap;

use crate::config::{ConfigFile, DaemonConfig};
use crate::request::{self, AttachRequest, NetworkConnect, NetworkContext, NetworkCreate, PolicyRequest, RunRequest};
use crate::subnets::{self, AddressPool};

fn text(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

/// `-p` and `--expose` specifications.
pub fn publish_spec(data: &[u8]) {
    let s = text(data);
    if let Ok(p) = crate::ports::parse_publish(s) {
        // What parses is internally consistent.
        assert!(p.container_ports.0 >= 1 && p.container_ports.0 <= p.container_ports.1);
        if let Some((a, b)) = p.host_ports {
            assert!(a >= 1 && a <= b);
        }
    }
    let _ = crate::ports::parse_expose(s);
}

/// CIDRs, address pools, network options and policy targets.
pub fn cidr_and_options(data: &[u8]) {
    let s = text(data);
    if let Ok(n) = subnets::parse_subnet(s) {
        assert_eq!(n.addr(), n.network());
    }
    let _ = subnets::parse_cidr_any(s);
    let _ = subnets::parse_ip(s);
    if let Ok(p) = AddressPool::parse(s) {
        assert!(p.blocks().next().is_some());
    }
    let opts: BTreeMap<String, String> =
        s.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let _ = request::parse_options(&opts, true);
    let mut parts = s.splitn(3, '\n');
    let req = PolicyRequest {
        action: parts.next().unwrap_or("").to_string(),
        from: parts.next().unwrap_or("").to_string(),
        to: parts.next().unwrap_or("").to_string(),
    };
    let _ = request::validate_policy(&req, "x");
    let _ = crate::names::validate_name(s);
    let _ = crate::names::validate_hostname(s);
    let _ = crate::dns::normalize(s);
    let _ = crate::dns::parse_reverse(s);
}

/// The daemon's JSON configuration file.
pub fn daemon_config(data: &[u8]) {
    if let Ok(c) = ConfigFile::parse_json(text(data)) {
        let _ = DaemonConfig::resolve(&c);
        let _ = ConfigFile::merge(&c, &ConfigFile::default());
    }
}

/// API request bodies, validated against a fixed world.
pub fn api_bodies(data: &[u8]) {
    let _ = serde_json::from_slice::<RunRequest>(data);
    let _ = serde_json::from_slice::<AttachRequest>(data);
    let _ = serde_json::from_slice::<NetworkConnect>(data);
    if let Ok(p) = serde_json::from_slice::<PolicyRequest>(data) {
        let _ = request::validate_policy(&p, "x");
    }
    if let Ok(req) = serde_json::from_slice::<NetworkCreate>(data) {
        let pools = subnets::with_default_pools(vec![], b"fuzz");
        let host: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let vnis = std::collections::BTreeMap::from([(4096u32, "other".to_string())]);
        // Half the inputs as a cluster member (global networks allowed).
        let cluster = data.len().is_multiple_of(2).then_some(request::ClusterContext { vnis: &vnis });
        let ctx = NetworkContext {
            networks: vec![("berth0", "berth0", vec!["172.17.0.0/16".parse().unwrap()])],
            host_nets: &host,
            pools: &pools,
            default_mtu: 1500,
            default_icc: true,
            cluster,
        };
        if let Ok(n) = request::validate_network_create(&req, &ctx, &"0".repeat(64), 0) {
            assert!(!n.ipam.is_empty() && n.ipam.len() <= 2);
            for c in &n.ipam {
                assert!(c.subnet.contains(&c.gateway));
            }
            assert!(n.bridge().len() <= 15);
            assert!(!n.global || n.ipam.iter().all(|c| !c.is_ipv6()), "global networks are IPv4 only");
        }
    }
}

/// Records of the cluster store as a watch delivers them: any key and
/// value is applied to a view without panicking, and what the view then
/// derives (peers, remote containers) is computed without panicking.
pub fn cluster_event(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (key, value) = text.split_once('\n').unwrap_or((&text, ""));
    let mut v = crate::cluster::ClusterView::default();
    for k in [key.to_string(), format!("{}{key}", crate::cluster::keys::PREFIX)] {
        let _ = v.apply(&crate::cluster::Event::Put { key: k.clone(), value: value.to_string() });
        let _ = v.peers("n", "me");
        let _ = v.remote_containers("me");
        let _ = v.apply(&crate::cluster::Event::Delete { key: k });
    }
}


/// CNI plugin configurations and `CNI_ARGS` (`crate::cni`): whatever
/// parses yields requests and results without panicking, every port spec
/// it makes parses as `-p`, and a `prevResult` renders in every version
/// and reads back the same.
pub fn cni_config(data: &[u8]) {
    use crate::cni::{self, Attachment, CniArgs, CniResult, Version};
    let _ = cni::parse_cni_args(text(data));
    let _ = cni::version_answer(data);
    let Ok(c) = cni::parse_config(data) else { return };
    let a = Attachment { network: &c.name, container_id: "c1", ifname: "eth0" };
    assert!(crate::names::validate_name(&cni::container_name(&a)).is_ok());
    if let Ok(body) = cni::attach_body(&c, &a, "/run/netns/x", &CniArgs::default(), &[]) {
        for spec in body["Publish"].as_array().into_iter().flatten() {
            assert!(crate::ports::parse_publish(spec.as_str().unwrap()).is_ok(), "{spec}");
        }
    }
    let _ = cni::network_create_body(&c, c.prev_result.as_ref());
    if let Some(p) = &c.prev_result {
        for v in [Version::V030, Version::V031, Version::V040, Version::V100, Version::V110] {
            let back = CniResult::parse(&p.render(v)).expect("a rendered result reads back");
            assert_eq!(back.ips, p.ips);
        }
    }
}

/// podman's input to its network backend (`setup`/`teardown` and
/// `create`), planned and answered: see `netavark::fuzz_one`.
pub fn netavark_input(data: &[u8]) {
    crate::netavark::fuzz_one(data);
}

/// A Docker plugin request: the first line is the method
/// (`NetworkDriver.Join`), the rest its body. What parses maps without
/// panicking, and what the mappers give back holds together: every
/// publish and expose spec parses as berth's own, a pool's id gives the
/// pool back, an address handed out lies in its pool's subnet.
pub fn docker_request(data: &[u8]) {
    use crate::docker::{ipam, network, parse_call, ports, Call};
    let (method, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (text(&data[..i]), &data[i + 1..]),
        None => (text(data), &data[..0]),
    };
    let Ok(Some(call)) = parse_call(method, body) else { return };
    let specs = |opts: Option<&BTreeMap<String, serde_json::Value>>| {
        if let (Ok(p), Ok(e)) = (ports::publish_specs(opts), ports::expose_specs(opts)) {
            for s in &p {
                crate::ports::parse_publish(s).unwrap_or_else(|e| panic!("publish spec {s:?} made from a portmap: {e}"));
            }
            for s in &e {
                crate::ports::parse_expose(s).unwrap_or_else(|e| panic!("expose spec {s:?}: {e}"));
            }
        }
    };
    match call {
        Call::CreateNetwork(c) => {
            let _ = network::plan_network(&c, &|_| None);
        }
        Call::CreateEndpoint(c) => specs(c.options.as_ref()),
        Call::Join(j) => {
            specs(j.options.as_ref());
            let _ = crate::docker::sandbox_container_name(&j.sandbox_key);
        }
        Call::RequestPool(r) => {
            if let Ok(p) = ipam::request_pool(&r, &[], &|v6| Ok(if v6 { "fd00:1::/64" } else { "10.1.0.0/24" }.parse().unwrap())) {
                assert_eq!(ipam::Pool::parse_id(&p.id()).ok(), Some(p));
            }
        }
        Call::RequestAddress(r) => {
            if let Ok(p) = ipam::Pool::parse_id(&r.pool_id) {
                assert_eq!(ipam::Pool::parse_id(&p.id()).ok(), Some(p));
                if let Ok(ip) = ipam::request_address(&r, &p, None, &Default::default()) {
                    assert!(p.subnet.contains(&ip), "{ip} outside {}", p.subnet);
                }
            }
        }
        _ => {}
    }
}
