//! The fuzz entry (`fuzz/fuzz_targets/netavark_input.rs`, replayed on
//! stable by `tests/fuzz_corpus.rs`): arbitrary bytes as podman's input,
//! and the invariants that tie the planner to the answer.

use ipnet::IpNet;
use serde_json::json;

use super::create::{create, BerthNetworks, CreateInput};
use super::{check_network, parse_input, plan_setup, status_block, teardown_plan, Facts};

/// Never panics; what plans is consistent with itself: every body is an
/// object, the StatusBlock of the planned endpoints has one entry per
/// network, and a berth network made from a plan matches that plan.
pub fn fuzz_one(data: &[u8]) {
    if let Ok(input) = parse_input(data) {
        let _ = teardown_plan(&input, "/run/netns/x", None);
        let _ = teardown_plan(&input, "/run/netns/x", Some(&json!({"Berth": {"Kind": "attached", "Netns": "/run/netns/x"}})));
        if let Ok(plan) = plan_setup(&input) {
            assert!(plan.attach_body("/run/netns/x").is_object());
            let mut facts = Vec::new();
            for n in &plan.networks {
                assert!(n.connect_body("c").is_object());
                let body = n.create_body();
                let view = json!({
                    "Id": n.id, "Driver": "bridge", "Internal": n.internal, "IPAM": {"Config": body["IPAM"]["Config"]},
                    "Options": body["Options"], "Berth": {"Bridge": n.bridge, "MTU": n.mtu.unwrap_or(1500), "Icc": true, "Masquerade": true},
                });
                let m = check_network(n, &view).expect("a network made from the plan matches it");
                assert!(m.ours && m.dns_update.is_none());
                assert_eq!(n.ips.len(), n.subnets.len());
                let addrs = n.ips.iter().zip(&n.subnets).map(|(ip, s)| IpNet::new(*ip, s.subnet.prefix_len()).expect("prefix of a subnet")).collect();
                facts.push(Facts { network: n.name.clone(), mac: "02:42:0a:00:00:02".into(), addrs });
            }
            let all: Vec<usize> = (0..plan.networks.len()).collect();
            let st = status_block(&plan, &all, &facts).expect("a status of the planned endpoints");
            assert_eq!(st.as_object().map(|o| o.len()), Some(plan.networks.len()));
        }
    }
    if let Ok(c) = serde_json::from_slice::<CreateInput>(data) {
        if let Ok(n) = create(&c, &BerthNetworks::default(), &[], "2026-01-01T00:00:00Z") {
            assert!(n.subnets.as_ref().is_some_and(|s| !s.is_empty() && s.iter().all(|s| s.gateway.is_some_and(|g| s.subnet.contains(&g)))));
            assert!(n.network_interface.is_some());
        }
    }
}
