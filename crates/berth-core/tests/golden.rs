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

fn net(name: &str, bridge: &str, subnet: &str, internal: bool, icc: bool, masq: bool) -> Network {
    let subnet: ipnet::IpNet = subnet.parse().unwrap();
    Network {
        id: format!("{name:0<64}"),
        name: name.into(),
        driver: Driver::Bridge,
        ipam: vec![IpamConfig {
            subnet,
            gateway: berth_core::ipam::from_u128(berth_core::ipam::to_u128(subnet.network()) + 1, subnet.addr()),
            ip_range: None,
            user_subnet: true,
        }],
        internal,
        mtu: 1500,
        options: NetworkOptions { icc, masquerade: masq },
        raw_options: BTreeMap::new(),
        bridge: bridge.into(),
        bridge_owned: true,
        created: 0,
        predefined: false,
    }
}

fn container(name: &str, net: &Network, ip: &str) -> Container {
    let mut c = Container::new(&format!("{name:0<64}"), name, ContainerKind::Run { cmd: vec!["true".into()] }, 0);
    c.state.status = RunState::Running;
    c.attachments = vec![Attachment {
        network_id: net.id.clone(),
        static_ip: None,
        aliases: vec![],
        endpoint: Some(Endpoint {
            id: format!("{name:e<64}"),
            ip: ip.parse().unwrap(),
            prefix_len: 16,
            gateway: Some(net.ipam[0].gateway),
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
    let nets = [net("berth0", "berth0", "172.17.0.0/16", false, true, true),
        net("quiet", "bth-quiet0000", "10.10.0.0/24", false, false, true),
        net("backend", "bth-backend00", "10.20.0.0/24", true, true, true),
        net("routed", "br-routed", "10.30.0.0/24", false, true, false)];
    let mut first = container("first", &nets[1], "10.10.0.2");
    first.expose = vec![PortProto { port: 80, proto: Proto::Tcp }];
    first.ports = vec![
        PortMapping { host_ip: None, host_port: 32768, container: PortProto { port: 80, proto: Proto::Tcp } },
        PortMapping { host_ip: Some("127.0.0.1".parse().unwrap()), host_port: 5353, container: PortProto { port: 53, proto: Proto::Udp } },
    ];
    let second = container("second", &nets[1], "10.10.0.3");
    let mut third = container("third", &nets[1], "10.10.0.4");
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
    assert_eq!(elems.iter().filter(|e| matches!(e, Element::Link4 { .. })).count(), 2, "one link to two exposed ports (80/tcp exposed and published, 53/udp published)");
    golden("matrix.nft", &render_reset_script(&elems));
}
