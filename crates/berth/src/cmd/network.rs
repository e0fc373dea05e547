//! `berth network ...`

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{seg, Client};

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create {
        /// Driver (only "bridge" for now).
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form; chosen from the address pools when omitted.
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway (the bridge's address) [default: first address of the subnet].
        #[arg(long)]
        gateway: Option<String>,
        /// Part of the subnet containers get addresses from.
        #[arg(long)]
        ip_range: Option<String>,
        /// No way out: no masquerade, no default route.
        #[arg(long)]
        internal: bool,
        /// MTU of the bridge and veths.
        #[arg(long)]
        mtu: Option<u32>,
        /// Options: icc=BOOL, masquerade=BOOL, mtu=N, bridge_name=NAME.
        #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
        opts: Vec<String>,
        name: String,
    },
    /// List networks.
    #[command(visible_alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks as JSON (Docker's shape).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks.
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Connect a container to a network.
    Connect {
        #[arg(long)]
        ip: Option<String>,
        #[arg(long = "alias")]
        aliases: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect { network: String, container: String },
    /// Remove every user network no container uses.
    Prune {
        /// Accepted for Docker compatibility; berth never prompts.
        #[arg(short, long)]
        force: bool,
    },
}

pub async fn run(c: &Client, cmd: NetworkCmd) -> Result<u8> {
    match cmd {
        NetworkCmd::Create { driver, subnet, gateway, ip_range, internal, mtu, opts, name } => {
            let mut options = BTreeMap::new();
            for o in opts {
                let (k, v) = o.split_once('=').ok_or_else(|| anyhow::anyhow!("invalid option {o:?}: expected KEY=VALUE"))?;
                options.insert(k.to_string(), v.to_string());
            }
            let ipam = if subnet.is_some() || gateway.is_some() || ip_range.is_some() {
                json!({"Config": [{"Subnet": subnet, "Gateway": gateway, "IPRange": ip_range}]})
            } else {
                Value::Null
            };
            let mut body = json!({"Name": name, "Driver": driver, "Internal": internal, "Options": options, "MTU": mtu});
            if !ipam.is_null() {
                body["IPAM"] = ipam;
            }
            let r = c.post("/networks/create", &body).await?.json()?;
            println!("{}", r["Id"].as_str().unwrap_or_default());
        }
        NetworkCmd::Ls { quiet } => {
            let v = c.get("/networks").await?;
            let nets = v.as_array().cloned().unwrap_or_default();
            if quiet {
                for n in nets {
                    println!("{}", &n["Id"].as_str().unwrap_or_default()[..12]);
                }
                return Ok(0);
            }
            let rows = nets
                .iter()
                .map(|n| {
                    let cfg = &n["IPAM"]["Config"][0];
                    let mut flags = vec![];
                    if n["Internal"].as_bool() == Some(true) {
                        flags.push("internal");
                    }
                    if n["Berth"]["Icc"].as_bool() == Some(false) {
                        flags.push("icc=false");
                    }
                    if n["Berth"]["Masquerade"].as_bool() == Some(false) {
                        flags.push("masquerade=false");
                    }
                    vec![
                        n["Id"].as_str().unwrap_or_default()[..12].to_string(),
                        n["Name"].as_str().unwrap_or_default().to_string(),
                        n["Driver"].as_str().unwrap_or_default().to_string(),
                        cfg["Subnet"].as_str().unwrap_or_default().to_string(),
                        n["Berth"]["Bridge"].as_str().unwrap_or_default().to_string(),
                        flags.join(","),
                    ]
                })
                .collect();
            crate::table::print(&["NETWORK ID", "NAME", "DRIVER", "SUBNET", "BRIDGE", "OPTIONS"], rows);
        }
        NetworkCmd::Inspect { names } => return c.inspect_each(&names, |n| format!("/networks/{n}")).await,
        NetworkCmd::Rm { names } => {
            let mut failed = false;
            for n in names {
                match c.call(Method::DELETE, &format!("/networks/{}", seg(&n)), None).await {
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            return Ok(failed as u8);
        }
        NetworkCmd::Connect { ip, aliases, network, container } => {
            let ip = ip.map(|i| berth_core::subnets::parse_ip(&i)).transpose()?;
            c.post(&format!("/networks/{}/connect", seg(&network)), &json!({"Container": container, "IPAddress": ip, "Aliases": aliases})).await?;
        }
        NetworkCmd::Disconnect { network, container } => {
            c.post(&format!("/networks/{}/disconnect", seg(&network)), &json!({"Container": container})).await?;
        }
        NetworkCmd::Prune { .. } => {
            let v = c.post("/networks/prune", &json!({})).await?.json()?;
            let gone = v["NetworksDeleted"].as_array().cloned().unwrap_or_default();
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for g in gone {
                    println!("{}", g.as_str().unwrap_or_default());
                }
            }
        }
    }
    Ok(0)
}
