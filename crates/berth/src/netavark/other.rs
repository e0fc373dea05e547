//! The subcommands besides setup and teardown, which podman 4.3 never
//! calls and later podman does: `update` (a network's DNS servers),
//! `create` (completing a network definition), `firewall-reload`.

use std::net::IpAddr;

use berth_core::netavark::create::{create, BerthNetworks, CreateInput};
use berth_core::netavark::Refusal;
use hyper::Method;
use serde_json::{json, Value};

use super::daemon::Daemon;
use super::log;
use crate::client::seg;

/// `update NETWORK --network-dns-servers A,B ...` (podman's `network update
/// --dns-add/--dns-drop`): the network's resolver forwards to these from
/// now on. Values may be repeated or comma-joined; one empty value means
/// none (the host's servers again). A network berth does not have (no
/// podman container on it yet) has nothing to change: its next setup
/// brings podman's list.
pub async fn update(network: &str, servers: &[String], rootless: bool) -> Result<(), Refusal> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for s in servers.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        ips.push(s.parse().map_err(|_| Refusal(format!("unable to modify network dns servers: {s:?} is not an IP address")))?);
    }
    let Some(d) = Daemon::connect_if_used(rootless).await? else { return Ok(()) };
    if d.get_named("networks", network).await?.is_none() {
        log::info(&format!("network {network} is not in berth yet: its next setup brings the servers"));
        return Ok(());
    }
    let path = format!("/networks/{}/dns", seg(network));
    d.must(Method::POST, &path, Some(&json!({"Servers": ips})), "unable to modify network dns servers").await?;
    Ok(())
}

/// The interface names of the caller's namespace (`/proc/net/dev` is per
/// namespace; `/sys/class/net` shows the mounter's).
fn host_links() -> Vec<String> {
    std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect()
}

/// `create`: podman's network definition completed (bridge name, subnet,
/// gateway), checked against berth's own networks too.
pub async fn create_network(input: &[u8], rootless: bool) -> Result<Value, Refusal> {
    let req: CreateInput = serde_json::from_slice(input).map_err(|e| Refusal(format!("failed to load network create: {e}")))?;
    let berth = match Daemon::connect_if_used(rootless).await? {
        Some(d) => {
            let list = d.must(Method::GET, "/networks", None, "listing berth's networks").await?;
            BerthNetworks::from_list(&serde_json::from_slice(&list.body).unwrap_or(Value::Null))
        }
        None => BerthNetworks::default(),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let n = create(&req, &berth, &host_links(), &berth_core::view::rfc3339(now))?;
    serde_json::to_value(&n).map_err(|e| Refusal(e.to_string()))
}

/// `firewall-reload`: berth's rules come back from its store (`berth reconcile`).
pub async fn firewall_reload(rootless: bool) -> Result<(), Refusal> {
    match Daemon::connect_if_used(rootless).await? {
        Some(d) => d.reconcile().await,
        None => Ok(()),
    }
}
