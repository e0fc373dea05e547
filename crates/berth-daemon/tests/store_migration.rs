//! A store written by the release before schema versions (berth 0.1.0 at
//! commit 78c555e, the fixture `fixtures/store-v1.db`, made by a real
//! daemon: four networks, two attached namespaces, a stopped and a running
//! container, ports, links, aliases and two policies) opens in this one
//! with every network, container, port and policy intact, and is recorded
//! as today's schema with a copy of the old file kept.

use std::net::IpAddr;

use berth_core::model::{ContainerKind, PolicyAction, Proto, RunState};
use berth_daemon::store::{Store, SCHEMA};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_version_1_store_opens_intact() {
    let dir = std::env::temp_dir().join(format!("berth-migrate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("berth.db");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1.db"), &db).unwrap();

    let store = Store::open(&db).unwrap();
    assert!(dir.join("berth.db.schema1").exists(), "the old file is kept");
    let snap = store.load().unwrap();
    let net = |name: &str| snap.networks.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("network {name}"));
    assert_eq!(snap.networks.len(), 4);
    let web = net("web");
    assert_eq!((web.bridge(), web.owns_bridge(), web.mtu, web.internal), ("bth-b0aa9f332b", true, 1400, false));
    assert!(!web.options.icc && !web.options.masquerade);
    let c = web.ipv4().unwrap();
    assert_eq!((c.subnet.to_string(), c.gateway, c.ip_range.unwrap().to_string()), ("10.70.0.0/16".into(), ip("10.70.0.254"), "10.70.1.0/24".into()));
    assert!(web.ipv6().is_none());
    assert!(net("back").internal);
    assert!(net("berth0").predefined && net("berth0").bridge() == "berth0");
    assert!(!net("auto").ipv4().unwrap().user_subnet);

    let ctr = |name: &str| snap.containers.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("container {name}"));
    assert_eq!(snap.containers.len(), 4);
    let a1 = ctr("a1");
    assert!(matches!(&a1.kind, ContainerKind::Attached { netns } if netns == "/run/netns/a1"));
    assert_eq!(a1.state.status, RunState::Running);
    assert_eq!(a1.attachments[0].static_ips, vec![ip("10.70.1.9")]);
    let e = a1.attachments[0].endpoint.as_ref().unwrap();
    assert_eq!((e.addresses.len(), e.addresses[0].addr.to_string(), e.addresses[0].gateway), (1, "10.70.1.9/16".into(), Some(ip("10.70.0.254"))));
    assert_eq!((e.mac.as_str(), e.host_ifname.as_str(), e.ifname.as_str()), ("02:42:0a:46:01:09", "bthva02ae3930bb", "eth0"));
    let ports: Vec<String> = a1.ports.iter().map(|m| format!("{:?}:{}->{}", m.host_ip, m.host_port, m.container)).collect();
    assert_eq!(ports, vec!["None:8080->80/tcp", "Some(127.0.0.1):5353->53/udp"]);
    assert_eq!(a1.expose.len(), 1);
    let a2 = ctr("a2");
    assert_eq!(a2.attachments[0].endpoint.as_ref().unwrap().addresses[0].gateway, None, "internal: no gateway");
    let r1 = ctr("r1");
    assert_eq!(r1.state.status, RunState::Exited);
    assert_eq!(r1.attachments.iter().map(|a| a.aliases.clone()).collect::<Vec<_>>(), vec![vec!["ra".to_string()], vec!["conn".to_string()]]);
    assert!(r1.attachments.iter().all(|a| a.endpoint.is_none() && a.static_ips.is_empty()));
    assert_eq!((r1.links[0].name.as_str(), r1.links[0].alias.as_str()), ("a1", "alias1"));
    assert_eq!(r1.publish[0].host_ports, Some((9000, 9001)));
    assert_eq!((r1.env.clone(), r1.dns.clone()), (vec![("K".to_string(), "V".to_string())], vec![ip("10.9.9.9")]));
    let r3 = ctr("r3");
    assert_eq!((r3.hostname.as_str(), r3.ports[0].host_ip), ("r3.example", Some(ip("127.0.0.1"))));
    assert!(r3.attachments[0].endpoint.is_some());

    assert_eq!(snap.policies.len(), 2);
    let deny = snap.policies.iter().find(|p| p.action == PolicyAction::Deny).unwrap();
    assert_eq!((deny.from.to_string(), deny.to.container.as_str(), deny.to.ports, deny.to.proto), ("10.200.55.3/32".into(), "a1", Some((80, 80)), Some(Proto::Tcp)));
    let allow = snap.policies.iter().find(|p| p.action == PolicyAction::Allow).unwrap();
    assert_eq!((allow.from.to_string(), allow.to.proto), ("10.0.0.0/8".into(), Some(Proto::Udp)));

    // Recorded as today's schema: opening again upgrades nothing.
    drop(store);
    std::fs::remove_file(dir.join("berth.db.schema1")).unwrap();
    let again = Store::open(&db).unwrap();
    assert!(!dir.join("berth.db.schema1").exists(), "schema {SCHEMA} needs no upgrade");
    assert_eq!(again.load().unwrap().containers.len(), 4);
    drop(again);
    std::fs::remove_dir_all(&dir).unwrap();
}
