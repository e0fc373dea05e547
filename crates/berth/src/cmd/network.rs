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
        /// Driver: bridge (this host), overlay (every host of the cluster,
        /// over VXLAN; needs --cluster-store) or macvlan (-o parent=IFACE;
        /// shared by the cluster's hosts when there is one).
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form, at most one per family (repeat for IPv4 and
        /// IPv6); chosen from the address pools when omitted.
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway, in the subnet it belongs to (the bridge's address)
        /// [default: first address of the subnet].
        #[arg(long)]
        gateway: Vec<String>,
        /// Part of a subnet containers get addresses from.
        #[arg(long)]
        ip_range: Vec<String>,
        /// IPv6 too: the IPv6 --subnet, or a /64 from the IPv6 pools.
        #[arg(long)]
        ipv6: bool,
        /// IPv4 [default: true]; --ipv4=false (with --ipv6) for an IPv6-only network.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
        ipv4: Option<bool>,
        /// No way out: no masquerade, no default route.
        #[arg(long)]
        internal: bool,
        /// MTU of the bridge and veths.
        #[arg(long)]
        mtu: Option<u32>,
        /// Options: icc=BOOL, masquerade=BOOL, mtu=N, bridge_name=NAME;
        /// overlay: vni=N, vxlan_port=N, host_block=PREFIX; macvlan:
        /// parent=IFACE, host_block=PREFIX.
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
        /// Static IPv4 address.
        #[arg(long)]
        ip: Option<String>,
        /// Static IPv6 address.
        #[arg(long)]
        ip6: Option<String>,
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
        NetworkCmd::Create { driver, subnet, gateway, ip_range, ipv6, ipv4, internal, mtu, opts, name } => {
            let mut options = BTreeMap::new();
            for o in opts {
                let (k, v) = o.split_once('=').ok_or_else(|| anyhow::anyhow!("invalid option {o:?}: expected KEY=VALUE"))?;
                options.insert(k.to_string(), v.to_string());
            }
            let configs = berth_core::request::pair_ipam_flags(&subnet, &gateway, &ip_range)?;
            let ipam = if configs.is_empty() { Value::Null } else { json!({"Config": configs}) };
            let mut body = json!({"Name": name, "Driver": driver, "EnableIPv6": ipv6, "EnableIPv4": ipv4, "Internal": internal, "Options": options, "MTU": mtu});
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
                    let subnets: Vec<&str> = n["IPAM"]["Config"].as_array().into_iter().flatten().filter_map(|c| c["Subnet"].as_str()).collect();
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
                    // A macvlan network has no bridge: its parent interface.
                    let device = n["Berth"]["Bridge"].as_str().or(n["Berth"]["Parent"].as_str()).unwrap_or_default();
                    vec![
                        n["Id"].as_str().unwrap_or_default()[..12].to_string(),
                        n["Name"].as_str().unwrap_or_default().to_string(),
                        n["Driver"].as_str().unwrap_or_default().to_string(),
                        n["Scope"].as_str().unwrap_or("local").to_string(),
                        subnets.join(", "),
                        device.to_string(),
                        flags.join(","),
                    ]
                })
                .collect();
            crate::table::print(&["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET", "BRIDGE", "OPTIONS"], rows);
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
        NetworkCmd::Connect { ip, ip6, aliases, network, container } => {
            let ip = ip.map(|i| berth_core::subnets::parse_ip(&i)).transpose()?;
            let ip6 = ip6.map(|i| berth_core::subnets::parse_ip(&i)).transpose()?;
            c.post(&format!("/networks/{}/connect", seg(&network)), &json!({"Container": container, "IPAddress": ip, "IPv6Address": ip6, "Aliases": aliases})).await?;
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
