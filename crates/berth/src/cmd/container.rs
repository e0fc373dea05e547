//! Container commands: run, attach, detach, ps, inspect, logs, exec, start,
//! stop, restart, rm, port.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{seg, Client};

#[derive(Args)]
pub struct RunArgs {
    /// Return once the container runs and print its id.
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    name: Option<String>,
    /// Network to connect to: a name, "bridge" (the default network) or "none".
    #[arg(long = "network", visible_alias = "net")]
    network: Option<String>,
    /// Static IPv4 address on that network.
    #[arg(long)]
    ip: Option<String>,
    /// Static IPv6 address on that network (a network with --ipv6).
    #[arg(long)]
    ip6: Option<String>,
    /// Network-scoped alias (user-defined networks).
    #[arg(long = "network-alias")]
    network_aliases: Vec<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// Expose a port to linked containers: PORT[-END][/PROTO].
    #[arg(long)]
    expose: Vec<String>,
    /// Publish: [HOSTIP:][HOSTPORT[-END]:]PORT[-END][/tcp|/udp].
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Publish every exposed port on a random host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Link to another container: NAME[:ALIAS].
    #[arg(long = "link")]
    links: Vec<String>,
    /// Also set Docker's link environment variables (ALIAS_PORT_80_TCP...).
    #[arg(long)]
    link_env: bool,
    /// DNS server for the container's resolv.conf.
    #[arg(long)]
    dns: Vec<String>,
    /// Environment variable KEY=VALUE.
    #[arg(short, long)]
    env: Vec<String>,
    /// The command, after `--`.
    #[arg(last = true)]
    cmd: Vec<String>,
}

#[derive(Args)]
pub struct AttachArgs {
    /// Path of the network namespace (e.g. /run/netns/NAME or /proc/PID/ns/net).
    #[arg(long)]
    netns: String,
    #[arg(long)]
    name: String,
    #[arg(long = "network", visible_alias = "net")]
    network: Option<String>,
    /// Static IPv4 address.
    #[arg(long)]
    ip: Option<String>,
    /// Static IPv6 address.
    #[arg(long)]
    ip6: Option<String>,
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    #[arg(long)]
    expose: Vec<String>,
}

fn ip_opt(s: &Option<String>) -> Result<Option<std::net::IpAddr>> {
    Ok(s.as_deref().map(berth_core::subnets::parse_ip).transpose()?)
}

pub async fn run(c: &Client, a: RunArgs) -> Result<u8> {
    let dns = a.dns.iter().map(|d| berth_core::subnets::parse_ip(d)).collect::<Result<Vec<_>, _>>()?;
    let body = json!({
        "Name": a.name, "Hostname": a.hostname, "Network": a.network, "Ip": ip_opt(&a.ip)?, "Ip6": ip_opt(&a.ip6)?,
        "NetworkAliases": a.network_aliases, "Expose": a.expose, "Publish": a.publish, "PublishAll": a.publish_all,
        "Links": a.links, "LinkEnv": a.link_env, "Dns": dns, "Env": a.env, "Cmd": a.cmd,
    });
    let id = match c.post("/containers/run", &body).await {
        Ok(r) => r.json()?["Id"].as_str().unwrap_or_default().to_string(),
        Err(e) => {
            eprintln!("{e}");
            return Ok(125);
        }
    };
    if a.detach {
        println!("{id}");
        return Ok(0);
    }
    follow(c, &id, true).await
}

/// Streams a container's log until it exits; returns its exit code. With
/// `stop_on_interrupt`, Ctrl-C stops the container (like Docker's sig-proxy).
async fn follow(c: &Client, id: &str, stop_on_interrupt: bool) -> Result<u8> {
    let mut since: u64 = 0;
    let mut out = std::io::stdout();
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    loop {
        let r = c.call(Method::GET, &format!("/containers/{}/logs?since={since}", seg(id)), None).await?;
        out.write_all(&r.body)?;
        out.flush()?;
        since += r.body.len() as u64;
        if r.header("x-berth-state") == Some("exited") && r.body.is_empty() {
            return Ok(r.header("x-berth-exit-code").and_then(|c| c.parse::<i32>().ok()).map(|c| c.clamp(0, 255) as u8).unwrap_or(0));
        }
        if !r.body.is_empty() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = &mut ctrl_c, if stop_on_interrupt => {
                let _ = c.call(Method::POST, &format!("/containers/{}/stop?t=10", seg(id)), None).await;
            }
        }
    }
}

pub async fn attach(c: &Client, a: AttachArgs) -> Result<u8> {
    let body = json!({"Netns": a.netns, "Name": a.name, "Network": a.network, "Ip": ip_opt(&a.ip)?, "Ip6": ip_opt(&a.ip6)?, "Publish": a.publish, "Expose": a.expose});
    let r = c.post("/containers/attach", &body).await?.json()?;
    println!("{}", r["Id"].as_str().unwrap_or_default());
    Ok(0)
}

pub async fn detach(c: &Client, name: &str) -> Result<u8> {
    c.call(Method::POST, &format!("/containers/{}/detach", seg(name)), None).await?;
    println!("{name}");
    Ok(0)
}

