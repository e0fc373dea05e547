//! JSON views in Docker's shapes (`inspect`, `ps`, `network inspect`), so
//! scripts written against Docker's output read berth's too.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::model::{Container, ContainerKind, Network, RunState};

/// RFC 3339 UTC time from seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    if secs == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn ports_map(c: &Container) -> Value {
    let mut m = Map::new();
    for e in &c.expose {
        m.entry(e.to_string()).or_insert(Value::Null);
    }
    for (port, ip, host_port) in c.bindings() {
        let v = m.entry(port.to_string()).or_insert(Value::Null);
        if v.is_null() {
            *v = json!([]);
        }
        v.as_array_mut().unwrap().push(json!({"HostIp": ip.to_string(), "HostPort": host_port.to_string()}));
    }
    Value::Object(m)
}

/// One endpoint as Docker shows it under `NetworkSettings.Networks.NAME`.
fn endpoint_view(n: &Network, a: &crate::model::Attachment, links: Value) -> Value {
    let e = a.endpoint.as_ref();
    let v4 = e.and_then(|e| e.address(false));
    let v6 = e.and_then(|e| e.address(true));
    let mut ipam = Map::new();
    for ip in &a.static_ips {
        ipam.insert(if ip.is_ipv6() { "IPv6Address" } else { "IPv4Address" }.into(), json!(ip.to_string()));
    }
    json!({
        "NetworkID": n.id,
        "EndpointID": e.map(|e| e.id.clone()).unwrap_or_default(),
        "Gateway": v4.and_then(|a| a.gateway).map(|g| g.to_string()).unwrap_or_default(),
        "IPAddress": v4.map(|a| a.ip().to_string()).unwrap_or_default(),
        "IPPrefixLen": v4.map(|a| a.addr.prefix_len()).unwrap_or(0),
        "IPv6Gateway": v6.and_then(|a| a.gateway).map(|g| g.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": v6.map(|a| a.ip().to_string()).unwrap_or_default(),
        "GlobalIPv6PrefixLen": v6.map(|a| a.addr.prefix_len()).unwrap_or(0),
        "MacAddress": e.map(|e| e.mac.clone()).unwrap_or_default(),
        "Aliases": a.aliases,
        "IPAMConfig": if ipam.is_empty() { Value::Null } else { Value::Object(ipam) },
        "Links": links,
    })
}

/// The environment a container's processes get (Docker's `Config.Env`).
pub fn container_env(c: &Container) -> Vec<(String, String)> {
    let mut v = vec![
        ("PATH".to_string(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()),
        ("HOSTNAME".to_string(), c.hostname.clone()),
        ("HOME".to_string(), "/root".to_string()),
    ];
    v.extend(c.env.iter().cloned());
    v.extend(c.link_vars.iter().cloned());
    v
}

/// `berth inspect NAME` (Docker's container shape).
pub fn container_inspect(c: &Container, networks: &BTreeMap<String, Network>) -> Value {
    let (path, args, netns) = match &c.kind {
        ContainerKind::Run { cmd } => (cmd.first().cloned().unwrap_or_default(), cmd[1.min(cmd.len())..].to_vec(), None),
        ContainerKind::Attached { netns } => (String::new(), vec![], Some(netns.clone())),
    };
    let mut nets = Map::new();
    let mut first: Option<Value> = None;
    for a in &c.attachments {
        let Some(n) = networks.get(&a.network_id) else { continue };
        let links = if n.predefined { Value::Null } else { json!(c.links.iter().map(|l| format!("{}:{}", l.name, l.alias)).collect::<Vec<_>>()) };
        let v = endpoint_view(n, a, links);
        if first.is_none() && a.endpoint.is_some() {
            first = Some(v.clone());
        }
        nets.insert(n.name.clone(), v);
    }
    let first = first.unwrap_or(json!({}));
    let exposed: Map<String, Value> = c.exposed_ports().iter().map(|p| (p.to_string(), json!({}))).collect();
    let mut bindings = Map::new();
    for s in &c.publish {
        for (i, cp) in (s.container_ports.0..=s.container_ports.1).enumerate() {
            let host = s.host_ports.map(|(h1, h2)| if h1 != h2 && s.container_ports.0 == s.container_ports.1 { format!("{h1}-{h2}") } else { (h1 + i as u16).to_string() }).unwrap_or_default();
            let key = format!("{cp}/{}", s.proto);
            let e = bindings.entry(key).or_insert(json!([]));
            e.as_array_mut().unwrap().push(json!({"HostIp": s.host_ip.map(|i| i.to_string()).unwrap_or_default(), "HostPort": host}));
        }
    }
    let network_mode = c.attachments.first().and_then(|a| networks.get(&a.network_id)).map(|n| n.name.clone()).unwrap_or_else(|| "none".into());
    let running = c.state.status.is_live();
    json!({
        "Id": c.id,
        "Created": rfc3339(c.created),
        "Path": path,
        "Args": args,
        "State": {
            "Status": c.state.status.as_str(),
            "Running": running,
            "Paused": false,
            "Restarting": c.state.status == RunState::Starting,
            "Dead": false,
            "Pid": c.state.pid.unwrap_or(0),
            "ExitCode": c.state.exit_code.unwrap_or(0),
            "StartedAt": rfc3339(c.state.started_at),
            "FinishedAt": rfc3339(c.state.finished_at),
        },
        "Name": format!("/{}", c.name),
        "HostConfig": {
            "NetworkMode": network_mode,
            "Links": if c.links.is_empty() { Value::Null } else { json!(c.links.iter().map(|l| format!("/{}:/{}/{}", l.name, c.name, l.alias)).collect::<Vec<_>>()) },
            "PortBindings": bindings,
            "PublishAllPorts": c.publish_all,
            "Dns": c.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "Config": {
            "Hostname": c.hostname,
            "Cmd": match &c.kind { ContainerKind::Run { cmd } => json!(cmd), _ => Value::Null },
            "Env": crate::view::container_env(c).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "ExposedPorts": exposed,
            "Labels": c.labels,
        },
        "NetworkSettings": {
            "SandboxKey": netns.clone().unwrap_or_else(|| c.state.pid.map(|p| format!("/proc/{p}/ns/net")).unwrap_or_default()),
            "Ports": ports_map(c),
            "IPAddress": first.get("IPAddress").cloned().unwrap_or(json!("")),
            "IPPrefixLen": first.get("IPPrefixLen").cloned().unwrap_or(json!(0)),
            "Gateway": first.get("Gateway").cloned().unwrap_or(json!("")),
            "GlobalIPv6Address": first.get("GlobalIPv6Address").cloned().unwrap_or(json!("")),
            "GlobalIPv6PrefixLen": first.get("GlobalIPv6PrefixLen").cloned().unwrap_or(json!(0)),
            "IPv6Gateway": first.get("IPv6Gateway").cloned().unwrap_or(json!("")),
            "MacAddress": first.get("MacAddress").cloned().unwrap_or(json!("")),
            "Networks": nets,
        },
        "Berth": {
            "Kind": match c.kind { ContainerKind::Run { .. } => "run", ContainerKind::Attached { .. } => "attached" },
            "Netns": netns,
            "ShimPid": c.state.shim_pid,
        },
    })
}

/// `berth network inspect NAME` (Docker's network shape).
pub fn network_inspect<'a>(n: &Network, containers: impl IntoIterator<Item = &'a Container>) -> Value {
    let mut ctrs = Map::new();
    for c in containers {
        for a in c.attachments.iter().filter(|a| a.network_id == n.id) {
            if let Some(e) = &a.endpoint {
                let addr = |v6: bool| e.address(v6).map(|a| a.addr.to_string()).unwrap_or_default();
                ctrs.insert(
                    c.id.clone(),
                    json!({"Name": c.name, "EndpointID": e.id, "MacAddress": e.mac, "IPv4Address": addr(false), "IPv6Address": addr(true)}),
                );
            }
        }
    }
    let mut options: Map<String, Value> = n.raw_options.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    if n.predefined {
        options.insert("icc".into(), json!(n.options.icc.to_string()));
        options.insert("masquerade".into(), json!(n.options.masquerade.to_string()));
        options.insert("bridge_name".into(), json!(n.bridge()));
        options.insert("mtu".into(), json!(n.mtu.to_string()));
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": rfc3339(n.created),
        "Scope": n.scope(),
        "Driver": n.driver.as_str(),
        "EnableIPv6": n.ipv6().is_some(),
        "EnableIPv4": n.ipv4().is_some(),
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": n.ipam.iter().map(|c| {
                let mut m = json!({"Subnet": c.subnet.to_string(), "Gateway": c.gateway.to_string()});
                if let Some(r) = c.ip_range {
                    m["IPRange"] = json!(r.to_string());
                }
                m
            }).collect::<Vec<_>>(),
        },
        "Internal": n.internal,
        "Attachable": true,
        "Containers": ctrs,
        "Options": options,
        "Labels": {},
        "Berth": berth_part(n),
    })
}

