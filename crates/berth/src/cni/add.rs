//! ADD: one `POST /containers/attach` (the network created first when berth
//! does not have it yet), answered with the result in the configuration's
//! version. With a delegated IPAM plugin its addresses are berth's static
//! addresses; when anything fails after the IPAM ADD, the IPAM plugin gets
//! its DEL before the error is returned (spec section 4).

use berth_core::cni::{self, code, Attachment, CniError, CniResult, PluginConfig};
use hyper::Method;
use serde_json::Value;

use super::daemon::{message, refused, Daemon};
use super::{delegate, Env};
use crate::client::seg;

pub fn add(conf: &PluginConfig, env: &Env, stdin: &[u8]) -> Result<Value, CniError> {
    let ipam = match &conf.ipam {
        // A failed delegated ADD gets a DEL too before the error goes back
        // (spec section 4): it may have reserved something half-way.
        Some(i) => Some(delegate::add(&i.plugin, env.path.as_deref(), stdin).inspect_err(|_| {
            let _ = delegate::exec(&i.plugin, env.path.as_deref(), "DEL", stdin);
        })?),
        None => None,
    };
    let done = attach(conf, env, ipam.as_ref());
    match done {
        Ok(ours) => {
            let r = match &conf.prev_result {
                Some(prev) => prev.merged(&ours),
                None => ours,
            };
            Ok(r.render(conf.version.expect("checked when parsed")))
        }
        Err(e) => {
            if let Some(i) = &conf.ipam {
                if let Err(d) = delegate::exec(&i.plugin, env.path.as_deref(), "DEL", stdin) {
                    eprintln!("berth: releasing the IPAM plugin's address after a failed ADD: {d}");
                }
            }
            Err(e)
        }
    }
}

fn attach(conf: &PluginConfig, env: &Env, ipam: Option<&CniResult>) -> Result<CniResult, CniError> {
    let args = cni::parse_cni_args(&env.args)?;
    let a = Attachment { network: &conf.name, container_id: env.id(), ifname: env.ifname() };
    let netns = env.netns.as_deref().unwrap_or_default();
    let ipam_ips: Vec<std::net::IpAddr> = ipam.map(|r| r.ips.iter().map(|i| i.address.addr()).collect()).unwrap_or_default();
    let body = cni::attach_body(conf, &a, netns, &args, &ipam_ips)?;
    let name = cni::container_name(&a);
    let mut d = Daemon::new()?;
    let mut created = false;
    let mut replaced = false;
    loop {
        let r = d.request(Method::POST, "/containers/attach", Some(&body))?;
        if r.status.is_success() {
            let v = r.json().map_err(|e| CniError::new(code::INTERNAL, "unexpected answer from the berth daemon", e.to_string()))?;
            return match cni::result_from_endpoints(&v["Endpoints"], conf, netns, ipam) {
                Ok(res) => Ok(res),
                Err(e) => {
                    // Not the network asked for: undo, say why.
                    let _ = d.request(Method::POST, &format!("/containers/{}/detach", seg(&name)), None);
                    Err(e)
                }
            };
        }
        let msg = message(&r);
        match r.status.as_u16() {
            // The network, on first use.
            404 if !created && msg.contains(&format!("network {} not found", conf.network)) => {
                created = true;
                let create = cni::network_create_body(conf, ipam)?;
                let c = d.request(Method::POST, "/networks/create", Some(&create))?;
                // 409: another ADD created it meanwhile.
                if !c.status.is_success() && c.status.as_u16() != 409 {
                    return Err(refused(&c, &format!("creating network {}", conf.network)));
                }
            }
            // The same attachment is known already: an ADD twice is an
            // error (spec), but one whose namespace is gone is a leftover
            // no DEL released (ctr -d): it goes, and the ADD goes on.
            409 if !replaced && msg.contains(&format!("{name:?} is already in use")) => {
                replaced = true;
                let old = d.request(Method::GET, &format!("/containers/{}/json", seg(&name)), None)?;
                let old_ns = old.json().ok().and_then(|v| v["Berth"]["Netns"].as_str().map(str::to_string)).unwrap_or_default();
                if old_ns == netns && same_live_netns(&old_ns, netns) {
                    return Err(CniError::new(code::INVALID_CONFIG, format!("container {} already has interface {} on network {}", env.id(), env.ifname(), conf.name), "ADD twice without DEL in between"));
                }
                let det = d.request(Method::POST, &format!("/containers/{}/detach", seg(&name)), None)?;
                if !det.status.is_success() && det.status.as_u16() != 404 {
                    return Err(refused(&det, "releasing a stale attachment"));
                }
            }
            _ => return Err(refused(&r, "attach")),
        }
    }
}

/// Whether `path` still is a network namespace (the old attachment's is
/// gone when its task died: /proc/PID/ns/net of a dead PID).
fn same_live_netns(old: &str, new: &str) -> bool {
    old == new && berth_linux::netns::Netns::open(std::path::Path::new(old)).is_ok()
}