fn ports_text(ports: &Value) -> String {
    ports
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let ip: std::net::IpAddr = p["IP"].as_str().unwrap_or_default().parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
                    let host = berth_core::model::host_port_text(ip, p["PublicPort"].as_u64().unwrap_or(0) as u16);
                    format!("{host}->{}/{}", p["PrivatePort"], p["Type"].as_str().unwrap_or_default())
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

pub async fn ps(c: &Client, all: bool, quiet: bool) -> Result<u8> {
    let v = c.get(if all { "/containers/json?all=1" } else { "/containers/json" }).await?;
    let list = v.as_array().cloned().unwrap_or_default();
    if quiet {
        for x in list {
            println!("{}", &x["Id"].as_str().unwrap_or_default()[..12]);
        }
        return Ok(0);
    }
    let rows = list
        .iter()
        .map(|x| {
            let mut cmd = x["Command"].as_str().unwrap_or_default().to_string();
            if cmd.chars().count() > 24 {
                cmd = format!("{}…", cmd.chars().take(23).collect::<String>());
            }
            let nets = x["Networks"]
                .as_array()
                .map(|n| {
                    n.iter()
                        .map(|n| {
                            let ips: Vec<&str> = [n["IPAddress"].as_str(), n["GlobalIPv6Address"].as_str()].into_iter().flatten().filter(|s| !s.is_empty()).collect();
                            format!("{}:{}", n["Name"].as_str().unwrap_or_default(), ips.join(","))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            vec![
                x["Id"].as_str().unwrap_or_default()[..12].to_string(),
                x["Names"][0].as_str().unwrap_or_default().trim_start_matches('/').to_string(),
                format!("\"{cmd}\""),
                x["Status"].as_str().unwrap_or_default().to_string(),
                ports_text(&x["Ports"]),
                nets,
            ]
        })
        .collect();
    crate::table::print(&["CONTAINER ID", "NAME", "COMMAND", "STATUS", "PORTS", "NETWORKS"], rows);
    Ok(0)
}

pub async fn inspect(c: &Client, names: &[String]) -> Result<u8> {
    c.inspect_each(names, |n| format!("/containers/{n}/json")).await
}

pub async fn logs(c: &Client, name: &str, follow_: bool) -> Result<u8> {
    if follow_ {
        follow(c, name, false).await?;
        return Ok(0);
    }
    let r = c.call(Method::GET, &format!("/containers/{}/logs", seg(name)), None).await?;
    std::io::stdout().write_all(&r.body)?;
    Ok(0)
}

pub async fn exec(c: &Client, name: &str, cmd: &[String]) -> Result<u8> {
    let v = c.get(&format!("/containers/{}/json", seg(name))).await?;
    if v["State"]["Running"].as_bool() != Some(true) {
        return Err(anyhow!("Error response from daemon: container {name} is not running"));
    }
    let namespaces = match v["Berth"]["Netns"].as_str() {
        Some(netns) => vec![(std::path::PathBuf::from(netns), libc::CLONE_NEWNET)],
        None => {
            let pid = v["State"]["Pid"].as_u64().filter(|p| *p > 0).ok_or_else(|| anyhow!("container {name} has no process"))?;
            berth_linux::nsexec::namespaces_of_pid(pid as u32)
        }
    };
    // The container's environment (Config.Env), as Docker's exec does.
    let env: Vec<(String, String)> = v["Config"]["Env"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e.as_str()?.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect())
        .unwrap_or_default();
    let code = berth_linux::nsexec::run_in(&namespaces, cmd, &env)?;
    Ok(code.clamp(0, 255) as u8)
}

async fn each(names: &[String], mut f: impl AsyncFnMut(&str) -> Result<()>) -> Result<u8> {
    let mut failed = false;
    for n in names {
        match f(n).await {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(failed as u8)
}

pub async fn start(c: &Client, names: &[String]) -> Result<u8> {
    each(names, async |n| c.call(Method::POST, &format!("/containers/{}/start", seg(n)), None).await.map(drop)).await
}

pub async fn stop(c: &Client, names: &[String], t: u64) -> Result<u8> {
    each(names, async |n| c.call(Method::POST, &format!("/containers/{}/stop?t={t}", seg(n)), None).await.map(drop)).await
}

pub async fn restart(c: &Client, names: &[String], t: u64) -> Result<u8> {
    each(names, async |n| {
        c.call(Method::POST, &format!("/containers/{}/stop?t={t}", seg(n)), None).await?;
        c.call(Method::POST, &format!("/containers/{}/start", seg(n)), None).await.map(drop)
    })
    .await
}

pub async fn rm(c: &Client, names: &[String], force: bool) -> Result<u8> {
    each(names, async |n| c.call(Method::DELETE, &format!("/containers/{}?force={}", seg(n), force as u8), None).await.map(drop)).await
}

pub async fn port(c: &Client, name: &str, filter: Option<&str>) -> Result<u8> {
    let v = c.get(&format!("/containers/{}/json", seg(name))).await?;
    let want = filter.map(|f| if f.contains('/') { f.to_string() } else { format!("{f}/tcp") });
    let mut found = false;
    if let Some(ports) = v["NetworkSettings"]["Ports"].as_object() {
        let mut keys: Vec<&String> = ports.keys().collect();
        keys.sort_by_key(|k| (k.split('/').next().and_then(|p| p.parse::<u32>().ok()).unwrap_or(0), k.to_string()));
        for k in keys {
            if want.as_ref().is_some_and(|w| w != k) {
                continue;
            }
            for b in ports[k].as_array().into_iter().flatten() {
                found = true;
                let ip: std::net::IpAddr = b["HostIp"].as_str().unwrap_or_default().parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
                let host = berth_core::model::host_port_text(ip, b["HostPort"].as_str().and_then(|p| p.parse().ok()).unwrap_or(0));
                if want.is_some() {
                    println!("{host}");
                } else {
                    println!("{k} -> {host}");
                }
            }
        }
    }
    if let (Some(w), false) = (want, found) {
        return Err(anyhow!("Error: No public port '{w}' published for {name}"));
    }
    Ok(0)
}
