//! Request flows against the recording fake kernel (no root): rollback on
//! failure leaves store and kernel as they were; host ports are never given
//! twice (property test).

use std::collections::HashSet;
use std::sync::Arc;

use berth_core::config::{ConfigFile, DaemonConfig};
use berth_core::request::{AttachRequest, NetworkCreate};
use berth_linux::kernel::fake::FakeKernel;
use berth_daemon::Daemon;
use proptest::prelude::*;

fn daemon() -> (Arc<Daemon>, Arc<FakeKernel>, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let cfg = DaemonConfig::resolve(&ConfigFile {
        root: Some(dir.0.join("root")),
        exec_root: Some(dir.0.join("run")),
        ..Default::default()
    })
    .unwrap();
    let k = Arc::new(FakeKernel::default());
    let d = Daemon::open(cfg, k.clone(), None).unwrap();
    (d, k, dir)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let mut b = [0u8; 8];
            // SAFETY: getrandom into a local buffer.
            unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 8, 0) };
            let p = std::env::temp_dir().join(format!("berth-flow-{}", u64::from_ne_bytes(b)));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn attach(name: &str, publish: &[&str]) -> AttachRequest {
    AttachRequest {
        netns: format!("/fake/ns/{name}"),
        name: name.into(),
        publish: publish.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn failed_requests_roll_back() {
    let (d, k, _dir) = daemon();
    d.attach(&attach("ok", &["8080:80"])).unwrap();
    let (store, links, elems) = (d.store.dump().unwrap(), k.links.lock().unwrap().clone(), k.elements.lock().unwrap().clone());
    for op in ["add_endpoint", "apply_elements"] {
        k.fail.lock().unwrap().insert(op);
        let err = d.attach(&attach("x", &["9090:80"])).unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        k.fail.lock().unwrap().remove(op);
        assert_eq!(d.store.dump().unwrap(), store, "store rolled back after {op} failed");
        assert_eq!(*k.links.lock().unwrap(), links, "links rolled back after {op} failed");
        assert_eq!(*k.elements.lock().unwrap(), elems, "elements rolled back after {op} failed");
    }
    k.fail.lock().unwrap().insert("ensure_network");
    assert!(d.network_create(&NetworkCreate { name: "n".into(), ..Default::default() }).is_err());
    k.fail.lock().unwrap().clear();
    assert_eq!(d.store.dump().unwrap(), store, "network create rolled back");
    // And the next request works, with the address the failed ones did not keep.
    d.attach(&attach("y", &["9090:80"])).unwrap();
}

#[test]
fn a_host_process_port_is_refused() {
    let (d, k, _dir) = daemon();
    k.busy_ports.lock().unwrap().insert(8081);
    let err = d.attach(&attach("x", &["8081:80"])).unwrap_err().to_string();
    assert!(err.contains("address already in use"), "{err}");
    let err = d.attach(&attach("y", &["8000-8100:8000-8100"])).unwrap_err().to_string();
    assert!(err.contains("address already in use"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    /// Whatever mix of explicit ports, ranges and random ports is asked for,
    /// concurrently held host ports never repeat, random ones come from the
    /// ephemeral range, and detaching frees them.
    #[test]
    fn host_ports_never_twice(reqs in proptest::collection::vec((0u8..4, 1u16..30, any::<bool>()), 1..25)) {
        let (d, _k, _dir) = daemon();
        let mut live = Vec::new();
        for (i, (kind, n, detach_one)) in reqs.iter().enumerate() {
            let spec = match kind {
                0 => format!("{}:80", 8000 + n),
                1 => format!("{}-{}:{}-{}", 8000 + n, 8000 + n + 3, 9000, 9003),
                2 => "80".to_string(),
                _ => format!("{}/udp", 53),
            };
            let name = format!("c{i}");
            if d.attach(&attach(&name, &[&spec])).is_ok() {
                live.push(name);
            }
            if *detach_one && !live.is_empty() {
                let victim = live.remove(0);
                d.detach(&victim).unwrap();
            }
            let st = d.st();
            let mut seen = HashSet::new();
            for c in st.containers.values() {
                for p in &c.ports {
                    prop_assert!(seen.insert((p.container.proto, p.host_port)), "host port {} twice", p.host_port);
                    if spec == "80" || spec.ends_with("/udp") {
                        prop_assert!(p.host_port >= 8000 || (40000..=40099).contains(&p.host_port));
                    }
                }
            }
        }
    }
}

/// One attach for several networks, each with what a runtime may keep:
/// static addresses, its MAC, its interface name, aliases; and the errors
/// for a clash of each.
#[test]
fn attach_to_several_networks_with_what_the_runtime_keeps() {
    use berth_core::request::AttachNetwork;
    let (d, _k, _dir) = daemon();
    let mk = |name: &str, subnet: &str| NetworkCreate {
        name: name.into(),
        ipam: Some(berth_core::request::IpamRequest { config: vec![berth_core::request::IpamConfigRequest { subnet: Some(subnet.into()), ..Default::default() }] }),
        ..Default::default()
    };
    d.network_create(&mk("a", "10.31.0.0/24")).unwrap();
    d.network_create(&mk("b", "10.32.0.0/24")).unwrap();
    let req = AttachRequest {
        netns: "/fake/ns/multi".into(),
        name: "multi".into(),
        networks: vec![
            AttachNetwork { network: "a".into(), ip: Some("10.31.0.9".parse().unwrap()), mac: Some("0A:58:0A:1F:00:09".into()), ifname: Some("eth1".into()), aliases: vec!["web".into()], ..Default::default() },
            AttachNetwork { network: "b".into(), ifname: Some("eth0".into()), ..Default::default() },
        ],
        labels: [("io.podman.id".to_string(), "abc".to_string())].into(),
        ..Default::default()
    };
    let id = d.attach(&req).unwrap();
    let c = d.st().containers.get(&id).unwrap().clone();
    let ep = |i: usize| c.attachments[i].endpoint.clone().unwrap();
    assert_eq!((ep(0).ifname.as_str(), ep(0).mac.as_str(), ep(0).addresses[0].addr.to_string()), ("eth1", "0a:58:0a:1f:00:09", "10.31.0.9/24".to_string()));
    assert_eq!(ep(1).ifname, "eth0");
    assert_eq!(c.attachments[0].aliases, vec!["web".to_string()]);
    assert_eq!(c.labels["io.podman.id"], "abc");
    // Clashes: the same MAC on the network, an interface name twice, a network twice, both shapes.
    let mut again = req.clone();
    again.name = "other".into();
    again.networks[0].ip = None;
    again.networks.truncate(1);
    assert!(d.attach(&again).unwrap_err().to_string().contains("MAC address 0a:58:0a:1f:00:09 is already in use on network a"));
    let mut twice = req.clone();
    twice.name = "other".into();
    twice.networks = vec![AttachNetwork { network: "a".into(), ifname: Some("eth0".into()), ..Default::default() }, AttachNetwork { network: "b".into(), ifname: Some("eth0".into()), ..Default::default() }];
    assert!(d.attach(&twice).unwrap_err().to_string().contains("interface name eth0 is used twice"));
    twice.networks[1].network = "a".into();
    twice.networks[1].ifname = None;
    assert!(d.attach(&twice).unwrap_err().to_string().contains("already connected to network a"));
    let mut both = again.clone();
    both.network = Some("a".into());
    assert!(d.attach(&both).unwrap_err().to_string().contains("not both"));
    let mut bad = again.clone();
    bad.networks[0].mac = Some("01:00:5e:00:00:01".into());
    assert!(d.attach(&bad).unwrap_err().to_string().contains("invalid MAC address"));
}