/// berth's own view of a network: its devices and, for a network that
/// spans hosts, this host's address blocks and the tunnel.
fn berth_part(n: &Network) -> Value {
    let mut b = json!({"Bridge": n.bridge(), "BridgeOwned": n.owns_bridge(), "Icc": n.options.icc, "Masquerade": n.options.masquerade, "MTU": n.mtu});
    if n.global {
        b["HostBlocks"] = json!(n.blocks.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    }
    match &n.driver {
        crate::model::Driver::Overlay(o) => {
            b["Tunnel"] = json!(o.tunnel);
            b["VNI"] = json!(o.vni);
            b["VxlanPort"] = json!(o.port);
            b["HostBlockPrefix"] = json!(o.host_prefix);
            b["HostAddress"] = json!(crate::driver::overlay::host_address(n).map(|a| a.to_string()));
        }
        crate::model::Driver::Macvlan(m) => {
            b["Parent"] = json!(m.parent);
            b.as_object_mut().map(|o| o.remove("Bridge"));
        }
        crate::model::Driver::Bridge(_) => {}
    }
    b
}

/// One row of `berth ps`.
pub fn container_summary(c: &Container, networks: &BTreeMap<String, Network>, now: u64) -> Value {
    let status = match c.state.status {
        RunState::Running | RunState::Stopping | RunState::Starting => format!("Up {}", ago(now.saturating_sub(c.state.started_at))),
        RunState::Exited => format!("Exited ({}) {} ago", c.state.exit_code.unwrap_or(0), ago(now.saturating_sub(c.state.finished_at))),
        RunState::Created => "Created".to_string(),
        RunState::Removing => "Removal In Progress".to_string(),
    };
    let command = match &c.kind {
        ContainerKind::Run { cmd } => cmd.join(" "),
        ContainerKind::Attached { netns } => format!("(attached {netns})"),
    };
    let nets: Vec<Value> = c
        .attachments
        .iter()
        .filter_map(|a| {
            networks.get(&a.network_id).map(|n| {
                let ip = |v6: bool| a.endpoint.as_ref().and_then(|e| e.address(v6)).map(|x| x.ip().to_string()).unwrap_or_default();
                json!({"Name": n.name, "IPAddress": ip(false), "GlobalIPv6Address": ip(true)})
            })
        })
        .collect();
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Command": command,
        "Created": c.created,
        "State": c.state.status.as_str(),
        "Status": status,
        "Ports": c.bindings().iter().map(|(p, ip, hp)| json!({"IP": ip.to_string(), "PrivatePort": p.port, "PublicPort": hp, "Type": p.proto.as_str()})).collect::<Vec<_>>(),
        "Networks": nets,
        "Labels": c.labels,
    })
}

