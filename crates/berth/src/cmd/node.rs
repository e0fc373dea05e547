//! `berth node ls`: the hosts of the cluster this daemon is in.

use anyhow::Result;
use clap::Subcommand;

use crate::client::Client;

#[derive(Subcommand)]
pub enum NodeCmd {
    /// List the cluster's hosts: name, advertise address, alive or not,
    /// address blocks, containers on global networks, last seen.
    #[command(visible_alias = "list")]
    Ls {
        /// Names only.
        #[arg(short, long)]
        quiet: bool,
    },
}

/// "12s ago", "3m ago", "2h ago" (the same clock as the daemon's).
fn ago(secs: Option<u64>) -> String {
    let Some(t) = secs else { return "-".into() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let d = now.saturating_sub(t);
    match d {
        0..=59 => format!("{d}s ago"),
        60..=3599 => format!("{}m ago", d / 60),
        _ => format!("{}h ago", d / 3600),
    }
}

pub async fn run(c: &Client, cmd: NodeCmd) -> Result<u8> {
    match cmd {
        NodeCmd::Ls { quiet } => {
            let v = c.get("/nodes").await?;
            let nodes = v["Nodes"].as_array().cloned().unwrap_or_default();
            if quiet {
                for n in &nodes {
                    println!("{}", n["Name"].as_str().unwrap_or_default());
                }
                return Ok(0);
            }
            if v["Connected"].as_bool() != Some(true) {
                eprintln!(
                    "warning: the cluster store {} is unreachable from this host ({}); showing the last picture of the cluster",
                    v["Store"].as_str().unwrap_or_default(),
                    v["Error"].as_str().unwrap_or("not connected yet")
                );
            }
            let rows = nodes
                .iter()
                .map(|n| {
                    let mut name = n["Name"].as_str().unwrap_or_default().to_string();
                    if n["Self"].as_bool() == Some(true) {
                        name.push_str(" *");
                    }
                    let alive = n["Alive"].as_bool() == Some(true);
                    let blocks: Vec<&str> = n["Blocks"].as_array().into_iter().flatten().filter_map(|b| b.as_str()).collect();
                    vec![
                        name,
                        n["Advertise"].as_str().unwrap_or("-").to_string(),
                        if alive { "alive".into() } else { "down".into() },
                        n["Containers"].to_string(),
                        if blocks.is_empty() { "-".into() } else { blocks.join(", ") },
                        if alive { "now".into() } else { ago(n["LastSeen"].as_u64()) },
                    ]
                })
                .collect();
            crate::table::print(&["NAME", "ADVERTISE", "STATUS", "CONTAINERS", "BLOCKS", "LAST SEEN"], rows);
        }
    }
    Ok(0)
}
