//! Golden files for every rendered nft ruleset: the fixed table with the
//! elements each option produces (icc on/off, internal, masquerade off, a
//! custom bridge name, published ports on all and on one address, links,
//! deny and allow policies). Set `BLESS=1` to rewrite them after an
//! intended change, then read the diff.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use berth_core::model::*;
use berth_core::nft::{all_elements, render_reset_script, render_table, Element};

fn golden(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {path:?}; run with BLESS=1"));
    assert_eq!(text, want, "rendered ruleset differs from {name}; BLESS=1 to accept");
}

fn net(name: &str, bridge: &str, subnets: &[&str], internal: bool, icc: bool, masq: bool) -> Network {
    Network {
        id: format!("{name:0<64}"),
        name: name.into(),
        driver: Driver::Bridge(BridgeDriver { name: bridge.into(), owned: true }),
        ipam: subnets
            .iter()
            .map(|s| {
                let subnet: ipnet::IpNet = s.parse().unwrap();
                IpamConfig {
                    subnet,
                    gateway: berth_core::ipam::from_u128(berth_core::ipam::to_u128(subnet.network()) + 1, subnet.addr()),
                    ip_range: None,
                    user_subnet: true,
                }
            })
            .collect(),
        internal,
        mtu: 1500,
        options: NetworkOptions { icc, masquerade: masq },
        raw_options: BTreeMap::new(),
        created: 0,
        predefined: name == "berth0",
        global: false,
        blocks: vec![],
    }
}

fn container(name: &str, net: &Network, ips: &[&str]) -> Container {
    let mut c = Container::new(&format!("{name:0<64}"), name, ContainerKind::Run { cmd: vec!["true".into()] }, 0);
    c.state.status = RunState::Running;
    c.attachments = vec![Attachment {
        network_id: net.id.clone(),
        static_ips: vec![],
        aliases: vec![],
        mac: None,
        ifname: None,
        endpoint: Some(Endpoint {
            id: format!("{name:e<64}"),
            addresses: ips
                .iter()
                .map(|ip| {
                    let ip: std::net::IpAddr = ip.parse().unwrap();
                    let cfg = net.ipam_for(ip).unwrap();
                    EndpointAddress { addr: ipnet::IpNet::new(ip, cfg.subnet.prefix_len()).unwrap(), gateway: Some(cfg.gateway) }
                })
                .collect(),
            mac: String::new(),
            host_ifname: String::new(),
            ifname: "eth0".into(),
            state: EndpointState::Up,
        }),
    }];
    c
}

#[test]
fn empty_table() {
    golden("empty.nft", &render_table(&BTreeSet::new()));
}

#[test]
fn option_matrix() {
    let nets = [net("berth0", "berth0", &["172.17.0.0/16"], false, true, true),
        net("quiet", "bth-quiet0000", &["10.10.0.0/24"], false, false, true),
        net("backend", "bth-backend00", &["10.20.0.0/24"], true, true, true),
        net("routed", "br-routed", &["10.30.0.0/24"], false, true, false)];
    let mut first = container("first", &nets[1], &["10.10.0.2"]);
    first.expose = vec![PortProto { port: 80, proto: Proto::Tcp }];
    first.ports = vec![
        PortMapping { host_ip: None, host_port: 32768, container: PortProto { port: 80, proto: Proto::Tcp } },
        PortMapping { host_ip: Some("127.0.0.1".parse().unwrap()), host_port: 5353, container: PortProto { port: 53, proto: Proto::Udp } },
    ];
    let second = container("second", &nets[1], &["10.10.0.3"]);
    let mut third = container("third", &nets[1], &["10.10.0.4"]);
    third.links = vec![Link { name: "first".into(), alias: "firsttest".into() }];
    let policies = vec![
        Policy {
            id: "p1".into(),
            action: PolicyAction::Deny,
            from: "192.168.28.128/32".parse().unwrap(),
            to: PolicyTarget { container: "first".into(), ports: Some((80, 80)), proto: Some(Proto::Tcp) },
        },
        Policy {
            id: "p2".into(),
            action: PolicyAction::Allow,
            from: "10.200.0.0/16".parse().unwrap(),
            to: PolicyTarget { container: "second".into(), ports: None, proto: None },
        },
    ];
    let live = [&first, &second, &third];
    let elems = all_elements(nets.iter(), &live, &policies);
    // Spot-check the semantics the golden file encodes.
    assert!(elems.contains(&Element::IccOff("bth-quiet0000".into())));
    assert!(elems.contains(&Element::InternalBridge("bth-backend00".into())));
    assert!(!elems.contains(&Element::MasqBridge("bth-backend00".into())), "internal networks are never masqueraded");
    assert!(!elems.contains(&Element::MasqBridge("br-routed".into())));
    assert_eq!(elems.iter().filter(|e| matches!(e, Element::Link { .. })).count(), 2, "one link to two exposed ports (80/tcp exposed and published, 53/udp published)");
    golden("matrix.nft", &render_reset_script(&elems));
}

