//! DEL, CHECK, STATUS and GC.
//!
//! DEL needs neither the namespace nor `prevResult`: the attachment's
//! berth container is named from (network, container id, ifname), so one
//! `POST /containers/NAME/detach` releases its addresses, ports, elements
//! and veth, and "no such container" is success (idempotent). GC lists the
//! containers labelled with this network and detaches those not in
//! `cni.dev/valid-attachments`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use berth_core::cni::{self, code, Attachment, CniError, PluginConfig, LABEL_CONTAINER_ID, LABEL_IFNAME, LABEL_NETWORK};
use hyper::Method;
use serde_json::Value;

use super::daemon::{message, refused, Daemon};
use super::{delegate, Env};
use crate::client::seg;

pub fn del(conf: &PluginConfig, env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    let a = Attachment { network: &conf.name, container_id: env.id(), ifname: env.ifname() };
    let name = cni::container_name(&a);
    let mut d = Daemon::new()?;
    // No store, no daemon: berth never held anything here.
    let ours = if d.has_state() || d.request_if_running(Method::GET, "/_ping", None).is_some() {
        let r = d.request(Method::POST, &format!("/containers/{}/detach", seg(&name)), None)?;
        match r.status.as_u16() {
            200..=299 | 404 => Ok(()),
            // A DEL racing another DEL of the same attachment.
            409 if message(&r).contains("already in progress") => Ok(()),
            _ => Err(refused(&r, "detach")),
        }
    } else {
        Ok(())
    };
    // The delegate's DEL runs even when ours failed (it has its own state);
    // the first error is returned.
    let theirs = match &conf.ipam {
        Some(i) => delegate::exec(&i.plugin, env.path.as_deref(), "DEL", stdin).map(|_| ()),
        None => Ok(()),
    };
    ours.and(theirs)
}

fn check_failed(details: String) -> CniError {
    CniError::new(code::CHECK_FAILED, "CHECK: the container's network is not as ADD left it", details)
}

pub fn check(conf: &PluginConfig, env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| CniError::config("CHECK needs prevResult (the result of the ADD)"))?;
    let a = Attachment { network: &conf.name, container_id: env.id(), ifname: env.ifname() };
    let name = cni::container_name(&a);
    let netns = env.netns.as_deref().unwrap_or_default();
    let mut d = Daemon::new()?;
    let r = d.request(Method::GET, &format!("/containers/{}/json", seg(&name)), None)?;
    if r.status.as_u16() == 404 {
        return Err(CniError::new(code::UNKNOWN_CONTAINER, format!("berth has no attachment of container {} ({}) to {}", env.id(), env.ifname(), conf.name), ""));
    }
    if !r.status.is_success() {
        return Err(refused(&r, "inspect"));
    }
    let v = r.json().map_err(|e| CniError::new(code::INTERNAL, "unexpected answer from the berth daemon", e.to_string()))?;
    if v["State"]["Running"] != Value::Bool(true) {
        return Err(check_failed(format!("berth's container {name} is {}", v["State"]["Status"])));
    }
    let ep = &v["NetworkSettings"]["Networks"][&conf.network];
    let recorded: BTreeSet<IpAddr> = ["IPAddress", "GlobalIPv6Address"].iter().filter_map(|k| ep[*k].as_str()).filter_map(|s| s.parse().ok()).collect();
    // What the result says the interface has (a later plugin may have
    // changed the MAC; the addresses are berth's).
    let ix = prev.interfaces.iter().position(|i| i.name == env.ifname() && i.sandbox.is_some());
    let Some(ix) = ix else { return Err(check_failed(format!("prevResult has no interface {} in a sandbox", env.ifname()))) };
    let expected: BTreeSet<IpAddr> = prev.ips.iter().filter(|ip| ip.interface == Some(ix)).map(|ip| ip.address.addr()).collect();
    if expected != recorded {
        return Err(check_failed(format!("prevResult has addresses {expected:?}, berth has {recorded:?}")));
    }
    let mac = prev.interfaces[ix].mac.clone();
    let ifname = env.ifname().to_string();
    let ns = berth_linux::netns::Netns::open(Path::new(netns)).map_err(|e| check_failed(e.to_string()))?;
    let seen = ns
        .run(move || -> Result<(bool, Option<String>, Vec<IpAddr>), String> {
            let mut s = berth_linux::netlink::RtSocket::open().map_err(|e| e.to_string())?;
            let Some(l) = berth_linux::netlink::link_index(&mut s, &ifname).map_err(|e| e.to_string())? else { return Err(format!("no interface {ifname} in {netns}")) };
            let addrs = berth_linux::netlink::list_addresses(&mut s).map_err(|e| e.to_string())?.into_iter().filter(|x| x.index == l.index).map(|x| x.addr.addr()).collect();
            Ok((l.up, l.mac, addrs))
        })
        .map_err(|e| check_failed(e.to_string()))?
        .map_err(check_failed)?;
    let (up, have_mac, addrs) = seen;
    if !up {
        return Err(check_failed(format!("{} is down", env.ifname())));
    }
    if let (Some(want), Some(have)) = (&mac, &have_mac) {
        if !want.eq_ignore_ascii_case(have) {
            return Err(check_failed(format!("{} has MAC {have}, the result says {want}", env.ifname())));
        }
    }
    for ip in &expected {
        if !addrs.contains(ip) {
            return Err(check_failed(format!("{} lacks address {ip}", env.ifname())));
        }
    }
    // The host end of the veth pair (interface 1 of berth's own result).
    if let Some(host) = v["NetworkSettings"]["Networks"][&conf.network]["EndpointID"].as_str().map(berth_core::plan::veth_name) {
        if !Path::new("/sys/class/net").join(&host).exists() && !host_link_exists(&host) {
            return Err(check_failed(format!("host interface {host} is missing")));
        }
    }
    if let Some(i) = &conf.ipam {
        delegate::exec(&i.plugin, env.path.as_deref(), "CHECK", stdin)?;
    }
    Ok(())
}

