//! `berth info`, `berth reconcile`, `berth rules`.

use anyhow::Result;
use hyper::Method;
use serde_json::json;

use crate::client::Client;

pub async fn info(c: &Client) -> Result<u8> {
    let v = c.get("/info").await?;
    let d = &v["DefaultNetwork"];
    println!("Server Version: {}", v["ServerVersion"].as_str().unwrap_or_default());
    println!("Containers: {} (running {})", v["Containers"], v["ContainersRunning"]);
    println!("Networks: {}", v["Networks"]);
    if d.is_null() {
        println!("Default network: none");
    } else {
        let mut blocks = vec![];
        for (s, g) in [("Subnet", "Gateway"), ("SubnetV6", "GatewayV6")] {
            if let (Some(s), Some(g)) = (d[s].as_str(), d[g].as_str()) {
                blocks.push(format!("{s}, gateway {g}"));
            }
        }
        println!("Default network: {} on {} ({})", d["Name"].as_str().unwrap_or_default(), d["Bridge"].as_str().unwrap_or_default(), blocks.join("; "));
    }
    println!("Inter-container communication (default network): {}", v["Icc"]);
    println!(
        "IPv4 forwarding: {} ({})",
        if v["IPForward"].as_bool() == Some(true) { "on" } else { "off" },
        if v["IPForwardManaged"].as_bool() == Some(true) { "managed by berth" } else { "left alone: --ip-forward=false" }
    );
    let kept: Vec<&str> = v["AcceptRaKept"].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
    println!(
        "IPv6 forwarding: {}{}",
        if v["IPv6Forward"].as_bool() == Some(true) { "on" } else { "off" },
        if kept.is_empty() { String::new() } else { format!(" (router advertisements still accepted: berth set accept_ra=2 on {})", kept.join(", ")) }
    );
    println!("Firewall: nftables table {}", v["NftTable"].as_str().unwrap_or_default());
    println!(
        "Socket translation: {}",
        if v["SocketTranslation"].as_bool() == Some(true) { "on (the host's TCP connections to published ports are translated in connect())" } else { "off (published ports work through the nft rules alone)" }
    );
    let cl = &v["Cluster"];
    if cl.is_null() {
        println!("Cluster: none (single host)");
    } else {
        let state = if cl["Connected"].as_bool() == Some(true) {
            "connected".to_string()
        } else {
            format!("unreachable ({})", cl["Error"].as_str().unwrap_or("not connected yet"))
        };
        println!(
            "Cluster: {} as node {} (advertise {} on {}), {state}",
            cl["Store"].as_str().unwrap_or_default(),
            cl["Node"].as_str().unwrap_or_default(),
            cl["Advertise"].as_str().unwrap_or_default(),
            cl["Underlay"].as_str().unwrap_or_default()
        );
    }
    println!("Root: {}", v["Root"].as_str().unwrap_or_default());
    println!("Exec root: {}", v["ExecRoot"].as_str().unwrap_or_default());
    println!("Socket: unix://{}", v["Socket"].as_str().unwrap_or_default());
    Ok(0)
}

pub async fn reconcile(c: &Client) -> Result<u8> {
    let v = c.post("/reconcile", &json!({})).await?.json()?;
    let changes = v["Changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        println!("nothing to change: the kernel matches the store");
    }
    for ch in changes {
        println!("{}", ch.as_str().unwrap_or_default());
    }
    Ok(0)
}

pub async fn rules(c: &Client) -> Result<u8> {
    let r = c.call(Method::GET, "/rules", None).await?;
    print!("{}", String::from_utf8_lossy(&r.body));
    Ok(0)
}