/// The same options on dual-stack and IPv6-only networks: every address
/// element exists once per family, IPv6 policies and `[::1]` mappings.
#[test]
fn dual_stack_matrix() {
    let nets = [net("berth0", "berth0", &["172.17.0.0/16", "fd00:17::/64"], false, true, true),
        net("quiet6", "bth-quiet6000", &["10.10.0.0/24", "fd00:10::/64"], false, false, true),
        net("only6", "bth-only60000", &["fd00:20::/64"], true, true, true)];
    let mut first = container("first", &nets[1], &["10.10.0.2", "fd00:10::2"]);
    first.expose = vec![PortProto { port: 80, proto: Proto::Tcp }];
    first.ports = vec![
        PortMapping { host_ip: None, host_port: 8080, container: PortProto { port: 80, proto: Proto::Tcp } },
        PortMapping { host_ip: Some("::1".parse().unwrap()), host_port: 8081, container: PortProto { port: 80, proto: Proto::Tcp } },
        PortMapping { host_ip: Some("127.0.0.1".parse().unwrap()), host_port: 5353, container: PortProto { port: 53, proto: Proto::Udp } },
    ];
    let mut third = container("third", &nets[1], &["10.10.0.4", "fd00:10::4"]);
    third.links = vec![Link { name: "first".into(), alias: "firsttest".into() }];
    let lonely = container("lonely", &nets[2], &["fd00:20::2"]);
    let policies = vec![
        Policy {
            id: "p1".into(),
            action: PolicyAction::Deny,
            from: "2001:db8::/32".parse().unwrap(),
            to: PolicyTarget { container: "first".into(), ports: Some((80, 80)), proto: Some(Proto::Tcp) },
        },
        Policy {
            id: "p2".into(),
            action: PolicyAction::Allow,
            from: "fd00:99::/48".parse().unwrap(),
            to: PolicyTarget { container: "lonely".into(), ports: None, proto: None },
        },
    ];
    let live = [&first, &third, &lonely];
    let elems = all_elements(nets.iter(), &live, &policies);
    let count = |set: &str| elems.iter().filter(|e| e.set() == set).count();
    assert_eq!((count("links4"), count("links6")), (2, 2), "a link to two exposed ports in each family");
    assert_eq!((count("ports_any4"), count("ports_any6"), count("ports_addr4"), count("ports_addr6")), (1, 1, 1, 1));
    assert_eq!((count("deny4"), count("deny6"), count("guarded6")), (0, 1, 1), "policies only in their family");
    assert_eq!((count("subnets4"), count("subnets6")), (2, 3));
    assert_eq!((count("resolvers4"), count("resolvers6")), (1, 2), "user networks' resolvers on each gateway, none on the default network");
    golden("matrix6.nft", &render_reset_script(&elems));
}

/// Overlay networks: icc off and internal, a container here linked to
/// by a container on another host, and the other hosts' tunnel ends.
#[test]
fn overlay_matrix() {
    let overlay = |name: &str, subnet: &str, internal: bool, icc: bool| {
        let mut n = net(name, "", &[subnet], internal, icc, true);
        n.global = true;
        n.driver = Driver::Overlay(OverlayDriver {
            bridge: berth_core::plan::bridge_name(&n.id),
            tunnel: berth_core::plan::tunnel_name(&n.id),
            vni: 4096,
            port: 4789,
            host_prefix: 24,
            user_mtu: None,
            vtep: None,
        });
        n
    };
    let nets = [overlay("front", "10.200.0.0/16", false, false), overlay("back", "10.201.0.0/16", true, true)];
    let mut web = container("web", &nets[0], &["10.200.1.2"]);
    web.expose = vec![PortProto { port: 80, proto: Proto::Tcp }];
    // A container on another host, as the cluster view gives it.
    let mut client = container("client", &nets[0], &["10.200.2.2"]);
    client.links = vec![Link { name: "web".into(), alias: "web".into() }];
    client.labels.insert(berth_core::cluster::view::NODE_LABEL.into(), "host-b".into());
    let live = [&web, &client];
    let mut elems = all_elements(nets.iter(), &live, &[]);
    elems.insert(Element::VtepPeer { addr: "10.90.0.2".parse().unwrap(), port: 4789 });
    let has = |e: Element| elems.contains(&e);
    assert!(has(Element::TunnelIn { tunnel: "btx-front00000".into(), bridge: "bth-front00000".into() }));
    assert!(has(Element::TunnelOut { bridge: "bth-back000000".into(), tunnel: "btx-back000000".into() }), "internal overlays still span hosts");
    assert!(has(Element::Link { src: "10.200.2.2".parse().unwrap(), dst: "10.200.1.2".parse().unwrap(), proto: Proto::Tcp, port: 80 }), "a link from another host");
    assert!(has(Element::IccOff("bth-front00000".into())) && has(Element::VxlanPort(4789)));
    golden("overlay.nft", &render_reset_script(&elems));
}