/// A container's live endpoints with what a runtime's front end reports
/// back (a CNI result, a netavark status): the bridge and its MAC, both
/// ends of the veth pair, addresses with their gateways, the MTU and the
/// network's resolver addresses (`dns` gives them per network). All of it
/// is the daemon's record; nothing is read back from the kernel.
pub fn endpoints_view(c: &Container, networks: &BTreeMap<String, Network>, dns: impl Fn(&Network) -> Vec<std::net::IpAddr>) -> Value {
    let eps: Vec<Value> = c
        .endpoints()
        .filter_map(|(a, e)| {
            let n = networks.get(&a.network_id)?;
            let bridge_mac = n.owns_bridge().then(|| crate::plan::bridge_mac(&n.id));
            Some(json!({
                "Network": n.name,
                "NetworkID": n.id,
                "Bridge": n.bridge(),
                "BridgeMac": bridge_mac,
                "Mtu": n.mtu,
                "EndpointID": e.id,
                "HostIfname": e.host_ifname,
                "HostMac": crate::plan::bridge_mac(&n.id),
                "Ifname": e.ifname,
                "Mac": e.mac,
                "Addresses": e.addresses.iter().map(|x| json!({"Address": x.addr.to_string(), "Gateway": x.gateway.map(|g| g.to_string())})).collect::<Vec<_>>(),
                "Dns": dns(n).iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            }))
        })
        .collect();
    json!(eps)
}

fn ago(s: u64) -> String {
    match s {
        0..=1 => "Less than a second".to_string(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_string(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".to_string(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
