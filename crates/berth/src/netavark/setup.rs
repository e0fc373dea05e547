//! `setup` and `teardown`: podman's container start and stop, as requests
//! to the daemon. A fresh container is one attach with all its networks
//! (each network created first when berth has none of that name); `podman
//! network connect` is a connect per new network, `disconnect` the matching
//! disconnect. A podman network berth made is removed again a moment
//! after its last container left, as netavark removes its bridge then.

use berth_core::netavark::{
    check_network, existing_container, facts_from_endpoints, facts_from_inspect, parse_input, plan_setup, status_block, teardown_plan, Existing,
    NetPlan, Refusal, SetupPlan, Teardown,
};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::daemon::{message, Daemon};
use super::log;
use crate::client::seg;

/// What a setup made that a failure later in the same call must undo.
#[derive(Default)]
struct Made {
    networks: Vec<String>,
}

/// Makes sure berth has podman's network `n` (creating it), or says how
/// the one it has collides. Returns whether this call created it.
async fn ensure_network(d: &Daemon, n: &NetPlan) -> Result<bool, Refusal> {
    for _ in 0..3 {
        match d.get_named("networks", &n.name).await? {
            Some(have) => {
                let m = check_network(n, &have)?;
                if let Some(servers) = m.dns_update {
                    let path = format!("/networks/{}/dns", seg(&n.name));
                    d.must(Method::POST, &path, Some(&json!({"Servers": servers})), &format!("network {}: updating its DNS servers", n.name)).await?;
                }
                return Ok(false);
            }
            None => {
                let r = d.request(Method::POST, "/networks/create", Some(&n.create_body())).await?;
                if r.status.is_success() {
                    log::info(&format!("network {} created in berth (bridge {})", n.name, n.bridge));
                    return Ok(true);
                }
                // Another call created it meanwhile: look again.
                if r.status != StatusCode::CONFLICT || !message(&r).contains("already exists") {
                    return Err(Refusal(format!("network {}: {}", n.name, message(&r))));
                }
            }
        }
    }
    Err(Refusal(format!("network {}: created and removed by others three times over; try again", n.name)))
}

/// The netns path must name something (netavark's first check).
fn check_netns(netns: &str) -> Result<(), Refusal> {
    berth_core::netavark::check_netns_path(netns)?;
    std::fs::metadata(netns).map(|_| ()).map_err(|e| Refusal(format!("invalid namespace path: {netns}: {e}")))
}

pub async fn setup(netns: &str, input: &[u8], rootless: bool) -> Result<Value, Refusal> {
    let input = parse_input(input)?;
    check_netns(netns)?;
    let plan = plan_setup(&input)?;
    if plan.networks.is_empty() {
        return Ok(json!({}));
    }
    let d = Daemon::connect(rootless).await?;
    let mut made = Made::default();
    let r = setup_with(&d, &plan, netns, &mut made).await;
    if r.is_err() {
        // podman calls no teardown after a failed setup: leave nothing behind.
        for name in &made.networks {
            let _ = d.request(Method::DELETE, &format!("/networks/{}", seg(name)), None).await;
        }
    }
    r
}

async fn setup_with(d: &Daemon, plan: &SetupPlan, netns: &str, made: &mut Made) -> Result<Value, Refusal> {
    // Held until the attach is done: no removal of an unused network runs meanwhile.
    let _locks = plan.networks.iter().map(|n| d.lock_network(&n.name, false)).collect::<Result<Vec<_>, _>>()?;
    let mut healed = false;
    let mut stale_done = false;
    for _ in 0..4 {
        for n in &plan.networks {
            if ensure_network(d, n).await? && !made.networks.contains(&n.name) {
                made.networks.push(n.name.clone());
            }
        }
        let r = d.request(Method::POST, "/containers/attach", Some(&plan.attach_body(netns))).await?;
        if r.status.is_success() {
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| Refusal(format!("berth daemon: unexpected answer: {e}")))?;
            let all: Vec<usize> = (0..plan.networks.len()).collect();
            return status_block(plan, &all, &facts_from_endpoints(&v["Endpoints"]));
        }
        let msg = message(&r);
        match r.status {
            // A network went away between the look and the attach (its last
            // container's teardown removed it): make it again.
            StatusCode::NOT_FOUND if msg.contains("network") => continue,
            StatusCode::CONFLICT if msg.contains("is already in use") && msg.contains("container name") => {
                let Some(have) = d.get_named("containers", &plan.container_name).await? else { continue };
                let alive = have["Berth"]["Netns"].as_str().is_some_and(|p| std::path::Path::new(p).exists());
                match existing_container(plan, netns, &have, alive)? {
                    Existing::Connect(idx) => return connect(d, plan, &idx).await,
                    Existing::Stale if !stale_done => {
                        log::info(&format!("container {}: replacing berth's record of a namespace that is gone", plan.container_name));
                        let path = format!("/containers/{}/detach", seg(&plan.container_name));
                        d.must(Method::POST, &path, None, "detaching the earlier namespace").await?;
                        stale_done = true;
                    }
                    Existing::Stale => return Err(Refusal(format!("container {}: berth's record keeps coming back", plan.container_name))),
                }
            }
            // The kernel refused (the ruleset flushed under berth, say):
            // reconcile once and try again.
            s if s.is_server_error() && s != StatusCode::INSUFFICIENT_STORAGE && !healed => {
                log::info(&format!("attach failed ({msg}); reconciling and trying again"));
                d.reconcile().await?;
                healed = true;
            }
            _ => return Err(Refusal(msg)),
        }
    }
    Err(Refusal(format!("container {}: the setup did not settle; try again", plan.container_name)))
}