fn host_link_exists(name: &str) -> bool {
    berth_linux::netlink::RtSocket::open().ok().and_then(|mut s| berth_linux::netlink::link_index(&mut s, name).ok().flatten()).is_some()
}

fn not_available(details: impl Into<String>) -> CniError {
    CniError::new(code::NOT_AVAILABLE, "berth cannot take ADDs", details)
}

pub fn status(conf: &PluginConfig, env: &Env, _stdin: &[u8]) -> Result<(), CniError> {
    let d = Daemon::new().map_err(|e| not_available(e.to_string()))?;
    match d.request_if_running(Method::GET, "/info", None) {
        Some(r) if r.status.is_success() => {
            let v = r.json().unwrap_or_default();
            let mine = berth_linux::netns::own_id();
            if v["NetnsId"].as_u64() != Some(mine) {
                return Err(not_available(format!("the daemon at {} serves another network namespace", d.target.socket.display())));
            }
        }
        Some(r) => return Err(not_available(format!("the daemon at {} answers {}: {}", d.target.socket.display(), r.status, message(&r)))),
        // An ADD starts one: ready if it could.
        None => {
            let exe = std::env::current_exe().map_err(|e| not_available(format!("the berth binary: {e}")))?;
            if !exe.exists() {
                return Err(not_available(format!("the berth binary {} is gone", exe.display())));
            }
            std::fs::create_dir_all(&d.target.exec_root).map_err(|e| not_available(format!("no daemon answers and none can be started: {}: {e}", d.target.exec_root.display())))?;
        }
    }
    if let Some(i) = &conf.ipam {
        delegate::find(&i.plugin, env.path.as_deref()).map_err(|e| not_available(e.to_string()))?;
        if delegate::speaks(&i.plugin, env.path.as_deref(), "1.1.0") {
            delegate::exec(&i.plugin, env.path.as_deref(), "STATUS", _stdin)?;
        }
    }
    Ok(())
}

pub fn gc(conf: &PluginConfig, env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    let mut errors: Vec<String> = Vec::new();
    // No list, no judgement: libcni leaves the key out when it has none.
    if let Some(valid) = &conf.valid_attachments {
        let valid: BTreeSet<(&str, &str)> = valid.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let mut d = Daemon::new()?;
        if d.has_state() || d.request_if_running(Method::GET, "/_ping", None).is_some() {
            let r = d.request(Method::GET, "/containers/json?all=1", None)?;
            if !r.status.is_success() {
                return Err(refused(&r, "listing containers"));
            }
            let list = r.json().unwrap_or_default();
            for c in list.as_array().into_iter().flatten() {
                let l = &c["Labels"];
                if l[LABEL_NETWORK].as_str() != Some(&conf.name) {
                    continue;
                }
                let key = (l[LABEL_CONTAINER_ID].as_str().unwrap_or_default(), l[LABEL_IFNAME].as_str().unwrap_or_default());
                if valid.contains(&key) {
                    continue;
                }
                let id = c["Id"].as_str().unwrap_or_default();
                match d.request(Method::POST, &format!("/containers/{}/detach", seg(id)), None) {
                    Ok(r) if r.status.is_success() || r.status.as_u16() == 404 => {}
                    Ok(r) => errors.push(format!("{} ({} {}): {}", id, key.0, key.1, message(&r))),
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
    }
    if let Some(i) = &conf.ipam {
        if delegate::speaks(&i.plugin, env.path.as_deref(), "1.1.0") {
            if let Err(e) = delegate::exec(&i.plugin, env.path.as_deref(), "GC", stdin) {
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(code::DAEMON_REFUSED, format!("GC: {} stale attachment(s) could not be released", errors.len()), errors.join("; ")))
    }
}
