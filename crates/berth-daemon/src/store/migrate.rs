//! The store's schema version and the steps from each earlier version.
//!
//! Version 1 is every store written before versions were recorded (no
//! `meta` table). Each step turns the JSON of one record of one table
//! into the next version's shape; a store is upgraded in one transaction
//! when it is opened, after a copy of the old file is kept next to it.
//!
//! 1 → 2 (dual-stack model with a driver seam):
//! - network: `"driver": "bridge", "bridge": NAME, "bridge_owned": B`
//!   becomes `"driver": {"type": "bridge", "name": NAME, "owned": B}`;
//! - container: an attachment's `static_ip` becomes `static_ips` (a list),
//!   an endpoint's `ip`/`prefix_len`/`gateway` become `addresses`, a list
//!   of `{"addr": "IP/PREFIX", "gateway": GW}`;
//! - policy: unchanged (`from` was an IPv4 CIDR and is now any CIDR).

use serde_json::{json, Value};

/// The schema this release writes.
pub const SCHEMA: u32 = 2;

/// Upgrades one record of `table` from `version` to [`SCHEMA`].
pub fn upgrade(table: &str, version: u32, mut v: Value) -> Result<Value, String> {
    for from in version..SCHEMA {
        v = match (from, table) {
            (1, "networks") => network_1_to_2(v)?,
            (1, "containers") => container_1_to_2(v)?,
            (1, _) => v,
            (other, _) => return Err(format!("no upgrade from schema {other}")),
        };
    }
    Ok(v)
}

fn object(v: &mut Value, what: &str) -> Result<serde_json::Map<String, Value>, String> {
    match v.take() {
        Value::Object(m) => Ok(m),
        other => Err(format!("{what} is not an object: {other}")),
    }
}

fn network_1_to_2(mut v: Value) -> Result<Value, String> {
    let mut m = object(&mut v, "network")?;
    let kind = m.remove("driver").and_then(|d| d.as_str().map(str::to_string)).unwrap_or_else(|| "bridge".into());
    let name = m.remove("bridge").ok_or("network without a bridge")?;
    let owned = m.remove("bridge_owned").unwrap_or(Value::Bool(true));
    m.insert("driver".into(), json!({"type": kind, "name": name, "owned": owned}));
    Ok(Value::Object(m))
}

fn container_1_to_2(mut v: Value) -> Result<Value, String> {
    let mut m = object(&mut v, "container")?;
    let attachments = m.get_mut("attachments").and_then(Value::as_array_mut).ok_or("container without attachments")?;
    for a in attachments.iter_mut() {
        let a = a.as_object_mut().ok_or("attachment is not an object")?;
        let ip = a.remove("static_ip").unwrap_or(Value::Null);
        a.insert("static_ips".into(), if ip.is_null() { json!([]) } else { json!([ip]) });
        if let Some(e) = a.get_mut("endpoint").and_then(Value::as_object_mut) {
            let ip = e.remove("ip").and_then(|x| x.as_str().map(str::to_string)).ok_or("endpoint without an address")?;
            let prefix = e.remove("prefix_len").and_then(|x| x.as_u64()).ok_or("endpoint without a prefix")?;
            let gateway = e.remove("gateway").unwrap_or(Value::Null);
            e.insert("addresses".into(), json!([{"addr": format!("{ip}/{prefix}"), "gateway": gateway}]));
        }
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::model::{Container, Network};

    #[test]
    fn version_1_records_become_todays() {
        let net = json!({"id": "n", "name": "web", "driver": "bridge", "ipam": [{"subnet": "10.70.0.0/16", "gateway": "10.70.0.254", "ip_range": "10.70.1.0/24", "user_subnet": true}],
            "internal": false, "mtu": 1400, "options": {"icc": false, "masquerade": false}, "raw_options": {"icc": "false"}, "bridge": "bth-b0aa9f332b", "bridge_owned": false, "created": 7, "predefined": false});
        let n: Network = serde_json::from_value(upgrade("networks", 1, net).unwrap()).unwrap();
        assert_eq!((n.bridge(), n.owns_bridge(), n.mtu), ("bth-b0aa9f332b", false, 1400));
        let ctr = json!({"id": "c", "name": "a1", "hostname": "a1", "kind": {"type": "attached", "netns": "/run/netns/a1"},
            "state": {"status": "running", "pid": null, "shim_pid": null, "shim_start": null, "exit_code": null, "started_at": 1, "finished_at": 0}, "created": 1,
            "attachments": [{"network_id": "n", "static_ip": "10.70.1.9", "aliases": [], "endpoint": {"id": "e", "ip": "10.70.1.9", "prefix_len": 16, "gateway": "10.70.0.254", "mac": "02:42:0a:46:01:09", "host_ifname": "bthve", "ifname": "eth0", "state": "up"}},
                            {"network_id": "m", "static_ip": null, "aliases": ["x"], "endpoint": null}],
            "expose": [], "publish": [], "publish_all": false, "ports": [], "links": [], "link_env": false, "dns": [], "env": [], "link_vars": []});
        let c: Container = serde_json::from_value(upgrade("containers", 1, ctr).unwrap()).unwrap();
        assert_eq!(c.attachments[0].static_ips, vec!["10.70.1.9".parse::<std::net::IpAddr>().unwrap()]);
        let e = c.attachments[0].endpoint.as_ref().unwrap();
        assert_eq!(e.addresses[0].addr.to_string(), "10.70.1.9/16");
        assert_eq!(e.addresses[0].gateway.unwrap().to_string(), "10.70.0.254");
        assert!(c.attachments[1].static_ips.is_empty() && c.attachments[1].endpoint.is_none());
        assert_eq!(upgrade("containers", SCHEMA, json!({"x": 1})).unwrap(), json!({"x": 1}), "today's records are left alone");
        assert!(upgrade("networks", 1, json!([])).is_err());
    }
}