/// `podman network connect`: each network of the call on its own, undone
/// together if one fails.
async fn connect(d: &Daemon, plan: &SetupPlan, idx: &[usize]) -> Result<Value, Refusal> {
    let mut done: Vec<&NetPlan> = Vec::new();
    for &i in idx {
        let n = &plan.networks[i];
        let path = format!("/networks/{}/connect", seg(&n.name));
        let r = d.must(Method::POST, &path, Some(&n.connect_body(&plan.container_name)), &format!("connecting {} to {}", plan.container_name, n.name)).await;
        if let Err(e) = r {
            for n in done {
                let _ = d.request(Method::POST, &format!("/networks/{}/disconnect", seg(&n.name)), Some(&json!({"Container": plan.container_name}))).await;
            }
            return Err(e);
        }
        done.push(n);
    }
    let have = d.get_named("containers", &plan.container_name).await?.ok_or_else(|| Refusal(format!("container {} vanished while connecting", plan.container_name)))?;
    status_block(plan, idx, &facts_from_inspect(&have))
}

pub async fn teardown(netns: &str, input: &[u8], rootless: bool) -> Result<(), Refusal> {
    let input = parse_input(input)?;
    berth_core::netavark::check_netns_path(netns)?;
    if input.networks.is_empty() {
        return Ok(());
    }
    let Some(d) = Daemon::connect_if_used(rootless).await? else {
        return Err(Refusal(format!("nothing to tear down: berth never set up container {} (no berth daemon has run here)", input.container_name)));
    };
    let name = &input.container_name;
    let have = d.get_named("containers", name).await?;
    let (action, removable, problems) = teardown_plan(&input, netns, have.as_ref())?;
    let mut healed = false;
    loop {
        let r = match &action {
            Teardown::Detach => d.request(Method::POST, &format!("/containers/{}/detach", seg(name)), None).await?,
            Teardown::Disconnect(nets) => {
                let mut last = None;
                for n in nets {
                    let r = d.request(Method::POST, &format!("/networks/{}/disconnect", seg(n)), Some(&json!({"Container": name}))).await?;
                    let failed = !r.status.is_success() && r.status != StatusCode::NOT_FOUND;
                    last = Some(r);
                    if failed {
                        break;
                    }
                }
                last.expect("a disconnect names at least one network")
            }
        };
        if r.status.is_success() || r.status == StatusCode::NOT_FOUND {
            break;
        }
        let msg = message(&r);
        if r.status.is_server_error() && !healed {
            // The daemon forgot the container but the kernel refused part of
            // its undoing (a flushed ruleset): reconcile puts it right.
            log::info(&format!("teardown of {name} failed ({msg}); reconciling"));
            d.reconcile().await?;
            healed = true;
            if d.get_named("containers", name).await?.is_none() {
                break;
            }
            continue;
        }
        return Err(Refusal(format!("tearing down {name}: {msg}")));
    }
    if !removable.is_empty() {
        remove_later(&removable, rootless);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refusal(problems.join("; ")))
    }
}

/// Networks a teardown found unused, removed after the answer (see [`finish`]).
static UNUSED: std::sync::Mutex<(Vec<String>, bool)> = std::sync::Mutex::new((Vec::new(), false));

fn remove_later(networks: &[String], rootless: bool) {
    let mut u = UNUSED.lock().unwrap_or_else(|e| e.into_inner());
    u.0.extend(networks.iter().cloned());
    u.1 = rootless;
}

/// Removes the networks berth made from podman's once their last container
/// has left (as netavark removes its bridge then), a moment after this
/// call has answered and in a process of its own, so podman never waits
/// for it: deleting a bridge waits for the kernel (RCU grace periods, 40-60
/// ms here), longer than all the rest of a teardown. The network lingers
/// [`GRACE`] first, so `podman run --rm` in a loop does not remake its
/// network each time; one remover per network waits at a time. The call
/// forks (it is single-threaded by then: its runtime is gone); the child
/// leaves podman's session and stdio.
pub fn finish() {
    let (networks, rootless) = std::mem::take(&mut *UNUSED.lock().unwrap_or_else(|e| e.into_inner()));
    if networks.is_empty() {
        return;
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: no other thread exists (the runtime was dropped); the child
    // makes syscalls and a fresh runtime of its own, then _exits.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: plain syscalls on fds we own or replace.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
            }
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                let _ = rt.block_on(async {
                    let Some(d) = Daemon::connect_if_used(rootless).await? else { return Ok(()) };
                    // Networks another remover already waits for are its.
                    let mine: Vec<(String, std::fs::File)> = networks.iter().filter_map(|n| d.try_lock_remover(n).map(|l| (n.clone(), l))).collect();
                    if mine.is_empty() {
                        return Ok(());
                    }
                    tokio::time::sleep(GRACE).await;
                    remove_unused(&d, &mine.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()).await
                });
            }
            // SAFETY: ends the child without the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        pid if pid > 0 => {}
        _ => log::info(&format!("no process to remove unused networks {networks:?} with: they stay until their next teardown")),
    }
}

/// How long a podman network stays in berth after its last container left.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The remover's work: each network is removed unless a container uses it
/// (berth refuses then), under the network's lock, so never between a
/// setup's look at it and that setup's attach.
async fn remove_unused(d: &Daemon, networks: &[String]) -> Result<(), Refusal> {
    for n in networks {
        let _lock = d.lock_network(n, true)?;
        let r = d.request(Method::DELETE, &format!("/networks/{}", seg(n)), None).await?;
        if r.status.is_success() {
            log::info(&format!("network {n} removed from berth (its last podman container left)"));
        }
    }
    Ok(())
}
